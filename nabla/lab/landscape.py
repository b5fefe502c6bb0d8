"""Loss landscapes (Li, Xu, Taylor, Studer and Goldstein 2018, "Visualizing the Loss Landscape of
Neural Nets"): ``nabla lab landscape RUN_DIR``.

The loss L(θ) of a network lives in millions of dimensions; we look at it along lines and planes.

- **Linear interpolation** (Goodfellow, Vinyals and Saxe 2015) between two parameter vectors,
  e.g. the initial and the trained weights, also a little beyond them::

      f(α) = L((1 - α) θ_a + α θ_b),      α in [-0.5, 1.5]   (f(0) = L(θ_a), f(1) = L(θ_b))

- **Random directions with filter-wise normalization** (Li et al., section 4): draw d ~ N(0, I)
  shaped like θ, then for every filter (a conv output channel, or the weights of one output unit
  of a Linear layer: one row of its weight) rescale the direction's slice to the norm of the same
  filter of θ::

      d_{i,j} <- d_{i,j} / ||d_{i,j}|| * ||θ_{i,j}||        (j-th filter of the i-th layer)

  so that a step α = 1 changes every filter by as much as its own size: networks whose weights
  differ only in scale (ReLU and batch norm make them equivalent) get comparable plots. Parameters
  with one dimension or none (biases, batch norm's γ and β) get direction 0, as in the authors'
  code (``ignore='biasbn'``).

- **Slices** along such directions around the trained θ::

      f(α) = L(θ + α δ),        f(α, β) = L(θ + α δ + β η),       α, β in [-span, span]

Choices, stated: L is the mean loss the run optimized (cross-entropy, with its label smoothing;
no weight-decay term) on a fixed subset of the chosen split (``--samples`` drawn once with
``--seed``), computed in eval mode without gradients, in batches. Dropout is off and batch norm
normalizes with the *trained* running statistics, which are kept at every point (as the authors'
evaluation does); only the trainable parameters move. The model's parameters and buffers are put
back after every interpolation or slice.

>>> import numpy as np
>>> w = {"0.weight": np.array([[3.0, 4.0], [0.0, 1.0]]), "0.bias": np.array([1.0, 2.0])}
>>> d = filter_normalize({"0.weight": np.ones((2, 2)), "0.bias": np.ones(2)}, w)
>>> np.linalg.norm(d["0.weight"], axis=1).round(6).tolist(), d["0.bias"].tolist()
([5.0, 1.0], [0.0, 0.0])
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .records import Curve, Surface

__all__ = [
    "NONCONVEX",
    "Curve",
    "LossEvaluator",
    "Surface",
    "filter_normalize",
    "fixed_subset",
    "get_weights",
    "interpolate",
    "interpolation_alphas",
    "landscape",
    "nonconvexity",
    "random_direction",
    "restored",
    "run_weights",
    "set_weights",
    "slice_1d",
    "slice_2d",
    "symmetric_grid",
]

EXAMPLES = """examples:
  nabla train --out runs/mlp && nabla lab landscape runs/mlp     # writes runs/mlp/landscape/
  nabla lab landscape runs/mlp --points 41 --span 0.5 --samples 500
  nabla lab landscape runs/mlp --split dev --seed 1 --out /tmp/landscape

Written: interpolation.png (init -> trained), slice-1d.png, contour.png, surface.png,
nonconvexity.png, landscape.safetensors (every curve and grid), landscape.json and report.html.
"""

Weights = dict  # parameter name -> np.ndarray, in model.named_parameters() order


# --- parameter vectors and directions -------------------------------------------------------------


def get_weights(model) -> Weights:
    """A copy of the model's parameters, by name (``model.named_parameters()``)."""
    return {name: p.data.copy() for name, p in model.named_parameters()}


def set_weights(model, weights: Weights) -> None:
    """Copy ``weights`` into the model's parameters, in place (views into an optimizer's flat
    buffer stay views)."""
    params = dict(model.named_parameters())
    if params.keys() != weights.keys():
        missing, extra = (
            sorted(params.keys() - weights.keys()),
            sorted(weights.keys() - params.keys()),
        )
        raise ValueError(f"set_weights: missing {missing}, unexpected {extra}")
    for name, p in params.items():
        np.copyto(p.data, weights[name], casting="same_kind")


def filter_normalize(direction: Weights, weights: Weights, eps: float = 1e-10) -> Weights:
    """Li et al.'s filter-wise normalization: every filter (index along axis 0 of a weight with 2
    or more dimensions) of ``direction`` gets the norm of the same filter of ``weights``;
    one-dimensional parameters (biases, batch norm) get 0."""
    out = {}
    for name, w in weights.items():
        d = np.asarray(direction[name], dtype=w.dtype)
        if d.shape != w.shape:
            raise ValueError(f"filter_normalize: {name} has shape {d.shape}, weights {w.shape}")
        if w.ndim <= 1:
            out[name] = np.zeros_like(w)
            continue
        axes = tuple(range(1, w.ndim))
        scale = np.sqrt((w.astype(np.float64) ** 2).sum(axis=axes, keepdims=True)) / (
            np.sqrt((d.astype(np.float64) ** 2).sum(axis=axes, keepdims=True)) + eps
        )
        out[name] = (d * scale).astype(w.dtype)
    return out


