"""Data-parallel MLP training on MPI: 1 rank against 2 ranks, and 2 ranks against one process
with 2 BLAS threads (the other way to use two cores).

The model is the MNIST MLP of ``mlp_train.py``, 784-256-256-10 with ReLU, cross-entropy and Adam
(lr 1e-3) in float32, on synthetic MNIST-shaped batches (uniform pixels, random labels; each
rank its own), so no dataset is needed. One step is what ``Trainer(distributed=True)`` does
between batches::

    loss = cross_entropy(model(x), y)              forward on this rank's b samples
    opt.zero_grad(); loss.backward()               local gradient g_r
    nabla.distributed.allreduce_gradients(opt)     g = (1/W) sum_r g_r: ONE Allreduce per group
    opt.step()                                     the same Adam update on every rank

(the Trainer also averages the loss for its logs: one Allreduce of 16 bytes, timed separately
below as the "small Allreduce").

Three setups, each in its own processes, each timed at the global batches ``BATCHES``:

* 1 rank x 1 thread (``mpirun -np 1``): the whole global batch B on one core;
* 2 ranks x 1 thread (``mpirun -np 2``): B/2 samples per rank. The same global batch gives
  *strong* scaling, efficiency = samples/s(2 ranks, B) / (2 x samples/s(1 rank, B)); the same
  per-rank batch b (2 ranks at global 2b against 1 rank at b) gives *weak* scaling;
* 1 process x 2 threads (plain ``python``, 2 BLAS and optimizer threads) at B.

Every rank runs with one BLAS thread and one kernel thread (``NUMBA_NUM_THREADS``). Timing:
a few untimed warm-up steps (a fixed count: every rank must make the same collective calls),
then rounds of ``number`` steps, each round starting after a barrier; a round's time is the
slowest rank's (a synchronous step ends when the last rank's does), and a launch's figure is its
median round. The full run launches every setup three times, in alternating order, and keeps
each setup's fastest launch at each batch: load from other processes only ever adds time, and
ranks or threads that lose a core to another process stall at every barrier, so one disturbed
launch must not decide the comparison. Then each part of the step is timed separately (median
over steps), with a barrier before the allreduce, which splits the 2-rank step into compute,
waiting for the slower rank, the Allreduce itself and the update. The Allreduce of the flat
gradient buffer is also timed alone, before the steps (which warms up MPI's shared-memory
channels): the median of rounds of back-to-back calls, from the fastest launch.

The machine may be shared: the script prints the 1-minute load average, and for each setup the
cores that other processes kept busy while it ran (from /proc/stat, minus this script's own
processes).

    python bench/distributed.py            # about a minute
    python bench/distributed.py --quick    # about 10 s, for CI

Needs mpi4py and ``mpirun``; without them it prints a line starting with "skipped" and exits 0.
The last lines, ``RESULT distributed.name=value``, are for ``bench/all.py``.
"""

from __future__ import annotations

from common import pin_threads  # bench/common.py; pin before NumPy loads

THREADS = pin_threads()  # BLAS's threads and the kernels' (NUMBA_NUM_THREADS)

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import nabla as nb  # noqa: E402
from nabla import distributed as dist  # noqa: E402
from nabla import models, nn, optim  # noqa: E402

SIZES = (784, 256, 256, 10)
LR = 1e-3
RANKS = 2
BATCHES = (128, 256, 512, 1024)  # global batches; 2 ranks take half each
DISTINCT_BATCHES = 4  # the data cycle: no step reuses the previous step's batch
PARTS = ("forward + loss", "zero_grad + backward", "wait", "allreduce", "Adam step")
SCRIPT = Path(__file__).resolve()


# --- one worker process (a rank, or the threaded single process) ----------------------------------


def batches(size: int, seed: int) -> list:
    rng = np.random.default_rng(seed)
    x = rng.random((DISTINCT_BATCHES * size, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], size=DISTINCT_BATCHES * size, dtype=np.int64)
    return [
        (nb.tensor(x[i : i + size]), nb.tensor(y[i : i + size])) for i in range(0, len(x), size)
    ]


