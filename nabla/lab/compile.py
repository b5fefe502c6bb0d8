"""``nabla lab compile``: the same model trained define-by-run and define-and-run, side by side.

Define-by-run (nabla's eager mode, as Chainer and PyTorch) records the graph anew at every step:
every operation creates a Tensor and a graph node, backward sorts the nodes, every intermediate
array is allocated and freed. Define-and-run (``nb.compile``, as Theano and TensorFlow 1) records
the step once and replays a fixed program over preallocated buffers. The arithmetic is the same,
bit for bit; what differs is the bookkeeping around it. For three problems (the MNIST MLP,
LeNet-5, and the 2-D Rosenbrock function with Adam) this page measures, both ways:

* the time per step (median of blocks of steps after a warm-up, in this process, the two modes
  in alternating blocks);
* the *bookkeeping share* of eager mode: (eager - compiled) / eager, the part of a step that
  define-and-run removes (graph recording, Tensor objects, dispatch, allocation);
* the memory one step allocates (tracemalloc's peak above the start, over a few steps), and the
  buffers a plan keeps for good.

and prints the recorded program of the smallest problem: the static graph a student can read.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

EXAMPLES = """examples:
  nabla lab compile                      # writes compile/report.html (about a minute)
  nabla lab compile --steps 50 --out /tmp/c