def random_direction(weights: Weights, rng: np.random.Generator, normalize: bool = True) -> Weights:
    """A Gaussian direction shaped like ``weights`` (drawn in name order from ``rng``),
    filter-normalized unless ``normalize`` is False."""
    d = {name: rng.standard_normal(w.shape).astype(w.dtype) for name, w in weights.items()}
    return filter_normalize(d, weights) if normalize else d


@contextmanager
def restored(model):
    """Put back the model's parameters, buffers and every module's train/eval mode when the
    block ends."""
    saved = {name: t.data.copy() for name, t in model.state_dict().items()}
    modes = [(module, module.training) for module in model.modules()]
    try:
        yield model
    finally:
        model.load_state_dict(saved)
        for module, mode in modes:
            object.__setattr__(module, "training", mode)  # as Module.train sets it


# --- evaluating the loss --------------------------------------------------------------------------


class LossEvaluator:
    """Mean loss and accuracy of ``model`` on fixed arrays ``x``, ``y``: eval mode, no gradients,
    ``batch_size`` samples at a time (a batch's mean loss weighted by its size, so the result is
    the mean over all samples). ``loss`` defaults to cross-entropy."""

    def __init__(self, model, x: np.ndarray, y: np.ndarray, loss=None, batch_size: int = 1000):
        import nabla as nb

        if len(x) != len(y) or len(x) == 0:
            raise ValueError(
                f"LossEvaluator: need as many inputs as labels (> 0), got {len(x)}, {len(y)}"
            )
        if batch_size < 1:
            raise ValueError(f"LossEvaluator: batch_size must be >= 1, got {batch_size}")
        self.model, self.n = model, len(x)
        self.loss = loss if loss is not None else nb.nn.CrossEntropyLoss()
        self.batches = [
            (nb.tensor(x[i : i + batch_size]), nb.tensor(y[i : i + batch_size]))
            for i in range(0, len(x), batch_size)
        ]
        self.calls = 0

    def __call__(self) -> tuple[float, float]:
        import nabla as nb

        self.model.eval()
        total_loss = correct = 0.0
        with nb.no_grad():
            for x, y in self.batches:
                logits = self.model(x)
                total_loss += float(self.loss(logits, y).item()) * len(y.data)
                correct += float((logits.data.argmax(axis=1) == y.data).sum())
        self.calls += 1
        return total_loss / self.n, correct / self.n


def _set_combination(params: dict, terms: list, scratch: dict) -> None:
    """params <- sum of c * v over terms (c, v), computed in place; the first coefficient
    multiplies first, so 1 * θ + 0 * δ gives θ bit for bit."""
    for name, p in params.items():
        c0, v0 = terms[0]
        np.multiply(v0[name], c0, out=p.data, casting="same_kind")
        for c, v in terms[1:]:
            np.multiply(v[name], c, out=scratch[name], casting="same_kind")
            p.data += scratch[name]


def _evaluate_along(model, evaluate, combinations) -> tuple[np.ndarray, np.ndarray]:
    """Loss and accuracy at every point ``terms`` of ``combinations`` (model restored after)."""
    with restored(model):
        params = dict(model.named_parameters())
        scratch = {name: np.empty_like(p.data) for name, p in params.items()}
        results = []
        for terms in combinations:
            _set_combination(params, terms, scratch)
            results.append(evaluate())
    loss, accuracy = np.array(results, dtype=np.float64).reshape(-1, 2).T
    return loss, accuracy