def setup(size: int) -> tuple:
    """(model, optimizer, batches) for this rank: the same weights everywhere, its own data."""
    nb.manual_seed(0)
    model = models.mlp(SIZES)
    opt = optim.Adam(model.parameters(), lr=LR)
    dist.broadcast_parameters(model)  # what the Trainer does once, before the first step
    return model, opt, batches(size, seed=1 + dist.rank())


def training_step(model, opt, data):
    """A function of no arguments: one data-parallel step on the next batch of the cycle."""
    cycle = itertools.cycle(data)

    def step() -> int:
        x, y = next(cycle)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        sent = dist.allreduce_gradients(opt)
        opt.step()
        return sent

    return step


def slowest(seconds: float) -> float:
    """The largest of the ranks' values (a synchronous step ends when the last rank's does)."""
    if not dist.active():
        return seconds
    from mpi4py import MPI

    value = np.array([seconds])
    MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, value, op=MPI.MAX)
    return float(value[0])


def timed_rounds(fn, number: int, rounds: int) -> list[float]:
    """Mean seconds per call of ``fn`` in each of ``rounds`` rounds of ``number`` calls."""
    times = []
    for _ in range(rounds):
        dist.barrier()
        start = time.perf_counter()
        for _ in range(number):
            fn()
        times.append(slowest((time.perf_counter() - start) / number))
    return times


def parts(model, opt, data, steps: int) -> dict[str, float]:
    """Median seconds of each part of the step, over ``steps`` steps, the slowest rank's.

    A barrier before the allreduce ("wait") separates the time a rank waits for the slower one
    from the transfer itself; the timed steps of ``training_step`` have no barrier (the
    Allreduce synchronizes the ranks by itself), so there the wait is inside the allreduce."""
    times = {part: [] for part in PARTS}
    for i in range(steps):
        x, y = data[i % len(data)]
        t0 = time.perf_counter()
        loss = nn.functional.cross_entropy(model(x), y)
        t1 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        t2 = time.perf_counter()
        dist.barrier()
        t3 = time.perf_counter()
        dist.allreduce_gradients(opt)
        t4 = time.perf_counter()
        opt.step()
        t5 = time.perf_counter()
        for part, seconds in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            times[part].append(seconds)
    return {part: slowest(statistics.median(t)) for part, t in times.items()}


def allreduce_alone(count: int, number: int, rounds: int) -> float:
    """Median seconds of one in-place Allreduce (sum) of ``count`` float32 values, as
    ``allreduce_gradients`` calls it. Zeros, so repeated sums stay finite; the time of a
    reduction does not depend on the values."""
    from mpi4py import MPI

    buffer = np.zeros(count, dtype=np.float32 if count > 2 else np.float64)
    call = lambda: MPI.COMM_WORLD.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)  # noqa: E731
    for _ in range(10):
        call()
    return statistics.median(timed_rounds(call, number, rounds))


def thread_pools() -> str:
    """The thread pools this process runs with: BLAS (threadpoolctl) and the optimizer's."""
    ours = f"nabla optimizer {optim.get_num_threads()}"
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return f"BLAS unknown (no threadpoolctl), {ours}"
    return ", ".join(
        [*(f"{p['internal_api']} {p['num_threads']}" for p in threadpool_info()), ours]
    )


