"""Convnet training steps in nabla against PyTorch's fastest configuration, each in its own process.

Models, float32, SGD with momentum 0.9 (lr 0.01), cross-entropy, from the same weights:

* LeNet-5 (``nabla.models.lenet``) on (B, 1, 28, 28): conv5x5(6, padding 2) - ReLU - max pool -
  conv5x5(16) - ReLU - max pool - 120 - 84 - 10;
* a small convnet on (B, 3, 32, 32): Conv2d(3, 32, 3, padding=1) - ReLU - MaxPool2d(2) -
  Conv2d(32, 64, 3, padding=1) - ReLU - MaxPool2d(2) - Flatten - Linear(4096, 10);
* ResNet-20 (``nabla.models.resnet(20)``, He et al. 2016: 19 conv-BN layers in three stages of
  width 16, 32, 64, global average pooling, linear) on (B, 3, 32, 32), with batch norm in
  training mode; torch runs a twin with the same parameter names.

One step is what a training loop does: zero the gradients, forward, loss, backward, update, on
one fixed random batch (timings do not depend on the values). Every implementation runs in a
fresh process (``--worker NAME``, launched one at a time by this script, which imports neither
nabla nor torch): two libraries' thread pools in one process slow each other down. With several
``--rounds`` the implementations alternate (A B C ... A B C ...) and every figure is the median
over the rounds of a worker's own median step time (over chunks of steps after a warm-up).

PyTorch runs in several configurations and nabla is compared with the fastest one for each model:
``torch`` (defaults: NCHW, mkldnn on, foreach SGD), ``torch fused`` (``SGD(fused=True)`` and
``torch.set_flush_denormal(True)``), ``torch channels_last`` (fused as well, model and input in
``torch.channels_last``), ``torch no-mkldnn`` (fused, ``torch.backends.mkldnn.enabled = False``).
nabla runs on its compiled kernels and, in the full run, as ``nabla reference``
(``NABLA_KERNELS=reference``: the NumPy code everywhere).

Before timing, each worker reports the loss and every parameter's gradient norm at the first step;
the script stops if nabla and torch disagree (they would time different computations). The full
run also prints, for each model, where nabla's step goes: forward and backward time by operation
(``Function`` class), from a profiling worker.

Targets (the convolution issue): LeNet-5 >= 1.3x, small convnet >= 1.0x, ResNet-20 >= 0.8x
PyTorch's samples/s at batch 64. The last lines, ``RESULT name=value``, are for ``bench/all.py``.

    python bench/conv.py               # about 8 minutes: 2 rounds, batch 64 and 128
    python bench/conv.py --quick       # about a minute: 1 round, batch 64, three implementations
    python bench/conv.py --threads 1   # default: as many threads as this process's cores
"""

from __future__ import annotations

from common import (  # bench/common.py; pin before NumPy loads
    KERNELS,
    REFERENCE,
    Job,
    alternate,
    load_note,
    nabla_about,
    pin_threads,
    send,
    verdict,
    versions,
)

THREADS = pin_threads()

import argparse  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import zlib  # noqa: E402
from collections import defaultdict  # noqa: E402
from pathlib import Path  # noqa: E402

from lenet_recipe import torch_lenet  # noqa: E402  nabla.models.lenet in torch

CLASSES, LR, MOMENTUM = 10, 0.01, 0.9
# key -> (label, input shape without the batch, target: nabla/torch samples/s at batch 64)
MODELS = {
    "lenet": ("LeNet-5", (1, 28, 28), 1.3),
    "small_convnet": ("small convnet", (3, 32, 32), 1.0),
    "resnet20": ("ResNet-20", (3, 32, 32), 0.8),
}
# worker name -> (label, environment changes)
NABLA = {"nabla": ("nabla", KERNELS), "nabla-reference": ("nabla reference", REFERENCE)}
TORCH = {
    "torch": "torch",
    "torch-fused": "torch fused",
    "torch-channels-last": "torch channels_last",
    "torch-no-mkldnn": "torch no-mkldnn",
}
CHUNK_SECONDS, CHUNKS, WARM_SECONDS = 0.3, 7, 1.0


# --- the models, built from either library -----------------------------------------------------


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