def interpolation_alphas(points: int = 97) -> np.ndarray:
    """α in [-0.5, 1.5] on a uniform grid that holds 0 and 1 exactly: ``points`` = 4k + 1."""
    if points < 5 or (points - 1) % 4:
        raise ValueError(
            f"interpolation: points must be 4k + 1 >= 5 (so 0 and 1 are on the grid), got {points}"
        )
    m = (points - 1) // 2  # steps per unit of α
    return np.arange(-m // 2, 3 * m // 2 + 1) / m


def symmetric_grid(span: float, points: int) -> np.ndarray:
    """``points`` values from -span to span, uniformly spaced, with 0 exactly in the middle."""
    if points < 3 or points % 2 == 0:
        raise ValueError(
            f"points must be odd and >= 3 (so the grid holds 0, the trained weights), got {points}"
        )
    if not (np.isfinite(span) and span > 0):
        raise ValueError(f"span must be a positive number, got {span}")
    k = (points - 1) // 2
    return span * np.arange(-k, k + 1) / k


def interpolate(model, evaluate, theta_a: Weights, theta_b: Weights, alphas) -> Curve:
    """f(α) = L((1 - α) θ_a + α θ_b) at every α (α = 0 and 1 give θ_a and θ_b exactly)."""
    alphas = np.asarray(alphas, dtype=np.float64)
    loss, acc = _evaluate_along(
        model, evaluate, ([(1.0 - a, theta_a), (a, theta_b)] for a in alphas)
    )
    return Curve(alphas, loss, acc)


def slice_1d(model, evaluate, theta: Weights, delta: Weights, alphas) -> Curve:
    """f(α) = L(θ + α δ) at every α."""
    alphas = np.asarray(alphas, dtype=np.float64)
    loss, acc = _evaluate_along(model, evaluate, ([(1.0, theta), (a, delta)] for a in alphas))
    return Curve(alphas, loss, acc)


def slice_2d(
    model, evaluate, theta: Weights, delta: Weights, eta: Weights, alphas, betas
) -> Surface:
    """f(α, β) = L(θ + α δ + β η) on the grid alphas x betas (``loss[i, j]``: α_i, β_j)."""
    alphas, betas = np.asarray(alphas, dtype=np.float64), np.asarray(betas, dtype=np.float64)
    points = ([(1.0, theta), (a, delta), (b, eta)] for a in alphas for b in betas)
    loss, acc = _evaluate_along(model, evaluate, points)
    shape = (len(alphas), len(betas))
    return Surface(alphas, betas, loss.reshape(shape), acc.reshape(shape))


def nonconvexity(loss: np.ndarray, h: float) -> np.ndarray:
    """How non-convex a 2-D slice is at each interior grid point: Li et al.'s ratio |λ_min / λ_max|
    of the Hessian's extreme eigenvalues (their section 6), for the 2 x 2 Hessian of the slice
    f(α, β), estimated by central differences with grid step ``h``::

        f_αα = (f[i+1,j] - 2 f[i,j] + f[i-1,j]) / h²            (f_ββ likewise)
        f_αβ = (f[i+1,j+1] - f[i+1,j-1] - f[i-1,j+1] + f[i-1,j-1]) / (4 h²)
        r = max(0, -λ_1) / max(|λ_1|, |λ_2|),     λ_1 <= λ_2 the eigenvalues

    r = 0 where the slice is locally convex, and equals |λ_min / λ_max| where a negative
    curvature meets a larger positive one; r = 1 where the negative curvature dominates.
    Returns an array of shape (n - 2, m - 2). A slice's convexity does not imply the full loss's
    (Li et al. warn of this), but negative curvature in the slice is real negative curvature.
    """
    f = np.asarray(loss, dtype=np.float64)
    if f.ndim != 2 or min(f.shape) < 3:
        raise ValueError(f"nonconvexity: need a 2-D grid of at least 3 x 3 values, got {f.shape}")
    c = f[1:-1, 1:-1]
    faa = (f[2:, 1:-1] - 2 * c + f[:-2, 1:-1]) / h**2
    fbb = (f[1:-1, 2:] - 2 * c + f[1:-1, :-2]) / h**2
    fab = (f[2:, 2:] - f[2:, :-2] - f[:-2, 2:] + f[:-2, :-2]) / (4 * h**2)
    mean, radius = (faa + fbb) / 2, np.sqrt(((faa - fbb) / 2) ** 2 + fab**2)
    low, high = mean - radius, mean + radius
    largest = np.maximum(np.abs(low), np.abs(high))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(largest > 0, np.maximum(0.0, -low) / largest, 0.0)
    return np.where(np.isfinite(r), r, 1.0)  # an infinite loss counts as non-convex


# --- a run folder ---------------------------------------------------------------------------------

NONCONVEX = 0.1  # a point of a slice counts as non-convex where r > 0.1 (see nonconvexity)


def run_weights(run_dir, checkpoint: str = "last"):
    """The rebuilt run of folder ``run_dir`` (:class:`nabla.train.run.Run`) with its initial
    and its trained weights: ``(run, theta_init, theta_trained)``; the model holds the trained
    state (parameters and batch norm statistics) on return.

    The initial weights are rebuilt, not stored: ``Run(cfg, directory)`` seeds nabla with the
    run's seed and builds data, loaders, model and optimizer in the order ``nabla train`` did, so
    the model's parameters are bit for bit those training started from.
    """
    from ..train import run as runs
    from ..train.checkpoint import load as load_checkpoint

    directory = Path(run_dir)
    cfg = runs.load_config(directory)
    path = directory / "checkpoints" / f"{checkpoint}.safetensors"
    if not path.exists():
        raise FileNotFoundError(f"{directory} has no checkpoint {path.relative_to(directory)}")
    rebuilt = runs.Run(cfg, directory)
    theta_init = get_weights(rebuilt.model)
    rebuilt.model.load_state_dict(load_checkpoint(path)["model"])
    return rebuilt, theta_init, get_weights(rebuilt.model)


def fixed_subset(rebuilt, split: str, samples: int, rng: np.random.Generator):
    """``samples`` examples of ``split`` (train or dev) drawn once, in order, with the run's
    evaluation transform (standardization, no augmentation): arrays ``(x, y)``."""
    from ..data import ArrayDataset, DataLoader

    if split not in ("train", "dev"):
        raise ValueError(f"split must be train or dev, got {split!r}")
    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    data = rebuilt.data.train if split == "train" else rebuilt.data.dev
    n = min(samples, len(data))
    idx = np.sort(rng.choice(len(data), n, replace=False))
    loader = DataLoader(
        ArrayDataset(data.x[idx], data.y[idx]),
        batch_size=n,
        transform=rebuilt.test_loader.transform,
    )
    x, y = next(iter(loader))
    return x.data, y.data


def landscape(
    run_dir,
    split: str = "train",
    points: int = 25,
    span: float = 1.0,
    samples: int = 1000,
    seed: int = 0,
    out=None,
    checkpoint: str = "last",
    verbose: bool = True,
) -> Path:
    """Interpolation init -> trained, a 1-D and a 2-D filter-normalized slice around the trained
    weights of ``run_dir``; figures, ``landscape.safetensors``, ``landscape.json`` and
    ``report.html`` in ``out`` (default ``RUN_DIR/landscape``). Returns the report's path."""
    from . import landscape_plots

    grid = symmetric_grid(span, points)  # checks the arguments before any work
    line = 4 * (points - 1) + 1
    start = time.perf_counter()
    rebuilt, theta_init, theta = run_weights(run_dir, checkpoint)
    subset_rng, direction_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(2)
    )
    x, y = fixed_subset(rebuilt, split, samples, subset_rng)
    model = rebuilt.model
    evaluate = LossEvaluator(model, x, y, loss=rebuilt.trainer.loss)
    delta, eta = random_direction(theta, direction_rng), random_direction(theta, direction_rng)
    if verbose:
        print(
            f"landscape of {run_dir} ({checkpoint}) on {len(y)} {split} samples: "
            f"{2 * line + points**2} evaluations",
            flush=True,
        )
    interpolation = interpolate(model, evaluate, theta_init, theta, interpolation_alphas(line))
    profile = slice_1d(model, evaluate, theta, delta, symmetric_grid(span, line))
    surface = slice_2d(model, evaluate, theta, delta, eta, grid, grid)
    r = nonconvexity(surface.loss, grid[1] - grid[0])
    settings = {
        "run_dir": str(run_dir),
        "checkpoint": checkpoint,
        "split": split,
        "samples": len(y),
        "points": points,
        "span": span,
        "seed": seed,
        "model_parameters": int(sum(w.size for w in theta.values())),
        "seconds": round(time.perf_counter() - start, 2),
    }
    out = Path(out) if out is not None else Path(run_dir) / "landscape"
    page = landscape_plots.write_landscape(
        out, settings, interpolation, profile, surface, r, NONCONVEX
    )
    if verbose:
        print(f"{settings['seconds']:.1f}s; report: {page}", flush=True)
    return page


