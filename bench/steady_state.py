"""Does the training step slow down as the run goes on? Early against late step times on an MLP
whose optimizer state drifts toward subnormal numbers, every implementation in its own process.

The run: MLP 784-256-256-10 with ReLU, cross-entropy, Adam (lr 1e-3), float32, batch 64, on
7,000 random inputs (uniform in [0, 1)) with RANDOM labels, shuffled every epoch and gathered by
fancy indexing, from the same weights everywhere (drawn with NumPy as torch's ``nn.Linear`` draws
them). With nothing to learn most ReLU units die within a few hundred steps; the weights feeding
them then get zero gradients, and Adam's first moment of those weights decays by beta1 = 0.9 per
step: below float32's smallest normal number (1.2e-38) after about 800 steps. Arithmetic on
subnormal numbers is many times slower on x86 unless they are flushed to zero, so an update that
keeps them can slow down as the run goes on. nabla's updates flush subnormal state to zero;
torch's do only after ``torch.set_flush_denormal(True)``.

Timed: every step alone (``perf_counter`` around gather + zero_grad + forward + loss + backward +
update), for ``--steps`` steps (2,400; ``--quick``: 1,200). Printed: the mean step time over
steps 100-400 (early: after the warm-up, before any state is subnormal) and over the last quarter
(steps 1,800-2,400; with ``--quick`` steps 900-1,200), and their ratio late / early, the figure
the target is about; beside it the same ratio of the median step times, which a burst of load
from another process on a shared machine does not move. At the end of the run each worker also
reports the share of dead hidden units (no positive activation on 1,000 of the inputs) and the
share of Adam's first- and second-moment entries that are subnormal or exactly zero, so the
output shows whether the run reached the regime it is about.

Implementations: nabla on its compiled kernels (``nabla.kernels``), "nabla reference" (the same
under ``NABLA_KERNELS=reference``: the NumPy updates), torch with ``fused=True`` Adam, and the
same after ``torch.set_flush_denormal(True)`` ("fused+FTZ"). Each runs in a fresh process
(``--worker NAME``, launched one at a time by this script, which imports neither nabla nor
torch), with the same ``--threads``: each library's thread pool spins or sleeps after its calls,
and two in one process slow each other down. With several ``--rounds`` (default 3; ``--quick``
1) the implementations alternate (A B C D A B C D ...) and the figures are medians over the
rounds.

Target (from the compiled-kernels issue): late / early <= 1.1 (the step does not slow down by
more than 10%); met / NOT met is printed for each implementation, the target applies to nabla.
The last lines, ``RESULT name=value``, are for ``bench/all.py``.

    python bench/steady_state.py               # about a minute: 3 rounds of 2,400 steps
    python bench/steady_state.py --quick       # about 20 s: 1 round of 1,200 steps (CI)
    python bench/steady_state.py --threads 1   # default: as many threads as this process's cores
"""

from __future__ import annotations

from common import (  # bench/common.py; pin before NumPy loads
    KERNELS,
    REFERENCE,
    Job,
    alternate,
    load_note,
    minibatches,
    mlp_weights,
    nabla_about,
    pin_threads,
    send,
    thread_pools,
    verdict,
    versions,
)

THREADS = pin_threads()

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

SIZES = (784, 256, 256, 10)
BATCH, LR, EXAMPLES = 64, 1e-3, 7000
EARLY = (100, 400)  # steps [100, 400): after the warm-up, before any state can be subnormal
TARGET = 1.1  # late / early mean step time
PROBE = 1000  # inputs on which dead units are counted
TINY = 1.1754944e-38  # float32's smallest normal number
# Worker name -> (label, environment changes); they run in this order in every round.
WORKERS = {
    "nabla": ("nabla", KERNELS),
    "nabla-reference": ("nabla reference", REFERENCE),
    "torch-fused": ("torch fused", None),
    "torch-fused-ftz": ("torch fused+FTZ", None),
}


# --- workers: each runs in its own process ------------------------------------------------------


