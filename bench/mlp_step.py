"""Time of one MLP training step in nabla against PyTorch eager and a hand-written NumPy floor.

The model is the classic MNIST MLP, 784-256-256-10 with ReLU, in float32. One "step" here is

    forward  ->  cross-entropy loss  ->  backward  (gradients of every weight and bias)

with the gradients zeroed first, as a training loop does (nabla: ``model.zero_grad()``, which
fills the existing arrays; torch: ``p.grad = None`` for every parameter). There is no optimizer
update yet: nabla has no optimizer, so the step stops at the gradients.

Three implementations run in one process, on the same batch, with the same weights (nabla's
``state_dict`` copied into torch) and the same number of BLAS / OpenMP threads:

* numpy: the same arithmetic written by hand with preallocated buffers (three matmuls forward,
  the softmax - onehot gradient, five matmuls backward). No framework can beat it by much, so
  nabla / numpy is nabla's overhead (graph recording, allocation, dtype checks).
* nabla: ``nn.Sequential`` + ``nn.functional.cross_entropy`` + ``loss.backward()``.
* torch: ``torch.nn.Sequential`` + ``F.cross_entropy`` + ``loss.backward()``, eager mode.

Before timing, the script checks that nabla's and torch's losses and gradients agree. Each
figure is the median over repeats of the mean time of several steps, after a warm-up. The
implementations run one after the other, not interleaved: the BLAS and OpenMP thread pools spin
after each call, and alternating libraries would make each pay for the other's idle threads.

    python bench/mlp_step.py               # about 15 s
    python bench/mlp_step.py --quick       # about 5 s
    python bench/mlp_step.py --threads 1   # default: as many threads as this process's cores
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

import numpy as np  # noqa: E402
import torch  # noqa: E402

import nabla as nb  # noqa: E402
from nabla import nn  # noqa: E402

SIZES = (784, 256, 256, 10)
BATCHES = (64, 512)


def nabla_mlp() -> nn.Sequential:
    nb.manual_seed(0)
    return nn.Sequential(
        nn.Linear(SIZES[0], SIZES[1]),
        nn.ReLU(),
        nn.Linear(SIZES[1], SIZES[2]),
        nn.ReLU(),
        nn.Linear(SIZES[2], SIZES[3]),
    )


def torch_copy(model: nn.Sequential) -> torch.nn.Sequential:
    """The same MLP in torch, holding a copy of ``model``'s weights."""
    twin = torch.nn.Sequential(
        torch.nn.Linear(SIZES[0], SIZES[1]),
        torch.nn.ReLU(),
        torch.nn.Linear(SIZES[1], SIZES[2]),
        torch.nn.ReLU(),
        torch.nn.Linear(SIZES[2], SIZES[3]),
    )
    state = {k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()}
    twin.load_state_dict(state)
    return twin


