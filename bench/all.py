"""Run every benchmark, each in a fresh process, and write ``docs/benchmarks.md``.

The scripts run one after the other (never two at once: they would share the cores) with the
same ``--threads`` (``op_overhead.py`` always uses one thread: it measures per-op overhead).
Their printed tables go into ``docs/benchmarks.md`` verbatim, with the command that produced
each, the machine (CPU, cores, memory), the versions of Python, NumPy, torch, scikit-learn and
nabla, the BLAS NumPy uses and its thread count, the date and the commit. On top, a summary
table: every target with the value measured in this run, the goal, whether it is met, and the
issue that set it (issue 8, or the compiled-kernels issue where that one changed or added it).

The values come from the ``RESULT name=value`` lines a script prints at its end; for scripts
that print none, from their ratio lines, read with the patterns in ``TARGETS`` below. Timings on
a shared machine are noisy. How a script compares implementations is in its docstring: the
framework benchmarks of the compiled-kernels issue (``mlp_train``, ``optim_step``,
``steady_state``) run every implementation in its own process, alternating over rounds, since
two libraries' thread pools in one process slow each other down.

    python bench/all.py               # every script in full: over ten minutes
    python bench/all.py --quick       # every script's --quick mode: about 3 minutes
    python bench/all.py --threads 1   # default: as many threads as this process's cores

MNIST-10k (``time_to_accuracy.py``, ``data.py``) needs ``$NABLA_DATA``; as in ``.ci/run``, a
``shared/data`` folder beside the checkout is used when it is unset.
"""

from __future__ import annotations

from common import pin_threads  # bench/common.py; pin before NumPy loads

THREADS = pin_threads()

import argparse  # noqa: E402
import datetime  # noqa: E402
import operator  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from importlib import metadata  # noqa: E402
from pathlib import Path  # noqa: E402

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
OUTPUT = ROOT / "docs" / "benchmarks.md"
PACKAGES = ("numpy", "torch", "scikit-learn", "nabla")

# (script, whether it takes --threads), in the order they run.
SCRIPTS = [
    ("op_overhead", False),
    ("mlp_step", True),
    ("mlp_train", True),
    ("compile_step", True),  # nb.compile's replayed step against eager and torch
    ("profile_step", True),  # where the MLP step's time goes, by function (cProfile)
    ("conv", True),
    ("optim_step", True),
    ("steady_state", True),
    ("data", True),
    ("startup", True),
    ("time_to_accuracy", True),
    ("distributed", False),  # its own threads: 1 per MPI rank, 2 for the comparison
]


@dataclass
class Target:
    """One target: where its value comes from and what it must be."""

    label: str
    key: str  # RESULT name: "script.name"
    goal: str  # an operator and a number: ">= 1.2"
    unit: str = "x"
    pattern: str = ""  # for scripts without RESULT lines: a regex whose group 1 is the value
    # goal "" (CONTEXT only): a figure shown for context, with no target
    issue: str = "issue 8"  # the issue that set the goal

    @property
    def script(self) -> str:
        return self.key.split(".")[0]

    def met(self, value: float) -> bool | None:
        if not self.goal:
            return None
        op, number = self.goal.split()
        compare = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}[op]
        return compare(value, float(number))