def data():
    """The random inputs and labels, the same in every worker."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.random((EXAMPLES, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], size=EXAMPLES, dtype=np.int64)
    return x, y


def framework(name: str):
    """(description, model, optimizer, loss function, array -> tensor, weights(), moments())
    for a worker: ``weights()`` gives the model's parameters as NumPy arrays by name,
    ``moments()`` Adam's first and second moments as two lists of NumPy arrays."""
    weights = mlp_weights(SIZES)
    if name.startswith("nabla"):
        import nabla as nb
        from nabla import models, nn, optim

        nb.set_num_threads(THREADS)
        model = models.mlp(SIZES)
        model.load_state_dict(weights)
        opt = optim.Adam(model.parameters(), lr=LR)

        def params():
            return {k: v.numpy() for k, v in model.state_dict().items()}

        def moments():
            state = opt.state_dict()["state"].values()
            return [s["exp_avg"] for s in state], [s["exp_avg_sq"] for s in state]

        about = nabla_about(name)
        return about, model, opt, nn.functional.cross_entropy, nb.from_numpy, params, moments

    import torch

    torch.set_num_threads(THREADS)
    flush = torch.set_flush_denormal(True) if name == "torch-fused-ftz" else False
    layers = []
    for fan_in, fan_out in zip(SIZES[:-1], SIZES[1:]):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    opt = torch.optim.Adam(model.parameters(), lr=LR, fused=True)

    def params():
        return {k: v.detach().numpy() for k, v in model.state_dict().items()}

    def moments():
        state = [opt.state[p] for p in model.parameters()]
        return [s["exp_avg"].numpy() for s in state], [s["exp_avg_sq"].numpy() for s in state]

    flags = ", flush denormal on" if flush else ""
    about = f"torch {torch.__version__}, {torch.get_num_threads()} thread(s){flags}"
    return about, model, opt, torch.nn.functional.cross_entropy, torch.from_numpy, params, moments


def shares(arrays) -> tuple[float, float]:
    """The shares of entries, over all ``arrays``, that are subnormal and that are zero."""
    import numpy as np

    total = sum(a.size for a in arrays)
    zero = sum(int(np.count_nonzero(a == 0)) for a in arrays)
    small = sum(int(np.count_nonzero(np.abs(a) < TINY)) for a in arrays)
    return (small - zero) / total, zero / total


def dead_units(params: dict, x) -> float:
    """The share of hidden units with no positive activation on ``x`` (computed in NumPy)."""
    import numpy as np

    dead, units, h = 0, 0, x
    for i in range(len(SIZES) - 2):
        h = np.maximum(h @ params[f"{2 * i}.weight"].T + params[f"{2 * i}.bias"], 0)
        dead += int(np.count_nonzero(h.max(axis=0) <= 0))
        units += h.shape[1]
    return dead / units


def worker(name: str, steps: int) -> None:
    """Train for ``steps`` steps, timing each; send the step times and the end state."""
    x, y = data()
    about, model, opt, loss_fn, wrap, params, moments = framework(name)
    batches = minibatches(len(x), BATCH)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        idx = next(batches)
        xb, yb = wrap(x[idx]), wrap(y[idx])
        opt.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - start)
    first, second = moments()
    send(
        {
            "about": about,
            "pools": thread_pools(),
            "times": times,
            "loss": float(loss.item()),
            "dead": dead_units(params(), x[:PROBE]),
            "exp_avg": shares(first),
            "exp_avg_sq": shares(second),
        }
    )