def torch_resnet20():
    """nabla.models.resnet(20) in torch, with the same parameter names."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.shortcut = nn.Identity()
            if stride != 1 or cin != cout:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            out = torch.relu(self.bn1(self.conv1(x)))
            return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))

    class ResNet(nn.Module):
        def __init__(self, width: int = 16, n: int = 3):
            super().__init__()
            self.conv = nn.Conv2d(3, width, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(width)
            blocks, channels = [], width
            for stage, out in enumerate((width, 2 * width, 4 * width)):
                for i in range(n):
                    blocks.append(Block(channels, out, 2 if stage > 0 and i == 0 else 1))
                    channels = out
            self.blocks = nn.Sequential(*blocks)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(channels, CLASSES)

        def forward(self, x):
            x = self.pool(self.blocks(torch.relu(self.bn(self.conv(x)))))
            return self.fc(x.flatten(1))

    return ResNet()


def weights(shapes: dict) -> dict:
    """Parameters for every name -> shape, the same in every worker: conv and linear weights
    uniform within 1/sqrt(fan_in) (torch's default bound) from a seed derived from the name,
    biases within the same bound, batch-norm scales 1 and shifts 0."""
    import numpy as np

    out = {}
    for name, shape in shapes.items():
        layer = name.rsplit(".", 1)[0]
        fan_in = int(np.prod(shapes.get(layer + ".weight", shape)[1:]))
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        if len(shapes.get(layer + ".weight", ())) == 1:  # batch norm: weight 1, bias 0
            value = np.ones(shape) if name.endswith("weight") else np.zeros(shape)
        else:
            bound = 1 / np.sqrt(fan_in)
            value = rng.uniform(-bound, bound, shape)
        out[name] = value.astype(np.float32)
    return out


def batch(model: str, size: int):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((size, *MODELS[model][1]), dtype=np.float32)
    return x, rng.integers(0, CLASSES, size=size, dtype=np.int64)


# --- workers --------------------------------------------------------------------------------


def nabla_setup(name: str, model_key: str, size: int):
    """(about, step, first-step report, model, inputs, targets, optimizer) for nabla."""
    import numpy as np

    import nabla as nb
    from nabla import models, nn, optim

    nb.set_num_threads(THREADS)
    build = {
        "lenet": models.lenet,
        "small_convnet": lambda: small_convnet(nn),
        "resnet20": lambda: models.resnet(20),
    }[model_key]
    model = build()
    named = dict(model.named_parameters())
    state = model.state_dict()
    state.update(weights({k: tuple(p.shape) for k, p in named.items()}))
    model.load_state_dict(state)
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    x, y = batch(model_key, size)
    xb, yb = nb.from_numpy(x), nb.from_numpy(y)

    def step():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    def first():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        norms = {k: float(np.linalg.norm(p.grad)) for k, p in named.items()}
        return float(loss.item()), norms

    return nabla_about(name), step, first, model, xb, yb, opt


def torch_setup(name: str, model_key: str, size: int):
    """(about, step, first-step report) for one torch configuration."""
    import numpy as np
    import torch

    torch.set_num_threads(THREADS)
    fused = name != "torch"
    if fused:
        torch.set_flush_denormal(True)
    if name == "torch-no-mkldnn":
        torch.backends.mkldnn.enabled = False
    torch.manual_seed(0)
    build = {
        "lenet": torch_lenet,
        "small_convnet": lambda: small_convnet(torch.nn),
        "resnet20": torch_resnet20,
    }[model_key]
    model = build()
    named = dict(model.named_parameters())
    state = model.state_dict()
    drawn = weights({k: tuple(p.shape) for k, p in named.items()})
    state.update({k: torch.from_numpy(v) for k, v in drawn.items()})
    model.load_state_dict(state)
    x, y = batch(model_key, size)
    xb, yb = torch.from_numpy(x), torch.from_numpy(y)
    if name == "torch-channels-last":
        model = model.to(memory_format=torch.channels_last)
        xb = xb.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, fused=fused or None)

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    def first():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        norms = {k: float(np.linalg.norm(p.grad.numpy())) for k, p in named.items()}
        return float(loss.item()), norms

    flags = {
        "torch": "defaults",
        "torch-fused": "fused SGD, flush denormal",
        "torch-channels-last": "channels_last, fused SGD, flush denormal",
        "torch-no-mkldnn": "mkldnn off, fused SGD, flush denormal",
    }[name]
    about = f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {flags}"
    return about, step, first


def time_steps(step) -> list[float]:
    """Seconds per step: the mean of each of CHUNKS chunks of steps, after WARM_SECONDS."""
    end = time.perf_counter() + WARM_SECONDS
    count, start = 0, time.perf_counter()
    while count < 3 or time.perf_counter() < end:
        step()
        count += 1
    per_step = (time.perf_counter() - start) / count
    number = max(2, round(CHUNK_SECONDS / per_step))
    chunks = []
    for _ in range(CHUNKS):
        start = time.perf_counter()
        for _ in range(number):
            step()
        chunks.append((time.perf_counter() - start) / number)
    return chunks


def worker(name: str, model_key: str, size: int) -> None:
    if name == "nabla-profile":
        about, step, _, model, xb, yb, opt = nabla_setup("nabla", model_key, size)
        send({"about": about, "profile": profile(model, xb, yb, opt, step)})
        return
    if name.startswith("nabla"):
        about, step, first = nabla_setup(name, model_key, size)[:3]
    else:
        about, step, first = torch_setup(name, model_key, size)
    loss, norms = first()
    send({"about": about, "loss": loss, "norms": norms, "times": time_steps(step)})


# --- nabla's step by operation ------------------------------------------------------------------


def profile(model, xb, yb, opt, step, steps: int = 20) -> list[str]:
    """Time spent in each Function class's forward and backward over ``steps`` steps, as the
    lines of a table; what is left of the step is Python around them (modules, the engine's
    graph walk, the optimizer)."""
    from nabla.autograd.function import Function

    totals = defaultdict(lambda: [0.0, 0.0, 0])  # class -> [forward s, backward s, calls]
    depth = [0]  # timed calls under way
    originals = {}

    def wrap(cls):
        forward, backward = cls.__dict__["forward"].__func__, cls.__dict__["backward"].__func__

        # A fused operation may call its base class's forward or backward (Conv2dReLU calls
        # Conv2d's): only the outermost timed call counts, or the time would count twice.
        def timed_forward(ctx, *args, **kwargs):
            depth[0] += 1
            start = time.perf_counter()
            try:
                return forward(ctx, *args, **kwargs)
            finally:
                depth[0] -= 1
                if not depth[0]:
                    totals[cls.__name__][0] += time.perf_counter() - start
                    totals[cls.__name__][2] += 1

        def timed_backward(ctx, grad):
            depth[0] += 1
            start = time.perf_counter()
            try:
                return backward(ctx, grad)
            finally:
                depth[0] -= 1
                if not depth[0]:
                    totals[cls.__name__][1] += time.perf_counter() - start

        originals[cls] = (cls.__dict__["forward"], cls.__dict__["backward"])
        cls.forward, cls.backward = staticmethod(timed_forward), staticmethod(timed_backward)

    def subclasses(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from subclasses(sub)

    for _ in range(5):  # warm-up, untimed
        step()
    for cls in set(subclasses(Function)):
        if "forward" in cls.__dict__ and "backward" in cls.__dict__:
            wrap(cls)
    try:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        total = (time.perf_counter() - start) / steps
    finally:
        for cls, (forward, backward) in originals.items():
            cls.forward, cls.backward = forward, backward
    rows = sorted(totals.items(), key=lambda kv: -(kv[1][0] + kv[1][1]))
    header = f"{'operation':<24}{'calls':>7}{'forward ms':>12}{'backward ms':>13}{'% of step':>11}"
    lines = [header, "-" * len(header)]
    inside = 0.0
    for op, (f, b, calls) in rows:
        f, b = f / steps * 1e3, b / steps * 1e3
        inside += f + b
        lines.append(
            f"{op:<24}{calls // steps:>7}{f:>12.3f}{b:>13.3f}{(f + b) / total / 1e3:>11.0%}"
        )
    rest = total * 1e3 - inside
    lines.append(
        f"{'the rest (Python, update)':<24}{'':>7}{rest:>12.3f}{'':>13}{rest / total / 1e3:>11.0%}"
    )
    lines.append(f"step {total * 1e3:.3f} ms (mean of {steps} steps, timers included)")
    return lines


# --- the parent ------------------------------------------------------------------------------


def agree(reference: dict, other: dict) -> str | None:
    """Why ``other``'s first step differs from ``reference``'s, or None when they agree."""
    loss_error = abs(other["loss"] - reference["loss"]) / max(abs(reference["loss"]), 1e-12)
    if loss_error > 1e-4:
        return f"loss {other['loss']:.6f} against {reference['loss']:.6f}"
    for key, norm in reference["norms"].items():
        theirs = other["norms"].get(key)
        if theirs is None or abs(theirs - norm) > 1e-2 * max(norm, 1e-6) + 1e-6:
            return f"gradient norm of {key}: {theirs} against {norm}"
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round, batch 64, 3 implementations")
    parser.add_argument("--threads", type=int, default=THREADS, help="BLAS/OpenMP/torch threads")
    parser.add_argument("--rounds", type=int, help="rounds of workers (default 2; --quick 1)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, args.model, args.batch)
        return

    rounds = args.rounds or (1 if args.quick else 2)
    nabla_names = ["nabla"] if args.quick else list(NABLA)
    torch_names = ["torch", "torch-channels-last"] if args.quick else list(TORCH)
    cases = [(m, 64) for m in args.models]
    if not args.quick and "resnet20" in args.models:
        cases.append(("resnet20", 128))
    load = os.getloadavg()[0]
    print(
        f"{versions('numpy', 'numba', 'torch', 'nabla')}; {THREADS} thread(s); float32; step = "
        f"zero grads + forward + cross-entropy + backward + SGD momentum {MOMENTUM} update; "
        f"every implementation in its own process, {rounds} round(s); figures: medians over the "
        f"rounds of each worker's median step time ({CHUNKS} chunks of ~{CHUNK_SECONDS} s after "
        f"{WARM_SECONDS} s of warm-up)"
    )
    script = str(Path(__file__).resolve())
    labels = {**{k: v[0] for k, v in NABLA.items()}, **TORCH}
    jobs = {name: Job(name, [], NABLA[name][1] if name in NABLA else None) for name in nabla_names}
    jobs.update({name: Job(name, []) for name in torch_names})
    results, lines, verdicts, profiles, abouts = {}, [], [], {}, {}
    for model_key, size in cases:
        label = f"{MODELS[model_key][0]}, batch {size}"
        runs = alternate(
            script,
            jobs,
            rounds,
            ["--threads", str(THREADS), "--model", model_key, "--batch", str(size)],
        )
        for name, rs in runs.items():
            abouts[name] = rs[0]["about"]
            if name != "nabla":
                problem = agree(runs["nabla"][0], rs[0])
                if problem:
                    raise SystemExit(f"{label}: {labels[name]} disagrees with nabla: {problem}")
        results[label] = {
            labels[name]: statistics.median(statistics.median(r["times"]) for r in rs)
            for name, rs in runs.items()
        }
        if not args.quick and size == 64:
            profiles[label] = run_profile(script, model_key, size)
        fastest = min((t, n) for n, t in results[label].items() if n.startswith("torch"))
        ratio = fastest[0] / results[label]["nabla"]
        key = model_key if size == 64 else f"{model_key}_b{size}"
        lines += [
            f"RESULT conv.{key}_vs_torch={ratio:.3f}",
            f"RESULT conv.{key}_nabla_ms={results[label]['nabla'] * 1e3:.3f}",
            f"RESULT conv.{key}_torch_ms={fastest[0] * 1e3:.3f}",
        ]
        target = MODELS[model_key][2]
        goal = f" (target >= {target}: {verdict(ratio >= target)})" if size == 64 else ""
        verdicts.append(
            f"{label}: nabla/fastest torch ({fastest[1]}) samples/s = {ratio:.2f}{goal}"
        )
        if "nabla reference" in results[label]:
            speedup = results[label]["nabla reference"] / results[label]["nabla"]
            lines.append(f"RESULT conv.{key}_kernel_speedup={speedup:.3f}")
    for name, about in abouts.items():
        print(f"  {labels[name]}: {about}")
    print()
    report(results)
    print()
    print("\n".join(verdicts))
    for label, table in profiles.items():
        print(f"\nnabla {label}, by operation:")
        print("\n".join(table))
    print(load_note(load))
    print()
    print("\n".join(lines))


def run_profile(script: str, model_key: str, size: int) -> list[str]:
    from common import run_worker

    args = ["--threads", str(THREADS), "--model", model_key, "--batch", str(size)]
    return run_worker(script, "nabla-profile", args, KERNELS)["profile"]


def report(results: dict) -> None:
    width = max(len(k) for k in results) + 2
    header = (
        f"{'model':<{width}}{'impl':<22}{'ms/step':>10}{'samples/s':>12}{'vs fastest torch':>18}"
    )
    print(header)
    print("-" * len(header))
    for label, times in results.items():
        size = int(label.rsplit(" ", 1)[1])
        fastest = min(t for n, t in times.items() if n.startswith("torch"))
        for name, seconds in times.items():
            print(
                f"{label:<{width}}{name:<22}{seconds * 1e3:>10.3f}{size / seconds:>12,.0f}"
                f"{fastest / seconds:>18.2f}"
            )
    print(
        "(vs fastest torch: samples/s relative to the fastest torch configuration; > 1 is faster)"
    )


if __name__ == "__main__":
    main()