KERNELS_ISSUE = "compiled-kernels issue"  # moved the optimizers onto compiled kernels
COMPILE_ISSUE = "define-and-run issue"  # nb.compile
CONV_ISSUE = "convolution issue"  # compiled augmentation and convolution kernels
TARGETS = [
    Target(
        "MLP training, batch 64: nabla/fastest torch samples/s",
        "mlp_train.vs_torch_b64",
        ">= 1.2",
        issue=KERNELS_ISSUE,
    ),
    Target(
        "MLP training, batch 512: nabla/fastest torch samples/s",
        "mlp_train.vs_torch_b512",
        ">= 1.0",
        issue=KERNELS_ISSUE,
    ),
    Target(
        "MLP step at batch 512 / GEMM-only bound",
        "mlp_train.gemm_multiple_b512",
        "<= 1.2",
        issue=KERNELS_ISSUE,
    ),
    Target(
        "MLP training step, batch 64: reference updates / kernels time",
        "mlp_train.kernel_speedup_b64",
        ">= 1.0",
        issue=KERNELS_ISSUE,
    ),
    Target(
        "MLP training step, batch 512: reference updates / kernels time",
        "mlp_train.kernel_speedup_b512",
        ">= 1.0",
        issue=KERNELS_ISSUE,
    ),
    Target(
        "MLP step, batch 64, compiled: step time / GEMM-only bound",
        "compile_step.gemm_multiple_b64",
        "<= 1.25",
        issue=COMPILE_ISSUE,
    ),
    Target(
        "MLP training, batch 64, compiled: nabla/fastest torch samples/s",
        "compile_step.vs_torch_b64",
        ">= 1.5",
        issue=COMPILE_ISSUE,
    ),
    Target(
        "Rosenbrock + Adam: compiled / eager steps per second",
        "compile_step.rosenbrock_speedup",
        ">= 5",
        issue=COMPILE_ISSUE,
    ),
    Target("MLP training, batch 64: nabla/sklearn samples/s", "mlp_train.vs_sklearn_b64", "> 1"),
    Target("MLP training, batch 512: nabla/sklearn samples/s", "mlp_train.vs_sklearn_b512", "> 1"),
    Target(
        "LeNet-5, batch 64: nabla/fastest torch samples/s",
        "conv.lenet_vs_torch",
        ">= 1.3",
        issue=CONV_ISSUE,
    ),
    Target(
        "small convnet 32x32x3, batch 64: nabla/fastest torch samples/s",
        "conv.small_convnet_vs_torch",
        ">= 1.0",
        issue=CONV_ISSUE,
    ),
    Target(
        "ResNet-20 32x32x3, batch 64: nabla/fastest torch samples/s",
        "conv.resnet20_vs_torch",
        ">= 0.8",
        issue=CONV_ISSUE,
    ),
    Target(
        "Adam step, ~1M parameters: nabla/fastest torch time",
        "optim_step.adam_time_ratio",
        "<= 0.5",
        issue=KERNELS_ISSUE,
    ),
    Target(
        "SGD momentum step, ~1M parameters: nabla/fastest torch time",
        "optim_step.sgd_momentum_time_ratio",
        "<= 0.5",
        issue=KERNELS_ISSUE,
    ),
    Target(
        "MLP late/early step time, subnormal state: nabla",
        "steady_state.nabla_ratio",
        "<= 1.1",
        issue=KERNELS_ISSUE,
    ),
    Target(
        "MLP late/early step time, subnormal state: nabla reference",
        "steady_state.nabla_reference_ratio",
        "<= 1.1",
        issue=KERNELS_ISSUE,
    ),
    Target(
        "per-op overhead (elementwise, grad recording): nabla/torch time",
        "op_overhead.time_ratio",
        "<= 1.0",
        pattern=r"per-op overhead.*ratio ([\d.]+)",
    ),
    Target("import nabla", "startup.import_nabla_s", "< 0.3", unit=" s"),
    Target(
        "main job (nabla train), cold start: empty numba cache",
        "startup.main_job_cold_s",
        "<= 10",
        unit=" s",
        issue=KERNELS_ISSUE,
    ),
    Target(
        "main job (nabla train), warm start - start before kernels",
        "startup.main_job_warm_minus_reference_s",
        "<= 0.5",
        unit=" s",
        issue=KERNELS_ISSUE,
    ),
    Target("peak RSS of the MLP training loop: nabla/torch", "startup.peak_rss_ratio", "<= 1.0"),
    Target(
        "time to 97% on MNIST-10k: nabla/torch",
        "time_to_accuracy.ratio",
        "<= 1.0",
        issue=KERNELS_ISSUE,
    ),
    Target(
        "data pipeline (translate, rotate, noise, erase) / MLP training step, batch 64",
        "data.pipeline_vs_training",
        ">= 5",
        issue=CONV_ISSUE,
    ),
    Target(
        "LeNet + augmentation to 98.5% on MNIST-10k: nabla/torch time",
        "time_to_accuracy.lenet_ratio",
        "<= 1.0",
        issue=CONV_ISSUE,
    ),
    Target(
        "LeNet recipe: what augmentation adds to nabla's epoch",
        "time_to_accuracy.lenet_augment_share",
        "<= 0.1",
        unit="",
        issue=CONV_ISSUE,
    ),
]
# Other figures the scripts print, shown under the summary for context; the goal is the one the
# script itself prints, if any.
CONTEXT = [
    Target(
        "ResNet-20 32x32x3, batch 128: nabla/fastest torch samples/s",
        "conv.resnet20_b128_vs_torch",
        "",
    ),
    Target("LeNet-5 step: reference / kernels time", "conv.lenet_kernel_speedup", ""),
    Target("small convnet step: reference / kernels time", "conv.small_convnet_kernel_speedup", ""),
    Target("ResNet-20 step: reference / kernels time", "conv.resnet20_kernel_speedup", ""),
    Target(
        "data pipeline on the NumPy references / MLP training step",
        "data.pipeline_vs_training_reference",
        "",
    ),
    Target(
        "LeNet recipe, training time of the fastest epoch: nabla/torch",
        "time_to_accuracy.lenet_epoch_time_ratio",
        "",
    ),
    Target(
        "MLP forward + backward only (no optimizer), batch 64: nabla/torch samples/s",
        "mlp_step.vs_torch_b64",
        "",
        pattern=r"batch 64: nabla/torch samples/s = ([\d.]+)",
    ),
    Target(
        "MLP forward + backward only (no optimizer), batch 512: nabla/torch samples/s",
        "mlp_step.vs_torch_b512",
        "",
        pattern=r"batch 512: nabla/torch samples/s = ([\d.]+)",
    ),
    Target("MLP training step at batch 64 / GEMM-only bound", "mlp_train.gemm_multiple_b64", ""),
    Target(
        "Adam step, ~1M parameters: reference updates / kernels time",
        "optim_step.adam_kernel_speedup",
        "",
    ),
    Target(
        "SGD momentum step, ~1M parameters: reference updates / kernels time",
        "optim_step.sgd_momentum_kernel_speedup",
        "",
    ),
    Target(
        "MLP late/early step time, subnormal state: torch fused",
        "steady_state.torch_fused_ratio",
        "",
    ),
    Target(
        "MLP late/early step time, subnormal state: torch fused + flush denormal",
        "steady_state.torch_fused_ftz_ratio",
        "",
    ),
    Target(
        "main job (nabla train), warm start (numba cache in place)",
        "startup.main_job_warm_s",
        "",
        unit=" s",
    ),
    Target(
        "main job (nabla train), before kernels (NABLA_KERNELS=reference)",
        "startup.main_job_reference_s",
        "",
        unit=" s",
    ),
    Target(
        "MNIST-10k recipe, training time of the fastest epoch: nabla/torch",
        "time_to_accuracy.epoch_time_ratio",
        "",
    ),
    Target(
        "time to 97% on MNIST-10k as measured (not load-corrected): nabla/torch",
        "time_to_accuracy.measured_ratio",
        "",
    ),
    Target(
        "data parallel, global batch 128: 2-rank scaling efficiency (strong)",
        "distributed.strong_efficiency_b128",
        "",
        unit="",
    ),
    Target(
        "data parallel, global batch 512: 2-rank scaling efficiency (strong)",
        "distributed.strong_efficiency_b512",
        "",
        unit="",
    ),
    Target(
        "data parallel, per-rank batch 512: 2-rank scaling efficiency (weak)",
        "distributed.weak_efficiency_b512",
        "",
        unit="",
    ),
    Target(
        "global batch 512: 2 ranks x 1 thread / 1 process x 2 threads samples/s",
        "distributed.vs_threads_b512",
        "",
    ),
    Target(
        "Allreduce of the 1.08 MB gradient buffer, 2 ranks",
        "distributed.allreduce_us",
        "",
        unit=" us",
    ),
    Target(
        "share of the 2-rank step in the Allreduce, global batch 128",
        "distributed.comm_share_b128",
        "",
        unit="",
    ),
]