# --- the parent: launches the workers, reports ------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 1,200 steps (CI)")
    parser.add_argument("--threads", type=int, default=THREADS, help="BLAS/OpenMP/torch threads")
    parser.add_argument("--rounds", type=int, help="rounds of workers (default 3; --quick 1)")
    parser.add_argument("--steps", type=int, help="steps per run (2400; --quick 1200)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    steps = args.steps or (1200 if args.quick else 2400)
    if steps < 2 * EARLY[1]:
        parser.error(f"--steps must be at least {2 * EARLY[1]}")
    if args.worker:
        worker(args.worker, steps)
        return

    rounds = args.rounds or (1 if args.quick else 3)
    late = (steps * 3 // 4, steps)
    load = os.getloadavg()[0]
    print(
        f"{versions('numpy', 'torch', 'nabla')}; {THREADS} thread(s); MLP "
        f"{'-'.join(map(str, SIZES))} ReLU float32, Adam lr {LR:g}, batch {BATCH}, {steps:,} steps "
        f"on {EXAMPLES:,} random inputs with random labels; every implementation in its own "
        f"process, {rounds} round(s), medians over the rounds; mean step time over steps "
        f"{EARLY[0]}-{EARLY[1]} (early) and {late[0]}-{late[1]} (late)"
    )
    if args.quick:
        print(
            f"(--quick: {steps:,} steps, so late is steps {late[0]}-{late[1]}, not 1,800-2,400; "
            "Adam's first moments reach subnormal numbers after about 800 steps at zero gradient)"
        )
    script = str(Path(__file__).resolve())
    jobs = {name: Job(name, [], env) for name, (_, env) in WORKERS.items()}
    runs = alternate(script, jobs, rounds, ["--threads", str(THREADS), "--steps", str(steps)])
    for name, (label, _) in WORKERS.items():
        print(f"  {label}: {runs[name][0]['about']}; thread pools: {runs[name][0]['pools']}")
    print()

    def mean(times, window) -> float:
        return statistics.fmean(times[window[0] : window[1]])

    def median(times, window) -> float:
        return statistics.median(times[window[0] : window[1]])

    header = (
        f"{'impl':<18}{'early ms':>10}{'late ms':>10}{'late/early':>12}{'of medians':>12}"
        f"{'dead units':>12}{'m1 subnormal':>14}{'m1 zero':>9}{'m2 subnormal':>14}{'m2 zero':>9}"
    )
    print(header)
    print("-" * len(header))
    lines, verdicts = [], []
    for name, (label, _) in WORKERS.items():
        rs = runs[name]
        early = statistics.median(mean(r["times"], EARLY) for r in rs)
        later = statistics.median(mean(r["times"], late) for r in rs)
        ratio = statistics.median(mean(r["times"], late) / mean(r["times"], EARLY) for r in rs)
        robust = statistics.median(median(r["times"], late) / median(r["times"], EARLY) for r in rs)
        end = rs[-1]  # the state at the end of the last round's run
        print(
            f"{label:<18}{early * 1e3:>10.3f}{later * 1e3:>10.3f}{ratio:>12.2f}{robust:>12.2f}"
            f"{end['dead']:>12.0%}{end['exp_avg'][0]:>14.1%}{end['exp_avg'][1]:>9.1%}"
            f"{end['exp_avg_sq'][0]:>14.1%}{end['exp_avg_sq'][1]:>9.1%}"
        )
        verdicts.append(
            f"{label}: late/early = {ratio:.2f} (target <= {TARGET}: {verdict(ratio <= TARGET)})"
        )
        key = name.replace("-", "_")
        lines += [
            f"RESULT steady_state.{key}_early_ms={early * 1e3:.4f}",
            f"RESULT steady_state.{key}_late_ms={later * 1e3:.4f}",
            f"RESULT steady_state.{key}_ratio={ratio:.3f}",
            f"RESULT steady_state.{key}_subnormal_share={end['exp_avg'][0]:.4f}",
        ]
    print(
        "(ms: mean time per step; of medians: late/early of the median step times, which a "
        "burst of load from other processes does not move; dead units: hidden units with no "
        f"positive activation on {PROBE:,} of the inputs; m1, m2: Adam's first and second "
        "moments, shares of their entries that are subnormal or zero, at the end of the run; "
        "FTZ: torch.set_flush_denormal(True))"
    )
    print()
    print("\n".join(verdicts))
    print(load_note(load))
    print()
    print(f"RESULT steady_state.steps={steps}")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