def worker(args: argparse.Namespace) -> None:
    """Time the step at each per-rank batch in ``args.batches``; rank 0 writes ``args.out``."""
    if args.mpi:
        dist.init()
    number, rounds, warm, steps = (10, 5, 10, 20) if args.quick else (20, 9, 10, 50)
    out = {"world": dist.world_size(), "threads": thread_pools(), "batches": {}}
    model = models.mlp(SIZES)
    out["parameters"] = sum(p.data.size for p in model.parameters())
    if dist.active():  # first: it also warms up MPI's shared-memory channels for the steps
        out["allreduce_s"] = allreduce_alone(out["parameters"], 20 if args.quick else 100, rounds)
        out["small_allreduce_s"] = allreduce_alone(2, 200 if args.quick else 1000, rounds)
    for size in args.batches:
        model, opt, data = setup(size)
        step = training_step(model, opt, data)
        sent = [step() for _ in range(warm)][-1]
        out["batches"][size] = {
            "rounds": timed_rounds(step, number, rounds),
            "parts": parts(model, opt, data, steps),
            "bytes": sent,
        }
    out["groups"] = len(opt.gradient_vectors())
    out["gradient_bytes"] = sum(g.nbytes for g in opt.gradient_vectors())
    if dist.is_main():
        Path(args.out).write_text(json.dumps(out))


# --- the launcher ---------------------------------------------------------------------------------


def missing() -> str | None:
    """Why the benchmark cannot run here, or None."""
    if importlib.util.find_spec("mpi4py") is None:
        return "mpi4py is not installed (pip install -e '.[distributed]', with openmpi-bin)"
    if launcher() is None:
        return "no mpirun or mpiexec on PATH (apt-get install openmpi-bin libopenmpi-dev)"
    return None


def launcher() -> str | None:
    return shutil.which("mpirun") or shutil.which("mpiexec")


def mpi_command(ranks: int) -> list[str]:
    command = [launcher(), "-np", str(ranks)]
    if "Open MPI" in mpi_version():
        command += ["--oversubscribe", "--bind-to", "none"]  # as tests/distributed run it
    return command


def mpi_version() -> str:
    done = subprocess.run([launcher(), "--version"], capture_output=True, text=True)
    return (done.stdout + done.stderr).strip().splitlines()[0]


