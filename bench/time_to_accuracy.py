"""Time to a test accuracy on MNIST-10k: nabla against PyTorch, the same recipe, each framework
in its own process. Two recipes: an MLP to 97% on the same batches, and LeNet-5 with augmentation
to 98.5% (bench/lenet_recipe.py), where each framework's own loader and augmentation are timed.

The MLP recipe is the documented MNIST-10k MLP (docs/results.md): 784-512-10, ReLU, dropout 0.3,
Adam at 1e-3 with cosine decay to 0 over 40 epochs (per update), batch 64, random translations
of up to 3 pixels, on the 7,000 training images of ``nabla.data.datasets.mnist10k(seed=0)``;
accuracy is measured on its 2,000 test images after every epoch.

Each framework trains in a fresh process of its own (``--worker nabla`` or ``--worker torch``):
NumPy's OpenBLAS, numba's OpenMP and torch's OpenMP each keep a thread pool that spins or waits
after a call, and two of them in one process slow each other down (alternating the two in one
process flattered nabla by up to 1.7x). The parent, which imports neither framework, launches the
workers one at a time, alternating them over rounds (nabla, torch, nabla, torch: 2 rounds), so a
change in the machine's load hits both alike; each worker prints its per-epoch training seconds
and test accuracies as its last line (``bench/common.py``: ``send``, ``run_worker``).

Both frameworks see exactly the same batches: before each epoch, every worker has nabla's
``DataLoader`` (shuffled and augmented with the recipe's seed; a batch depends only on the seed
and the epoch) produce the epoch's batches as NumPy arrays, then trains on them (nabla on
``nb.from_numpy`` views, torch on ``torch.from_numpy`` views), so the augmentation is the same for
both and costs neither: its time is reported apart. The torch worker imports ``nabla`` for the
loader and to build nabla's model, but never trains it, so nabla's compiled kernels (numba) are
not loaded there. They start from the same weights (nabla's initialization with
``nb.manual_seed(0)``, copied into torch) and follow the same learning rate (torch's is set from
nabla's schedule before every update); the parent checks that the workers' initial weights and
every epoch's batches are identical (hashes). Before training, the torch worker checks that the
two models compute the same test logits from those weights (dropout off) and stops on a
mismatch. Only the dropout masks differ: each framework draws its own (``nb.manual_seed(0)``,
``torch.manual_seed(0)``). Each worker stops once it has reached the target.

torch runs in its fastest CPU configuration: the fused Adam (``fused=True``) and
``torch.set_flush_denormal(True)`` (subnormals flushed to zero, as in nabla's optimizer state).
Both workers use the same number of threads (``--threads``, default: the cores of this
process): ``OMP/OPENBLAS/MKL_NUM_THREADS`` set before NumPy loads, then
``torch.set_num_threads`` or ``nabla.set_num_threads``.

Timed: the training loop alone (``perf_counter`` around each epoch); the evaluation after each
epoch, the data preparation and the process start are excluded for both. The time to the target
is reported as measured (the sum of the epochs' times, in the faster round) and as epochs x the
fastest epoch's time (over every round), which a burst of load from other processes does not
distort; the ratio uses the latter (see ``report``). The number of epochs varies with the
dropout masks: the recipe's test accuracy after 40 epochs has a standard deviation of about 0.16
points over seeds, so which epoch first crosses 97% is partly luck.

The LeNet recipe is described in bench/lenet_recipe.py; the same report follows, plus what the
augmentation adds to nabla's epoch (extra epochs of the trained model with and without it, in
turns, after the run). Targets (convolution issue): time to 98.5% at most 1.0x PyTorch's, and
augmentation adds at most 10% to the epoch.

    python bench/time_to_accuracy.py                   # both recipes, 2 rounds; ~5 min idle
    python bench/time_to_accuracy.py --recipes lenet   # one of them
    python bench/time_to_accuracy.py --quick           # 1 round of 1 epoch each, to show it runs

Needs the MNIST test files under ``$NABLA_DATA`` (e.g. ``NABLA_DATA=../shared/data``); without
them it says so and exits. Target (compiled-kernels issue): time to 97% at most 1.0x PyTorch's
(nabla at least as fast). The last lines, ``RESULT name=value``, are for ``bench/all.py``.
"""

from __future__ import annotations

from common import pin_threads  # bench/common.py; pin before NumPy loads

THREADS = pin_threads()

import argparse  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

from common import nabla_logits, run_worker, send, versions  # noqa: E402
from lenet_recipe import EPOCHS as LENET_EPOCHS  # noqa: E402
from lenet_recipe import TARGET as LENET_TARGET  # noqa: E402