def add_arguments(parser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by nabla train")
    parser.add_argument(
        "--split",
        choices=("train", "dev"),
        default="train",
        help="the data the loss is measured on (default train: the objective)",
    )
    parser.add_argument(
        "--points",
        type=int,
        default=25,
        help="grid points per axis of the 2-D slice, odd (default 25); the 1-D curves get 4(N-1)+1",
    )
    parser.add_argument(
        "--span",
        type=float,
        default=1.0,
        help="the slices cover [-span, span] in units of the filter norms "
        "(default 1, as in Li et al.)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=1000,
        help="at most this many examples, drawn once (default 1000)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the subset and the directions")
    parser.add_argument(
        "--checkpoint",
        choices=("last", "best"),
        default="last",
        help="the trained weights (default last)",
    )
    parser.add_argument("--out", help="output folder (default RUN_DIR/landscape)")
    parser.add_argument("--quiet", action="store_true", help="print nothing")


def main(args) -> int:
    try:
        landscape(
            args.run_dir,
            split=args.split,
            points=args.points,
            span=args.span,
            samples=args.samples,
            seed=args.seed,
            out=args.out,
            checkpoint=args.checkpoint,
            verbose=not args.quiet,
        )
    except (FileNotFoundError, ValueError) as err:
        import sys

        print(f"nabla lab landscape: error: {err}", file=sys.stderr)
        return 2
    return 0