def busy_seconds() -> float | None:
    """CPU seconds all processes on the machine have used (/proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # minus idle, iowait


def children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def launch(ranks: int | None, sizes: list[int], quick: bool) -> dict:
    """Run this script as a worker: on ``ranks`` MPI ranks of 1 thread, or (None) as one plain
    process with RANKS threads. Returns rank 0's timings and the other processes' CPU use."""
    threads = 1 if ranks else RANKS
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "timings.json"
        command = (mpi_command(ranks) if ranks else []) + [sys.executable, str(SCRIPT)]
        command += ["--worker", "--threads", str(threads), "--out", str(out), "--batches"]
        command += [*map(str, sizes)] + ["--quick"] * quick + ["--mpi"] * bool(ranks)
        busy, own, start = busy_seconds(), children_seconds(), time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
        wall = time.perf_counter() - start
        if done.returncode != 0 or not out.exists():
            sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        result = json.loads(out.read_text())
    if busy is not None:
        others = (busy_seconds() - busy) - (children_seconds() - own)
        result["others_cores"] = max(0.0, others / wall)
    return result


def combine(runs: list[dict]) -> dict[int, dict]:
    """One setup's launches -> {per-rank batch: {"step": seconds per step, "parts": {part:
    seconds}, "bytes": what allreduce_gradients returned}}. Each launch's figure is its median
    round; of the launches, the fastest counts (other processes only ever add time), with the
    parts timed in that same launch."""
    pooled = {}
    for key in runs[0]["batches"]:
        found = [r["batches"][key] for r in runs]
        medians = [statistics.median(f["rounds"]) for f in found]
        best = found[medians.index(min(medians))]
        pooled[int(key)] = {"step": min(medians), "parts": best["parts"], "bytes": best["bytes"]}
    return pooled


# --- the report -----------------------------------------------------------------------------------


def throughput_table(setups: list[tuple[str, dict, int]]) -> None:
    """ms/step and samples/s of each setup (name, timings, ranks) at each global batch."""
    print(f"{'global':>6}  {'setup':<24}{'per-rank':>9}{'ms/step':>10}{'samples/s':>12}", end="")
    print(f"{'vs 1 rank':>11}\n{'batch':>6}  {'':<24}{'batch':>9}")
    print("-" * 72)
    for size in BATCHES:
        base = setups[0][1][size]["step"]
        for name, table, ranks in setups:
            seconds = table[size // ranks]["step"]
            print(
                f"{size:>6}  {name:<24}{size // ranks:>9}{seconds * 1e3:>10.3f}"
                f"{size / seconds:>12,.0f}{base / seconds:>11.2f}"
            )
    print()


def ratio_row(label: str, values: dict[int, float]) -> None:
    print(f"{label:<52}" + "".join(f"{f'{k}: {v:.2f}':>13}" for k, v in values.items()))


def parts_table(one: dict, two: dict) -> tuple[dict[int, float], dict[int, float]]:
    """Each part of the step on 1 and on RANKS ranks at the same per-rank batch. Returns the
    share of the RANKS-rank step spent in the Allreduce, and in waiting + Allreduce, by global
    batch."""
    print(
        f"Each part of the step timed separately (median ms per step, the slowest rank's; wait: "
        f"a barrier before the allreduce), {RANKS} ranks against 1 rank at the same per-rank batch"
    )
    labels = ("fwd + loss", "zero + bwd", "wait", "allreduce", "Adam", "step")
    header = f"{'global':>6}  {'setup':<9}{'per-rank':>9}" + "".join(f"{c:>11}" for c in labels)
    header += f"{'allreduce':>11}{'+ wait':>8}"
    print(f"{'share of the step':>{len(header)}}\n{header}\n{'-' * len(header)}")
    comm, sync = {}, {}
    for size in BATCHES:
        b = size // RANKS
        for name, table, global_batch in (("1 rank", one, b), (f"{RANKS} ranks", two, size)):
            ms = [table[b]["parts"][part] * 1e3 for part in PARTS]
            ms.append(sum(ms))
            wait, allreduce, step = ms[2], ms[3], ms[-1]
            comm[size], sync[size] = allreduce / step, (wait + allreduce) / step
            cells = "".join(f"{t:>11.3f}" for t in ms)
            print(f"{global_batch:>6}  {name:<9}{b:>9}{cells}{comm[size]:>11.1%}{sync[size]:>8.1%}")
    print()
    return comm, sync


def report(one: dict, two: dict, threaded: dict, meta: dict) -> list[str]:
    """Print the tables; return the RESULT lines."""
    throughput_table(
        [
            ("1 rank x 1 thread", one, 1),
            (f"1 process x {RANKS} threads", threaded, 1),
            (f"{RANKS} ranks x 1 thread", two, RANKS),
        ]
    )

    def rate(table: dict, b: int, ranks: int = 1) -> float:  # samples/s with per-rank batch b
        return ranks * b / table[b]["step"]

    strong = {B: rate(two, B // RANKS, RANKS) / (RANKS * rate(one, B)) for B in BATCHES}
    weak = {b: rate(two, b, RANKS) / (RANKS * rate(one, b)) for b in BATCHES if b in two}
    versus = {B: rate(two, B // RANKS, RANKS) / rate(threaded, B) for B in BATCHES}
    print(f"scaling efficiency = samples/s on {RANKS} ranks / ({RANKS} x samples/s on 1 rank)")
    ratio_row(f"strong, by global batch B ({RANKS} ranks of B/{RANKS}):", strong)
    ratio_row(f"weak, by per-rank batch b ({RANKS} ranks of b):", weak)
    ratio_row(f"samples/s, {RANKS} ranks / 1 process x {RANKS} threads, by B:", versus)
    print()

    expected, sent = meta["gradient_bytes"], sorted({t["bytes"] for t in two.values()})
    check = "ok" if sent == [expected] and expected == 4 * meta["parameters"] else "MISMATCH"
    print(
        f"communication per step: {meta['parameters']:,} float32 parameters in {meta['groups']} "
        f"group(s) -> {expected:,} bytes per rank (4 x parameters); allreduce_gradients returned "
        f"{', '.join(f'{s:,}' for s in sent)} ({check})"
    )
    seconds, small = meta["allreduce_s"], meta["small_allreduce_s"]
    print(
        f"one Allreduce of the flat gradient buffer alone: {seconds * 1e6:.0f} us "
        f"({expected / seconds / 1e9:.2f} GB/s of buffer); of 2 float64 (the Trainer's loss "
        f"average): {small * 1e6:.1f} us"
    )
    print()
    comm, sync = parts_table(one, two)
    if check != "ok":
        sys.exit("allreduce_gradients did not send 4 x parameters bytes")
    lines = [f"RESULT distributed.strong_efficiency_b{b}={v:.3f}" for b, v in strong.items()]
    lines += [f"RESULT distributed.weak_efficiency_b{b}={v:.3f}" for b, v in weak.items()]
    lines += [f"RESULT distributed.vs_threads_b{b}={v:.3f}" for b, v in versus.items()]
    lines += [f"RESULT distributed.comm_share_b{b}={v:.3f}" for b, v in comm.items()]
    lines += [f"RESULT distributed.sync_share_b{b}={v:.3f}" for b, v in sync.items()]
    lines += [
        f"RESULT distributed.bytes_per_step={expected}",
        f"RESULT distributed.allreduce_us={seconds * 1e6:.1f}",
        f"RESULT distributed.small_allreduce_us={small * 1e6:.2f}",
    ]
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="about 10 s: fewer steps, one launch")
    parser.add_argument("--threads", type=int, default=THREADS, help="(set by the launcher)")
    parser.add_argument("--worker", action="store_true", help="internal: time, write --out")
    parser.add_argument("--mpi", action="store_true", help="internal: the worker is an MPI rank")
    parser.add_argument("--batches", type=int, nargs="+", help="internal: per-rank batches")
    parser.add_argument("--out", type=Path, help="internal: where rank 0 writes its timings")
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args)
    reason = missing()
    if reason:
        print(f"skipped: {reason}")
        return
    load = os.getloadavg()[0]
    launches = 1 if args.quick else 3
    print(
        f"numpy {np.__version__}, nabla {nb.__version__}, {mpi_version()}, {os.cpu_count()} "
        f"cores; MLP {'-'.join(map(str, SIZES))} ReLU float32, Adam lr {LR:g}; step = forward + "
        f"loss + zero_grad + backward + allreduce_gradients + Adam step; median round of the "
        f"fastest of {launches} launch(es) per setup; load average (1 min) {load:.2f} at the start"
    )
    halves = [b // RANKS for b in BATCHES]
    setups = {  # name: (ranks or None for the threaded process, per-rank batches)
        "1 rank": (1, sorted({*halves, *BATCHES})),  # B/2 too: the parts table compares them
        f"{RANKS} ranks": (RANKS, halves),
        f"{RANKS} threads": (None, list(BATCHES)),
    }
    runs = {name: [] for name in setups}
    for i in range(launches):  # alternate the order, so drifting load hits every setup alike
        for name in list(setups)[:: 1 if i % 2 == 0 else -1]:
            runs[name].append(launch(*setups[name], args.quick))
    for name, found in runs.items():
        busy = [r.get("others_cores") for r in found]
        shown = "unknown" if None in busy else " and ".join(f"{b:.2f}" for b in busy)
        print(
            f"{name}: thread pools per process: {found[0]['threads']}; other processes kept "
            f"{shown} core(s) busy during its launch(es)"
        )
        if None not in busy and min(busy) > 0.25:  # the fastest launch is used: all disturbed
            print(f"  WARNING: every {name} launch shared the cores; its figures are pessimistic")
    print()
    one, two, threaded = (combine(found) for found in runs.values())
    meta = dict(runs[f"{RANKS} ranks"][0])
    for key in ("allreduce_s", "small_allreduce_s"):  # the quietest launch's, as for the steps
        meta[key] = min(r[key] for r in runs[f"{RANKS} ranks"])
    lines = report(one, two, threaded, meta)
    print(f"load average (1 min): {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end")
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