EPOCHS, BATCH, LR, DROPOUT, HIDDEN, SHIFT, SEED = 40, 64, 1e-3, 0.3, 512, 3, 0
TARGET = 0.97
RATIO_TARGET = 1.0  # nabla's time / torch's
AUGMENT_TARGET = 0.10  # what augmentation may add to the LeNet recipe's epoch
# recipe -> target test accuracy, epochs at most, prefix of its RESULT names
RECIPES = {
    "mlp": {"target": TARGET, "epochs": EPOCHS, "prefix": ""},
    "lenet": {"target": LENET_TARGET, "epochs": LENET_EPOCHS, "prefix": "lenet_"},
}
ROUNDS = 2
NAMES = ("nabla", "torch")
SCRIPT = os.path.abspath(__file__)


# --- the workers: one framework each, in its own process ------------------------------------------


def nabla_model():
    """The recipe's model in nabla, with its initial weights from ``nb.manual_seed(SEED)``."""
    import nabla as nb
    from nabla import models, nn

    nb.manual_seed(SEED)
    return nn.Sequential(nn.Flatten(), *models.mlp([784, HIDDEN, 10], dropout=DROPOUT))


class NablaRun:
    """The recipe's model and optimizer in nabla."""

    def __init__(self, schedule, model):
        from nabla import optim

        self.model = model
        self.opt = optim.Adam(self.model.parameters(), lr=schedule)

    def train_epoch(self, batches: list) -> float:
        """Train on ``batches`` (NumPy arrays); return the seconds it took."""
        import nabla as nb
        from nabla import nn

        self.model.train()
        start = time.perf_counter()
        for x, y in batches:
            loss = nn.functional.cross_entropy(self.model(nb.from_numpy(x)), nb.from_numpy(y))
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        return time.perf_counter() - start

    def logits(self, x):
        return nabla_logits(self.model, x)


class TorchRun:
    """The same model in torch, holding a copy of nabla's initial weights, on nabla's schedule."""

    def __init__(self, schedule, start):
        import torch

        torch.manual_seed(SEED)
        self.model = torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(784, HIDDEN),
            torch.nn.ReLU(),
            torch.nn.Dropout(DROPOUT),
            torch.nn.Linear(HIDDEN, 10),
        )
        self.model.load_state_dict(
            {k: torch.from_numpy(v.numpy().copy()) for k, v in start.state_dict().items()}
        )
        self.schedule, self.step = schedule, 0
        # The faster of torch's CPU Adams (see bench/mlp_train.py); the same update.
        self.opt = torch.optim.Adam(self.model.parameters(), lr=schedule(0), fused=True)

    def train_epoch(self, batches: list) -> float:
        import torch

        self.model.train()
        start = time.perf_counter()
        for x, y in batches:
            loss = torch.nn.functional.cross_entropy(
                self.model(torch.from_numpy(x)), torch.from_numpy(y)
            )
            self.opt.zero_grad()
            loss.backward()
            self.opt.param_groups[0]["lr"] = self.schedule(self.step)  # updates made so far
            self.opt.step()
            self.step += 1
        return time.perf_counter() - start

    def logits(self, x):
        import torch

        self.model.eval()
        with torch.no_grad():
            return self.model(torch.from_numpy(x)).numpy()


def accuracy(run, x, y) -> float:
    return float((run.logits(x).argmax(axis=1) == y).mean())


def digest(arrays) -> str:
    """A short hash of the bytes of ``arrays`` (NumPy arrays), to compare across processes."""
    h = hashlib.blake2b(digest_size=8)
    for a in arrays:
        h.update(a.tobytes())
    return h.hexdigest()