@dataclass
class Run:
    script: str
    command: str
    output: str
    seconds: float
    returncode: int | None  # None: it ran past the time limit
    load: float  # 1-minute load average when it started: > cores means others were running


def run_script(script: str, takes_threads: bool, quick: bool, timeout: float) -> Run:
    """Run ``bench/SCRIPT.py`` in a fresh interpreter; its stdout and stderr, interleaved."""
    args = [f"bench/{script}.py"] + (["--quick"] if quick else [])
    args += ["--threads", str(THREADS)] if takes_threads else []
    load, start = os.getloadavg()[0], time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        output, code = done.stdout, done.returncode
    except subprocess.TimeoutExpired as error:
        output, code = (error.stdout or b"").decode(errors="replace"), None
    seconds = time.perf_counter() - start
    return Run(script, "python " + " ".join(args), output, seconds, code, load)


def results(runs: list[Run]) -> dict[str, str]:
    """Every ``RESULT script.name=value`` line the scripts printed."""
    found = {}
    for run in runs:
        for name, value in re.findall(r"^RESULT ([\w.]+)=(\S+)$", run.output, re.MULTILINE):
            found[name if "." in name else f"{run.script}.{name}"] = value
    return found


def value_of(target: Target, found: dict[str, str], runs: dict[str, Run]) -> float | None:
    if target.key in found:
        return float(found[target.key])
    run = runs.get(target.script)
    if target.pattern and run is not None:
        match = re.search(target.pattern, run.output, re.MULTILINE)
        if match:
            return float(match[1])
    return None


