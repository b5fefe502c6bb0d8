"""Time of one convnet training step in nabla against PyTorch eager, with nabla's per-layer profile.

Two models, in float32, at batch 64:

* LeNet-5 on (64, 1, 28, 28): Conv2d(1, 6, 5, padding=2) - ReLU - MaxPool2d(2) - Conv2d(6, 16, 5)
  - ReLU - MaxPool2d(2) - Flatten - Linear(400, 120) - ReLU - Linear(120, 84) - ReLU - Linear(84, 10)
* a small convnet on (64, 3, 32, 32): Conv2d(3, 32, 3, padding=1) - ReLU - MaxPool2d(2)
  - Conv2d(32, 64, 3, padding=1) - ReLU - MaxPool2d(2) - Flatten - Linear(4096, 10)

One "step" is: zero the gradients as a training loop does (nabla: ``model.zero_grad()``; torch:
``p.grad = None``), forward, cross-entropy loss, backward. There is no optimizer update yet:
nabla has no optimizer, so the step stops at the gradients. Both frameworks run in one process,
on the same batch, with the same weights (nabla's ``state_dict`` copied into torch) and the same
number of BLAS / OpenMP threads; the script first checks that their losses and gradients agree.
Each figure is the median over repeats of the mean time of several steps, after a warm-up, one
framework after the other (their thread pools spin after each call, so interleaving them would
make each pay for the other's idle threads).

Then it profiles nabla's LeNet step layer by layer: each module's forward is timed with
``time.perf_counter`` in a manual loop over the ``Sequential``, and each layer's backward by
timing the ``Function.backward`` of the graph nodes that layer's forward recorded. What is left
of ``loss.backward()`` is the engine (graph walk, gradient accumulation).

Allocation matters here: glibc's malloc serves large arrays (im2col matrices of several MB) by
``mmap`` and unmaps them on free, so each step page-faults its fresh temporaries in again; its
threshold rises only after the process frees a larger block, so one model's timings can depend on
which models ran before. The profile therefore runs first, in a fresh process like the timings.
Run with ``MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=268435456`` to see nabla
without that cost.

    python bench/conv.py               # about 30 s
    python bench/conv.py --quick       # about 5 s
    python bench/conv.py --threads 1   # default: as many threads as this process's cores
"""

from __future__ import annotations

from common import (  # bench/common.py; pin before NumPy loads
    measure,
    pin_threads,
    print_step_table,
    training_steps,
)

THREADS = pin_threads()

import argparse  # noqa: E402
import time  # noqa: E402
from collections import defaultdict  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

import nabla as nb  # noqa: E402
from nabla import nn  # noqa: E402

BATCH = 64
CLASSES = 10


def lenet(lib):
    """LeNet-5 with ReLU and max pooling, built from ``lib`` (``nabla.nn`` or ``torch.nn``)."""
    return lib.Sequential(
        lib.Conv2d(1, 6, 5, padding=2),
        lib.ReLU(),
        lib.MaxPool2d(2),
        lib.Conv2d(6, 16, 5),
        lib.ReLU(),
        lib.MaxPool2d(2),
        lib.Flatten(),
        lib.Linear(16 * 5 * 5, 120),
        lib.ReLU(),
        lib.Linear(120, 84),
        lib.ReLU(),
        lib.Linear(84, CLASSES),
    )


def small_convnet(lib):
    """Two 3x3 conv blocks and a linear classifier, for 32x32 RGB images."""
    return lib.Sequential(
        lib.Conv2d(3, 32, 3, padding=1),
        lib.ReLU(),
        lib.MaxPool2d(2),
        lib.Conv2d(32, 64, 3, padding=1),
        lib.ReLU(),
        lib.MaxPool2d(2),
        lib.Flatten(),
        lib.Linear(64 * 8 * 8, CLASSES),
    )


# (name, builder, input shape)
MODELS = [
    ("LeNet-5", lenet, (BATCH, 1, 28, 28)),
    ("small convnet", small_convnet, (BATCH, 3, 32, 32)),
]


def pair_of_models(build) -> tuple[nn.Module, torch.nn.Module]:
    """The nabla model and a torch twin holding a copy of its weights."""
    nb.manual_seed(0)
    model, twin = build(nn), build(torch.nn)
    twin.load_state_dict(
        {k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()}
    )
    return model, twin