def lenet_worker(name: str, threads: int, epochs: int) -> None:
    """Train one framework on the LeNet recipe (bench/lenet_recipe.py) until its target (or
    ``epochs``), its own loader and augmentation inside the timed epochs; ``send`` the results.
    nabla then times extra epochs with and without the augmentation: what it adds to an epoch."""
    import lenet_recipe as recipe
    import numpy as np

    import nabla as nb
    from nabla.data import datasets

    try:
        train, _, test = datasets.mnist10k(seed=0, download=False)
    except (FileNotFoundError, OSError) as error:
        send({"skipped": f"MNIST-10k needs the MNIST test files under $NABLA_DATA ({error})"})
        return
    x_test, y_test = test.x.astype(np.float32), test.y
    model = recipe.nabla_model()
    result = {
        "name": name,
        "n_train": len(train),
        "n_test": len(test),
        "weights": digest(v.numpy() for v in model.state_dict().values()),
        "batches": [],
    }
    if name == "nabla":
        nb.set_num_threads(threads)
        run = recipe.NablaLenet(train, model)
        result["workers"] = run.loader.workers
    else:
        import torch

        torch.set_num_threads(threads)
        result["flush_denormal"] = bool(torch.set_flush_denormal(True))
        run = recipe.TorchLenet(train, model)
        nabla_run = recipe.NablaLenet(train, model)
        error = float(np.abs(nabla_run.logits(x_test) - run.logits(x_test)).max())
        result["check"] = error
        if not error < 1e-4:
            raise SystemExit(f"check: max |nabla - torch| test logits {error:.1e} (MISMATCH)")
    seconds, accuracies = [], []
    for _ in range(epochs):
        seconds.append(run.train_epoch())
        accuracies.append(accuracy(run, x_test, y_test))
        if accuracies[-1] >= recipe.TARGET:
            break
    if name == "nabla":  # what augmentation adds: the same training without it, in turns
        plain = recipe.NablaLenet(train, model, augment_=False)
        pairs = [(run.train_epoch(), plain.train_epoch()) for _ in range(2)]
        result["augment_share"] = min(a for a, _ in pairs) / min(p for _, p in pairs) - 1
    result.update(
        seconds=seconds, accuracy=accuracies, data_s=0.0, numba_loaded="numba" in sys.modules
    )
    send(result)


def worker(name: str, threads: int, epochs: int) -> None:
    """Train one framework on the recipe until TARGET (or ``epochs``); ``send`` the results."""
    import numpy as np

    import nabla as nb
    from nabla.data import DataLoader, datasets
    from nabla.data.transforms import augment
    from nabla.optim.schedules import CosineDecay

    try:
        train, _, test = datasets.mnist10k(seed=0, download=False)
    except (FileNotFoundError, OSError) as error:
        send({"skipped": f"MNIST-10k needs the MNIST test files under $NABLA_DATA ({error})"})
        return
    loader = DataLoader(
        train, batch_size=BATCH, shuffle=True, seed=SEED, transform=augment.RandomTranslate(SHIFT)
    )
    schedule = CosineDecay(LR, EPOCHS * len(loader))
    x_test, y_test = test.x.astype(np.float32), test.y
    model = nabla_model()
    result = {
        "name": name,
        "n_train": len(train),
        "n_test": len(test),
        "weights": digest(v.numpy() for v in model.state_dict().values()),
    }
    if name == "nabla":
        nb.set_num_threads(threads)
        run = NablaRun(schedule, model)
    else:
        import torch

        torch.set_num_threads(threads)
        result["flush_denormal"] = bool(torch.set_flush_denormal(True))
        run = TorchRun(schedule, model)
        # Before training: with dropout off, the two models must compute the same logits.
        error = float(np.abs(nabla_logits(model, x_test) - run.logits(x_test)).max())
        result["check"] = error
        if not error < 1e-4:
            raise SystemExit(
                f"check: max |nabla - torch| test logits from the same weights {error:.1e} "
                "(MISMATCH): nabla and torch disagree; timings would compare different "
                "computations"
            )
    seconds, accuracies, hashes, data_seconds = [], [], [], 0.0
    for _ in range(epochs):
        start = time.perf_counter()
        batches = [(x.numpy(), y.numpy()) for x, y in loader]
        data_seconds += time.perf_counter() - start
        hashes.append(digest(a for batch in batches for a in batch))
        seconds.append(run.train_epoch(batches))
        accuracies.append(accuracy(run, x_test, y_test))
        if accuracies[-1] >= TARGET:
            break
    result.update(
        seconds=seconds,
        accuracy=accuracies,
        batches=hashes,
        data_s=data_seconds / len(seconds),
        numba_loaded="numba" in sys.modules,
    )
    send(result)