def batch(size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((size, SIZES[0]), dtype=np.float32)
    y = rng.integers(0, SIZES[-1], size=size, dtype=np.int64)
    return x, y


class NumpyMLP:
    """Forward and backward of the MLP by hand, into buffers allocated once per batch size.

    With h0 = x, a_i = h_{i-1} W_i^T + b_i, h_i = relu(a_i) and p = softmax(a_3):

        L = mean_n(logsumexp(a_3[n]) - a_3[n, y_n]),    dL/da_3 = (p - onehot(y)) / N,
        dW_i = g_i^T h_{i-1},   db_i = sum_n g_i,       g_{i-1} = (g_i W_i) * [a_{i-1} > 0].
    """

    def __init__(self, model: nn.Sequential, batch_size: int):
        state = model.state_dict()
        self.W = [state[f"{i}.weight"].numpy().copy() for i in (0, 2, 4)]
        self.b = [state[f"{i}.bias"].numpy().copy() for i in (0, 2, 4)]
        self.h = [np.empty((batch_size, n), np.float32) for n in SIZES[1:]]
        self.g = [np.empty((batch_size, n), np.float32) for n in SIZES[1:]]
        self.dW = [np.empty_like(w) for w in self.W]
        self.db = [np.empty_like(b) for b in self.b]
        self.rows = np.arange(batch_size)

    def step(self, x: np.ndarray, y: np.ndarray) -> float:
        n = len(x)
        inputs = [x, self.h[0], self.h[1]]
        for i in range(3):
            np.matmul(inputs[i], self.W[i].T, out=self.h[i])
            self.h[i] += self.b[i]
            if i < 2:
                np.maximum(self.h[i], 0, out=self.h[i])
        logits, g = self.h[2], self.g[2]
        np.subtract(logits, logits.max(axis=1, keepdims=True), out=g)
        np.exp(g, out=g)
        total = g.sum(axis=1, keepdims=True)
        picked = g[self.rows, y]
        loss = float(np.mean(np.log(total[:, 0]) - np.log(picked)))
        g /= total
        g[self.rows, y] -= 1.0
        g /= n
        for i in (2, 1, 0):
            np.matmul(self.g[i].T, inputs[i], out=self.dW[i])
            self.g[i].sum(axis=0, out=self.db[i])
            if i > 0:
                np.matmul(self.g[i], self.W[i], out=self.g[i - 1])
                self.g[i - 1] *= self.h[i - 1] > 0  # relu' from the output: h > 0 iff a > 0
        return loss


def steps(model, twin, x: np.ndarray, y: np.ndarray) -> dict:
    """One training step per implementation, each a function of no arguments."""
    floor = NumpyMLP(model, len(x))
    return {"numpy": lambda: floor.step(x, y), **training_steps(model, twin, x, y)}


def check(model, twin, x: np.ndarray, y: np.ndarray) -> None:
    """Print how far nabla's loss and gradients are from torch's (and the NumPy floor's)."""
    run = steps(model, twin, x, y)
    floor_loss = run["numpy"]()
    nabla_loss = run["nabla"]().item()
    torch_loss = run["torch"]().item()
    grads = {k: t.grad.numpy() for k, t in twin.named_parameters()}
    grad_err = max(float(np.abs(p.grad - grads[k]).max()) for k, p in model.named_parameters())
    loss_err = abs(nabla_loss - torch_loss)
    ok = "ok" if loss_err < 1e-5 and grad_err < 1e-5 else "MISMATCH"
    print(
        f"check, batch {len(x)}: loss nabla {nabla_loss:.7f}, torch {torch_loss:.7f}, "
        f"numpy {floor_loss:.7f}; |nabla - torch| loss {loss_err:.1e}, "
        f"max grad {grad_err:.1e} ({ok})"
    )
    if ok != "ok":
        raise SystemExit("nabla and torch disagree; timings would compare different computations")


def report(results: dict[int, dict[str, float]]) -> None:
    print_step_table(results, "batch", lambda size: size, ["torch", "numpy"])
    for size, t in results.items():
        print(
            f"batch {size}: nabla/torch samples/s = {t['torch'] / t['nabla']:.2f} "
            f"(>1: nabla faster); nabla takes {t['nabla'] / t['numpy']:.2f}x the NumPy floor"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a ~5 s run with fewer steps")
    parser.add_argument("--threads", type=int, default=THREADS, help="BLAS/OpenMP/torch threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(THREADS)
    number, repeat = (10, 5) if args.quick else (50, 11)
    print(
        f"numpy {np.__version__}, torch {torch.__version__}, nabla {nb.__version__}; "
        f"{THREADS} thread(s); MLP {'-'.join(map(str, SIZES))} ReLU float32; "
        f"step = zero grads + forward + cross-entropy + backward (no optimizer update); "
        f"median of {repeat} repeats of {number} steps\n"
    )
    model = nabla_mlp()
    twin = torch_copy(model)
    results = {}
    for size in BATCHES:
        x, y = batch(size)
        check(model, twin, x, y)
        results[size] = measure(steps(model, twin, x, y), number, repeat)
    print()
    report(results)


if __name__ == "__main__":
    main()