def batch(shape: tuple, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random(shape, dtype=np.float32)
    y = rng.integers(0, CLASSES, size=shape[0], dtype=np.int64)
    return x, y


def steps(model, twin, x: np.ndarray, y: np.ndarray) -> dict:
    """One training step per framework, each a function of no arguments returning the loss."""
    return training_steps(model, twin, x, y)


def check(name: str, model, twin, x: np.ndarray, y: np.ndarray) -> None:
    """Print how far nabla's loss and gradients are from torch's; stop if they disagree."""
    run = steps(model, twin, x, y)
    nabla_loss, torch_loss = run["nabla"]().item(), run["torch"]().item()
    grads = {k: t.grad.numpy() for k, t in twin.named_parameters()}
    # Relative to the largest gradient entry: conv gradients sum thousands of float32 terms.
    grad_err = max(
        float(np.abs(p.grad - grads[k]).max() / max(np.abs(grads[k]).max(), 1e-12))
        for k, p in model.named_parameters()
    )
    loss_err = abs(nabla_loss - torch_loss)
    ok = "ok" if loss_err < 1e-5 and grad_err < 1e-4 else "MISMATCH"
    print(
        f"check, {name}: loss nabla {nabla_loss:.7f}, torch {torch_loss:.7f}; "
        f"|difference| {loss_err:.1e}, max relative grad difference {grad_err:.1e} ({ok})"
    )
    if ok != "ok":
        raise SystemExit("nabla and torch disagree; timings would compare different computations")


def report(results: dict[str, dict[str, float]]) -> None:
    print_step_table(results, f"model (batch {BATCH})", BATCH, ["torch"])
    for name, t in results.items():
        print(f"{name}: nabla/torch samples/s = {t['torch'] / t['nabla']:.2f} (>1: nabla faster)")


# --- per-layer profile ----------------------------------------------------------------------------


def new_nodes(out, known: set) -> list:
    """Graph nodes reachable from ``out`` that are not in ``known``: what one layer recorded."""
    found, stack = [], [out._node]
    while stack:
        node = stack.pop()
        if node is None or node in known:
            continue
        known.add(node)
        found.append(node)
        stack.extend(t._node for t in node.inputs if hasattr(t, "_node"))
    return found


def timed_backwards(classes, owner: dict, totals: dict) -> dict:
    """Replace each class's ``backward`` by one that adds its time to ``totals[owner[node]]``;
    returns the originals, to be put back."""
    originals = {}
    for cls in classes:
        originals[cls] = cls.__dict__["backward"]
        inner = originals[cls].__func__

        def backward(ctx, grad, inner=inner):
            start = time.perf_counter()
            result = inner(ctx, grad)
            totals[owner.get(ctx, "other")] += time.perf_counter() - start
            return result

        cls.backward = staticmethod(backward)
    return originals


def profile(model: nn.Sequential, x: np.ndarray, y: np.ndarray, steps_: int) -> list[str]:
    """The mean time of each layer's forward and backward in nabla over ``steps_`` steps, as the
    lines of a table."""
    xn, yn = nb.tensor(x), nb.tensor(y)
    labels = [f"{i} {type(m).__name__}" for i, m in enumerate(model)] + ["cross_entropy"]
    forward, backward = defaultdict(float), defaultdict(float)
    parts = defaultdict(float)  # zero_grad, forward, backward of the whole step
    owner: dict = {}  # graph node -> the label of the layer that recorded it
    originals = {}
    try:
        warm = 3  # untimed steps: the first finds the node classes, all warm up
        for step in range(warm + steps_):
            start = time.perf_counter()
            model.zero_grad()
            t_zero = time.perf_counter()
            owner.clear()
            known, h = set(), xn
            for label, layer in zip(labels, [*model, None]):
                t0 = time.perf_counter()
                h = nn.functional.cross_entropy(h, yn) if layer is None else layer(h)
                forward[label] += time.perf_counter() - t0
                owner.update(dict.fromkeys(new_nodes(h, known), label))
            t_fwd = time.perf_counter()
            h.backward()
            end = time.perf_counter()
            parts["zero_grad"] += t_zero - start
            parts["forward"] += t_fwd - t_zero
            parts["backward"] += end - t_fwd
            if step == 0:
                originals = timed_backwards({type(n) for n in owner}, owner, backward)
            if step == warm - 1:
                for totals in (forward, backward, parts):
                    totals.clear()
    finally:
        for cls, original in originals.items():
            cls.backward = original

    ms = {k: v / steps_ * 1e3 for k, v in parts.items()}
    step_ms = sum(ms.values())
    header = f"{'nabla LeNet-5 layer':<22}{'forward ms':>11}{'backward ms':>13}{'% of step':>11}"
    lines = [header, "-" * len(header)]
    for label in labels:
        f, b = forward[label] / steps_ * 1e3, backward[label] / steps_ * 1e3
        lines.append(f"{label:<22}{f:>11.3f}{b:>13.3f}{(f + b) / step_ms:>11.0%}")
    if backward.get("other"):
        other = backward["other"] / steps_ * 1e3
        lines.append(f"{'other nodes':<22}{'':>11}{other:>13.3f}{other / step_ms:>11.0%}")
    engine = ms["backward"] - sum(backward.values()) / steps_ * 1e3
    lines.append(f"{'engine (graph walk)':<22}{'':>11}{engine:>13.3f}{engine / step_ms:>11.0%}")
    zero = ms["zero_grad"]
    lines.append(f"{'zero_grad':<22}{zero:>11.3f}{'':>13}{zero / step_ms:>11.0%}")
    lines.append(
        f"step {step_ms:.3f} ms = zero_grad {zero:.3f} + forward {ms['forward']:.3f} "
        f"+ backward {ms['backward']:.3f} (mean of {steps_} steps, timers included)"
    )
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~5 s run with fewer steps")
    parser.add_argument("--threads", type=int, default=THREADS, help="BLAS/OpenMP/torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    number, repeat, warm = (3, 3, 0.1) if args.quick else (10, 11, 0.5)
    print(
        f"numpy {np.__version__}, torch {torch.__version__}, nabla {nb.__version__}; "
        f"{THREADS} thread(s); float32, batch {BATCH}; step = zero grads + forward + "
        f"cross-entropy + backward (no optimizer update); median of {repeat} repeats of "
        f"{number} steps\n"
    )
    # Profile first: the glibc allocator adapts to the largest arrays a process has freed (see
    # the module docstring), so after the small convnet LeNet would run faster than it was timed.
    model, _ = pair_of_models(lenet)
    layer_table = profile(model, *batch(MODELS[0][2]), steps_=10 if args.quick else 50)
    results = {}
    for name, build, shape in MODELS:
        model, twin = pair_of_models(build)
        x, y = batch(shape)
        check(name, model, twin, x, y)
        results[name] = measure(steps(model, twin, x, y), number, repeat, warm)
    print()
    report(results)
    print()
    print("\n".join(layer_table))


if __name__ == "__main__":
    main()