"""

BLOCK = 10  # steps between two readings of the clock


@dataclass
class Problem:
    name: str
    setup: object  # () -> (train_step, arguments): a fresh model and optimizer, same seed
    note: str


@dataclass
class Measured:
    name: str
    note: str
    eager_seconds: float
    compiled_seconds: float
    eager_bytes: int
    compiled_bytes: int
    plan_bytes: int
    plan: str

    @property
    def bookkeeping(self) -> float:
        return 1.0 - self.compiled_seconds / self.eager_seconds


def _classifier(model_fn, shape, classes: int, batch: int):
    def setup():
        import nabla as nb
        from nabla import nn, optim

        nb.manual_seed(0)
        model = model_fn()
        opt = optim.Adam(model.parameters(), lr=1e-3)
        rng = np.random.default_rng(0)
        x = rng.random((batch, *shape), dtype=np.float32)
        y = rng.integers(0, classes, batch)

        def step(xb, yb):
            loss = nn.functional.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss

        return step, (x, y)

    return setup


def _rosenbrock():
    import nabla as nb
    from nabla import optim

    from .functions import FUNCTIONS

    f = FUNCTIONS["rosenbrock"]
    point = nb.tensor(f.start, dtype="float64", requires_grad=True)
    opt = optim.Adam([point], lr=1e-3)

    def step():
        loss = f(point)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return step, ()


def problems() -> list[Problem]:
    from .. import models

    return [
        Problem(
            "MLP",
            _classifier(lambda: models.mlp([784, 256, 256, 10]), (784,), 10, 64),
            "784-256-256-10 ReLU, Adam, batch 64 (float32)",
        ),
        Problem(
            "LeNet-5",
            _classifier(models.lenet, (1, 28, 28), 10, 64),
            "28x28 inputs, Adam, batch 64 (float32)",
        ),
        Problem("Rosenbrock", _rosenbrock, "2-D, Adam from (-1.2, 1) (float64)"),
    ]


def seconds_per_step(steps_and_args: list, steps: int) -> list[float]:
    """Seconds per step of each (step, args), timed in alternating blocks of ``BLOCK`` steps
    (A B A B ...) after a warm-up, the median block each: a slow spell of a shared machine then
    falls on both modes alike, not on whichever ran during it."""
    for step, args in steps_and_args:
        for _ in range(max(steps // 5, 3)):  # warm-up: kernels, allocators, thread pools
            step(*args)
    blocks = [[] for _ in steps_and_args]
    for _ in range(steps // BLOCK):
        for times, (step, args) in zip(blocks, steps_and_args):
            start = time.perf_counter()
            for _ in range(BLOCK):
                step(*args)
            times.append((time.perf_counter() - start) / BLOCK)
    return [statistics.median(times) for times in blocks]


def bytes_per_step(step, args, steps: int = 5) -> int:
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        for _ in range(steps):
            step(*args)
        return tracemalloc.get_traced_memory()[1] - start
    finally:
        tracemalloc.stop()


def measure(problem: Problem, steps: int) -> Measured:
    import nabla as nb

    eager_step, args = problem.setup()
    tensors = tuple(nb.Tensor._make(a) for a in args)
    first = eager_step(*tensors)
    train_step, arrays = problem.setup()
    compiled = nb.compile(train_step)
    if not np.array_equal(compiled(*arrays).data, first.data):  # the trace: eager's numbers
        raise AssertionError(f"{problem.name}: the compiled step's first loss differs from eager's")
    eager, compiled_seconds = seconds_per_step([(eager_step, tensors), (compiled, arrays)], steps)
    plan = compiled.plan
    return Measured(
        problem.name,
        problem.note,
        eager,
        compiled_seconds,
        bytes_per_step(eager_step, tensors),
        bytes_per_step(compiled, arrays),
        sum(b.nbytes for b in plan.buffers),
        str(plan),
    )


def plot(results: list[Measured]):
    from .report import new_figure

    figure = new_figure((11, 4.2))
    time_axes, memory_axes = figure.subplots(1, 2)
    positions = np.arange(len(results))
    width = 0.38
    for axes, values, unit, title in (
        (
            time_axes,
            [(r.eager_seconds * 1e6, r.compiled_seconds * 1e6) for r in results],
            "microseconds per step (log scale)",
            "time per step",
        ),
        (
            memory_axes,
            [(r.eager_bytes / 1024, r.compiled_bytes / 1024) for r in results],
            "KiB allocated during a step (log scale)",
            "memory a step allocates",
        ),
    ):
        eager, compiled = zip(*values)
        axes.bar(
            positions - width / 2, eager, width, label="eager (define-by-run)", color="#4c72b0"
        )
        axes.bar(
            positions + width / 2,
            compiled,
            width,
            label="compiled (define-and-run)",
            color="#dd8452",
        )
        axes.set_yscale("log")
        axes.set_xticks(positions, [r.name for r in results])
        axes.set_ylabel(unit)
        axes.set_title(title, fontsize=10)
        for x, (e, c) in zip(positions, values):
            axes.annotate(f"{e / c:.1f}x", (x, max(e, c)), ha="center", va="bottom", fontsize=9)
        axes.margins(y=0.15)
    handles, labels = time_axes.get_legend_handles_labels()
    figure.suptitle(
        "The same steps, bit for bit: eager against nb.compile (above the bars: eager / compiled)",
        fontsize=10,
    )
    figure.legend(handles, labels, loc="outside lower center", ncol=2, fontsize=9, frameon=False)
    return figure


def add_arguments(parser) -> None:
    parser.add_argument(
        "--steps", type=int, default=200, help="timed steps per problem and mode (default 200)"
    )
    parser.add_argument("--out", default="compile", help="the output folder (default compile/)")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")


def main(args) -> int:
    from .report import LabReport

    if args.steps < BLOCK:
        raise SystemExit(f"nabla lab compile: --steps must be at least {BLOCK}, got {args.steps}")
    out = Path(args.out)
    results = []
    for problem in problems():
        results.append(measure(problem, args.steps))
        if not args.quiet:
            r = results[-1]
            print(
                f"{r.name}: eager {r.eager_seconds * 1e6:.0f} us, compiled "
                f"{r.compiled_seconds * 1e6:.0f} us per step"
            )
    page = LabReport(
        out,
        "Define-by-run and define-and-run",
        subtitle=f"{args.steps} timed steps per problem and mode, in one process",
    )
    page.text(
        "Define-by-run (nabla's eager mode, as Chainer and PyTorch) records the graph anew at "
        "every step: every operation creates a Tensor and a graph node, backward sorts the "
        "nodes, every intermediate array is allocated and freed. Define-and-run (nb.compile, as "
        "Theano and TensorFlow 1) records the step once and replays a fixed program over "
        "preallocated buffers. The arithmetic is the same, bit for bit (each problem's first "
        "loss is checked); what differs is the bookkeeping around it.",
        "Problems: " + "; ".join(f"{r.name}: {r.note}" for r in results) + ". Time per step: "
        "the median of 10-step blocks after a warm-up, eager and compiled blocks in turn. "
        "Bookkeeping share: (eager - compiled) / eager, the part of an eager step that "
        "define-and-run removes. Memory: tracemalloc's peak above the start during a step "
        "(the plan's own buffers are allocated once, at "
        "the trace). Convolution and pooling have no lowering yet: in LeNet-5 they run their "
        "own code inside the plan, allocations included.",
    )
    page.figure(plot(results), "compile", "time per step and memory allocated per step")
    page.table(
        [
            "problem",
            "eager us",
            "compiled us",
            "speed-up",
            "bookkeeping",
            "eager KiB",
            "compiled KiB",
            "plan KiB",
        ],
        [
            [
                r.name,
                r.eager_seconds * 1e6,
                r.compiled_seconds * 1e6,
                r.eager_seconds / r.compiled_seconds,
                r.bookkeeping,
                r.eager_bytes / 1024,
                r.compiled_bytes / 1024,
                r.plan_bytes / 1024,
            ]
            for r in results
        ],
        caption="us: microseconds per step; bookkeeping: share of the eager step; KiB: "
        "allocated during a step; plan KiB: the buffers a plan keeps",
    )
    page.heading(f"The recorded program: {results[-1].name}")
    page.code(results[-1].plan)
    page.write()
    summary = "; ".join(
        f"{r.name} {r.eager_seconds / r.compiled_seconds:.1f}x faster, "
        f"bookkeeping {r.bookkeeping:.0%} of eager"
        for r in results
    )
    print(summary)
    if not args.quiet:
        print(f"report: {out / 'report.html'}")
    return 0