# --- the parent: launches the workers, compares, reports ------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 1 epoch, to show it runs")
    parser.add_argument("--threads", type=int, default=THREADS, help="BLAS/OpenMP/torch threads")
    parser.add_argument("--rounds", type=int, default=None, help=f"default {ROUNDS}; --quick 1")
    parser.add_argument("--recipes", nargs="+", choices=list(RECIPES), default=list(RECIPES))
    parser.add_argument("--worker", choices=NAMES, help=argparse.SUPPRESS)
    parser.add_argument("--recipe", choices=list(RECIPES), default="mlp", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=EPOCHS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        (lenet_worker if args.recipe == "lenet" else worker)(args.worker, args.threads, args.epochs)
        return
    rounds = args.rounds or (1 if args.quick else ROUNDS)
    for number, recipe in enumerate(args.recipes):
        if number:
            print()
        if not run_recipe(recipe, args.threads, rounds, args.quick):
            return


def run_recipe(recipe: str, threads: int, rounds: int, quick: bool) -> bool:
    """Train ``recipe`` in both frameworks, alternating over ``rounds``, and report; False when
    the data is missing."""
    target, prefix = RECIPES[recipe]["target"], RECIPES[recipe]["prefix"]
    epochs = 1 if quick else RECIPES[recipe]["epochs"]
    worker_args = ["--threads", str(threads), "--epochs", str(epochs), "--recipe", recipe]
    runs: dict[str, list[dict]] = {name: [] for name in NAMES}
    for r in range(rounds):
        for name in NAMES:
            start = time.perf_counter()
            sent = run_worker(SCRIPT, name, worker_args)
            if "skipped" in sent:
                print(f"skipped: {sent['skipped']}")
                return False
            if not any(runs.values()):
                print_header(recipe, sent, threads, epochs, rounds)
            runs[name].append(sent)
            if "check" in sent and len(runs[name]) == 1:
                print(
                    f"check: max |nabla - torch| test logits from the same weights "
                    f"{sent['check']:.1e} (ok; in the torch worker)"
                )
            print(
                f"round {r + 1} {name}: {len(sent['seconds'])} epoch(s), "
                f"{sum(sent['seconds']):.2f} s of training, final test accuracy "
                f"{sent['accuracy'][-1]:.2%} (process {time.perf_counter() - start:.1f} s)",
                flush=True,
            )
    same_inputs(runs)
    print()
    report(*table(runs, epochs, target), target, prefix)
    shares = [s["augment_share"] for s in runs["nabla"] if "augment_share" in s]
    if shares:
        share = min(shares)
        print(
            f"augmentation adds {share:.1%} to nabla's epoch (loader workers "
            f"{runs['nabla'][0]['workers']}; the least over {len(shares)} round(s) of the same "
            f"epochs with and without it; target <= {AUGMENT_TARGET:.0%}: "
            f"{'met' if share <= AUGMENT_TARGET else 'NOT met'})"
        )
        print(f"RESULT time_to_accuracy.{prefix}augment_share={share:.4f}")
    return True


def print_header(recipe: str, sent: dict, threads: int, epochs: int, rounds: int) -> None:
    target = RECIPES[recipe]["target"]
    if recipe == "lenet":
        import lenet_recipe as r

        what = (
            f"LeNet-5 ReLU max-pool, Adam {r.LR:g} cosine over {r.EPOCHS} epochs, batch "
            f"{r.BATCH}, label smoothing {r.SMOOTHING}, translate {r.SHIFT} px + rotate "
            f"{r.DEGREES:g} degrees (each framework's own loader and augmentation, timed)"
        )
    else:
        what = (
            f"MLP 784-{HIDDEN}-10 ReLU dropout {DROPOUT}, Adam {LR:g} cosine over {EPOCHS} "
            f"epochs, batch {BATCH}, translate {SHIFT} px"
        )
    print(
        f"{versions('numpy', 'torch', 'nabla')}; {threads} thread(s); MNIST-10k "
        f"({sent['n_train']} train, {sent['n_test']} test); {what}; torch at its fastest: fused "
        f"Adam, set_flush_denormal(True); each framework in its own process, {' / '.join(NAMES)} "
        f"alternating over {rounds} round(s); up to {epochs} epoch(s) to {target:.1%} test "
        f"accuracy\n"
    )


def same_inputs(runs: dict[str, list[dict]]) -> None:
    """Every worker must have started from the same weights and seen the same batches."""
    sent = [s for results in runs.values() for s in results]
    if len({s["weights"] for s in sent}) != 1:
        raise SystemExit("the workers started from different initial weights")
    common = min(len(s["batches"]) for s in sent)
    if len({tuple(s["batches"][:common]) for s in sent}) != 1:
        raise SystemExit("the workers trained on different batches")
    torch_runs = runs["torch"]
    if not all(s.get("flush_denormal") for s in torch_runs):
        print("note: torch.set_flush_denormal(True) is not supported on this CPU")
    if any(s["numba_loaded"] for s in torch_runs):
        print("note: numba was loaded in the torch worker")
    what = "weights and batches (hashes)" if common else "weights (each prepares its own batches)"
    print(f"same inputs: identical initial {what} in all {len(sent)} workers")


def table(runs: dict[str, list[dict]], epochs: int, target: float) -> tuple[dict, dict]:
    """Print a row per epoch (the fastest of the rounds' times; the first round's accuracy).
    Returns each framework's epoch times by round, and the epoch after which it got there."""
    reached: dict[str, int] = {}  # name -> the epoch after which it first had the target
    for name, results in runs.items():
        firsts = [
            next((i + 1 for i, a in enumerate(s["accuracy"]) if a >= target), None) for s in results
        ]
        if len(set(firsts)) > 1:
            print(f"note: {name}'s rounds first had {target:.1%} after epochs {firsts}; the latest")
        if None not in firsts:
            reached[name] = max(firsts)
    header = f"{'epoch':>5}{'nabla s':>10}{'nabla acc':>11}{'torch s':>10}{'torch acc':>11}"
    print(header)
    print("-" * len(header))
    last = max(len(s["seconds"]) for results in runs.values() for s in results)
    for epoch in range(min(last, epochs)):
        cells = []
        for results in runs.values():
            ran = [s for s in results if epoch < len(s["seconds"])]
            if ran:
                times = [s["seconds"][epoch] for s in ran]
                cells.append(f"{min(times):>10.2f}{ran[0]['accuracy'][epoch]:>11.2%}")
            else:
                cells.append(f"{'':>10}{'':>11}")
        print(f"{epoch + 1:>5}{''.join(cells)}")
    rounds = len(next(iter(runs.values())))
    data_s = [s["data_s"] for results in runs.values() for s in results]
    loader = sum(data_s) / len(data_s)
    print(
        f"(s: training seconds of the epoch, the fastest of {rounds} round(s); acc: test accuracy "
        f"after it"
        + (
            f"; the loader took {loader:.2f} s per epoch, counted for neither)\n"
            if loader
            else ")\n"
        )
    )
    epoch_seconds = {name: [s["seconds"] for s in results] for name, results in runs.items()}
    return epoch_seconds, reached


def report(
    epoch_seconds: dict[str, list[list[float]]], reached: dict[str, int], target: float, prefix: str
) -> None:
    """Print the time to the target and the ratios; then the RESULT lines.

    Every epoch does the same work, so on a quiet machine the time to the target is the number
    of epochs times the time of one. On a shared machine a burst of load from other processes
    can stretch many epochs tenfold (a thread pool that loses a core to another process waits a
    scheduler tick at every barrier), so besides the measured sum (of the round with the smallest
    one) this reports epochs x the fastest epoch of every round (load only ever adds time), and
    uses that estimate for the ratio.
    """
    fastest = {name: min(min(t) for t in rounds) for name, rounds in epoch_seconds.items()}
    measured = {name: min(map(sum, r)) for name, r in epoch_seconds.items()}
    robust = {}
    for name, rounds in epoch_seconds.items():
        if name in reached:
            robust[name] = reached[name] * fastest[name]
            print(
                f"{name}: {target:.1%} test accuracy after {reached[name]} epochs: "
                f"{measured[name]:.1f} s of training as measured, {robust[name]:.1f} s as "
                f"{reached[name]} x the fastest epoch ({fastest[name]:.3f} s)"
            )
        else:
            print(
                f"{name}: {target:.1%} not reached in {max(map(len, rounds))} epoch(s) "
                f"(fastest epoch {fastest[name]:.3f} s)"
            )
    epoch_ratio = fastest["nabla"] / fastest["torch"]
    print(f"training time of the fastest epoch nabla/torch = {epoch_ratio:.2f}")
    results = [f"RESULT time_to_accuracy.{prefix}epoch_time_ratio={epoch_ratio:.3f}"]
    if len(reached) == len(epoch_seconds):
        ratio = robust["nabla"] / robust["torch"]
        measured_ratio = measured["nabla"] / measured["torch"]
        verdict = "met" if ratio <= RATIO_TARGET else "NOT met"
        print(
            f"time to {target:.1%}: nabla/torch = {ratio:.2f} (target <= {RATIO_TARGET}: "
            f"{verdict}); with the measured sums {measured_ratio:.2f}; epochs {reached['nabla']} "
            f"vs {reached['torch']} (the dropout masks differ)"
        )
        for name, epochs in reached.items():
            results += [
                f"RESULT time_to_accuracy.{prefix}{name}_s={robust[name]:.2f}",
                f"RESULT time_to_accuracy.{prefix}{name}_epochs={epochs}",
            ]
        results += [
            f"RESULT time_to_accuracy.{prefix}ratio={ratio:.3f}",
            f"RESULT time_to_accuracy.{prefix}measured_ratio={measured_ratio:.3f}",
        ]
    else:
        missing = ", ".join(n for n in epoch_seconds if n not in reached)
        print(f"time to {target:.1%}: not measured ({missing} did not reach it)")
    print()
    print("\n".join(results))


if __name__ == "__main__":
    main()