def summary_rows(targets: list[Target], found: dict, runs: dict) -> list[tuple[str, ...]]:
    rows = []
    for t in targets:
        value = value_of(t, found, runs)
        if value is None:
            run = runs.get(t.script)
            why = "skipped" if run and "skipped" in run.output else "not measured"
            if run is None:
                why = "not run"
            elif run.returncode != 0:
                why = "script failed" if run.returncode is not None else "timed out"
            issue = t.issue if t.goal else "-"
            rows.append((t.label, why, t.goal or "-", "-", f"bench/{t.script}.py", "-", issue))
        else:
            shown = f"{value:.3f}{t.unit}" if t.unit == " s" else f"{value:.2f}{t.unit}"
            status = {True: "met", False: "**not met**", None: "-"}[t.met(value)]
            load = runs[t.script].load
            rows.append(
                (
                    t.label,
                    shown,
                    t.goal or "-",
                    status,
                    f"bench/{t.script}.py",
                    f"{load:.1f}",
                    t.issue if t.goal else "-",
                )
            )
    return rows


def table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


# --- the machine ----------------------------------------------------------------------------------


def cpu_model() -> tuple[str, int]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown", os.cpu_count() or 0
    models = re.findall(r"^model name\s*:\s*(.*)$", text, re.MULTILINE)
    return (models[0] if models else "unknown"), len(re.findall(r"^processor\s*:", text, re.M))


def memory() -> str:
    try:
        kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())[1])
    except (OSError, TypeError):
        return "unknown"
    return f"{kib / 2**20:.1f} GiB"


def version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def numpy_blas() -> str:
    """The BLAS library NumPy loaded and its threads (threadpoolctl), else NumPy's build config."""
    import numpy as np

    try:
        from threadpoolctl import threadpool_info

        pools = [p for p in threadpool_info() if p["user_api"] == "blas"]
        if pools:
            p = pools[0]
            return (
                f"{p['internal_api']} {p.get('version') or ''} ({p.get('architecture') or '?'}, "
                f"{p['num_threads']} thread(s); {Path(p['filepath']).name}) [threadpoolctl]"
            )
    except ImportError:
        pass
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return f"{blas.get('name')} {blas.get('version')} (threads not known: no threadpoolctl)"


def commit() -> str:
    """The checked-out commit, and whether the working tree differs from it (read-only git)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown (no git)"
    return (head or "unknown") + (" with uncommitted changes" if dirty else "")


def command(quick: bool) -> str:
    return "python bench/all.py" + (" --quick" if quick else "") + f" --threads {THREADS}"


def machine_rows(quick: bool, load_before: float) -> list[tuple[str, str]]:
    model, cores = cpu_model()
    return [
        ("date", datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")),
        ("command", command(quick)),
        ("commit", commit()),
        ("CPU", f"{model}, {cores} logical core(s), {len(os.sched_getaffinity(0))} usable"),
        ("memory", memory()),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("NumPy / torch / scikit-learn / nabla", " / ".join(map(version, PACKAGES))),
        ("NumPy's BLAS", numpy_blas()),
        ("threads", f"{THREADS} (OMP/OPENBLAS/MKL/NUMBA_NUM_THREADS, torch.set_num_threads)"),
        ("NABLA_DATA", os.environ.get("NABLA_DATA") or "unset (MNIST-10k benchmarks skip)"),
        (
            "load average (1 min)",
            f"{load_before:.1f} before the run, {os.getloadavg()[0]:.1f} after",
        ),
    ]


def write(runs: list[Run], quick: bool, load_before: float) -> str:
    found, by_name = results(runs), {r.script: r for r in runs}
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{command(quick)}`; rerun it rather than editing this file. Each "
        "script ran in a fresh process, one at a time; its implementations ran on the same "
        "data and threads, in that process or (the benchmarks of the compiled-kernels issue) "
        "each in its own, alternating over rounds. The machine may be shared "
        "with other work: the 1-minute load average when each script started is shown with its "
        f"figures and output (above {len(os.sched_getaffinity(0))}, the cores were "
        "oversubscribed and its figures are unreliable: a thread pool that loses a core to "
        "another process stalls at every barrier). What each script times and how is in its "
        "docstring.",
        "",
        "## Machine",
        "",
        *table(("", ""), machine_rows(quick, load_before)),
        "",
        "## Targets (issue 8; the compiled-kernels issue where it changed or added them)",
        "",
        *table(
            ("target", "measured", "goal", "status", "from", "load", "set by"),
            summary_rows(TARGETS, found, by_name),
        ),
        "",
        "Other figures the scripts print, for context (a goal only where the script states one):",
        "",
        *table(
            ("ratio", "measured", "goal", "status", "from", "load", "set by"),
            summary_rows(CONTEXT, found, by_name),
        ),
        "",
        "## Outputs",
    ]
    for run in runs:
        status = {0: "exit 0", None: "**timed out**"}.get(
            run.returncode, f"**exit {run.returncode}**"
        )
        lines += [
            "",
            f"### bench/{run.script}.py",
            "",
            f"`{run.command}` ({run.seconds:.0f} s, {status}; load {run.load:.1f} at start)",
            "",
            "```text",
            run.output.rstrip("\n"),
            "```",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each script's --quick mode")
    parser.add_argument("--threads", type=int, default=THREADS, help="BLAS/OpenMP/torch threads")
    parser.add_argument("--output", type=Path, default=OUTPUT, help="the Markdown file to write")
    parser.add_argument("--only", nargs="+", metavar="SCRIPT", help="run only these scripts")
    args = parser.parse_args(argv)
    shared = ROOT.parent / "shared" / "data"
    if not os.environ.get("NABLA_DATA") and shared.is_dir():
        os.environ["NABLA_DATA"] = str(shared)
    timeout = 300 if args.quick else 900
    runs = []
    load_before = os.getloadavg()[0]
    for script, takes_threads in SCRIPTS:
        if args.only and script not in args.only:
            continue
        print(f"--- bench/{script}.py", flush=True)
        run = run_script(script, takes_threads, args.quick, timeout)
        print(run.output.rstrip("\n"))
        print(f"--- {run.seconds:.0f} s, exit {run.returncode}\n", flush=True)
        runs.append(run)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(write(runs, args.quick, load_before), encoding="utf-8")
    found, by_name = results(runs), {r.script: r for r in runs}
    print(f"wrote {args.output}\n")
    for label, value, goal, status, _, load, _ in summary_rows(TARGETS, found, by_name):
        print(f"{label:<64}{value:>14}  goal {goal:<8}{status.strip('*'):<9} load {load}")


if __name__ == "__main__":
    main()
