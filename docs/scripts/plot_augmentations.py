"""Draw original and augmented MNIST test digits for ``docs/data.md``.

Run from the repository root: ``python docs/scripts/plot_augmentations.py``. It reads the MNIST
test images from ``$NABLA_DATA/mnist/t10k-images-idx3-ubyte.gz`` (default ``../shared/data``
beside the repository) with gzip and NumPy, and writes ``docs/images/augmentations.png``: one
row per augmentation, the same eight digits in every row, each labelled with the parameters
the transform drew. The images come from the compiled kernels (``nabla/kernels/augment.py``),
whatever ``NABLA_KERNELS`` says; they equal the NumPy reference's to float32 rounding.
matplotlib (the ``dev`` extra) is imported only in ``main``.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

from nabla import kernels
from nabla.data.transforms.augment import (
    GaussianNoise,
    RandomCrop,
    RandomErasing,
    RandomHorizontalFlip,
    RandomResizedCrop,
    RandomRotation,
    RandomScale,
    RandomTranslate,
    RandomVerticalFlip,
)
from nabla.data.transforms.base import Context
from nabla.data.transforms.mixing import CutMix, Mixup

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "images" / "augmentations.png"
COLUMNS = 8


def mnist_test_images(count: int) -> np.ndarray:
    """The first ``count`` MNIST test images as float32 (count, 1, 28, 28) in [0, 1]."""
    data = Path(os.environ.get("NABLA_DATA", ROOT.parent / "shared" / "data"))
    with gzip.open(data / "mnist" / "t10k-images-idx3-ubyte.gz", "rb") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16)  # IDX header: 16 bytes
    return (raw[: count * 784].reshape(count, 1, 28, 28) / 255.0).astype(np.float32)


def rows():
    """(row label, transform, function from its draw() to one caption per sample)."""
    deg = "\N{DEGREE SIGN}"
    lam = "\N{GREEK SMALL LETTER LAMDA}"
    return [
        (
            "RandomHorizontalFlip\n(p=0.5)",
            RandomHorizontalFlip(p=0.5),
            lambda d: ["flipped" if f else "kept" for f in d["flip"]],
        ),
        (
            "RandomVerticalFlip\n(p=0.5)",
            RandomVerticalFlip(p=0.5),
            lambda d: ["flipped" if f else "kept" for f in d["flip"]],
        ),
        (
            "RandomTranslate(4)",
            RandomTranslate(4),
            lambda d: [f"dy {a:+d}, dx {b:+d}" for a, b in zip(d["dy"], d["dx"])],
        ),
        (
            "RandomRotation(30)",
            RandomRotation(30),
            lambda d: [f"{a:+.1f}{deg}" for a in d["angle"]],
        ),
        (
            'RandomRotation(30,\ninterpolation="nearest")',
            RandomRotation(30, interpolation="nearest"),
            lambda d: [f"{a:+.1f}{deg}" for a in d["angle"]],
        ),
        (
            "RandomScale\n(scale=(0.7, 1.3))",
            RandomScale((0.7, 1.3)),
            lambda d: [f"zoom {s:.2f}" for s in d["scale"]],
        ),
        (
            "RandomResizedCrop\n(28, scale=(0.3, 1))",
            RandomResizedCrop(28, scale=(0.3, 1.0)),
            lambda d: [
                f"{h}x{w} at ({t},{s})"
                for t, s, h, w in zip(d["top"], d["left"], d["height"], d["width"])
            ],
        ),
        (
            "RandomCrop\n(28, padding=4)",
            RandomCrop(28, padding=4),
            lambda d: [f"offset ({t - 4:+d},{s - 4:+d})" for t, s in zip(d["top"], d["left"])],
        ),
        (
            "GaussianNoise\n(0.2, clip=True)",
            GaussianNoise(0.2, clip=True),
            lambda d: [""] * COLUMNS,
        ),
        (
            "RandomErasing\n(p=1, value=0.5)",
            RandomErasing(p=1.0, value=0.5),
            lambda d: [f"{h}x{w} ({h * w / 784:.0%})" for h, w in zip(d["height"], d["width"])],
        ),
        (
            "Mixup(alpha=1)",
            Mixup(alpha=1.0, num_classes=10),
            lambda d: [f"{lam} {v:.2f} + #{p}" for v, p in zip(d["lam"], d["partner"])],
        ),
        (
            "CutMix(alpha=1)",
            CutMix(alpha=1.0, num_classes=10),
            lambda d: [f"{lam} {v:.2f} + #{p}" for v, p in zip(d["lam"], d["partner"])],
        ),
    ]


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = mnist_test_images(COLUMNS)
    y = np.zeros(COLUMNS, dtype=np.int64)
    context = Context(seed=0, epoch=0, indices=np.arange(COLUMNS))
    table = [("original", x, [f"#{i}" for i in range(COLUMNS)])]
    for label, transform, caption in rows():
        with kernels.reference(False):  # the compiled kernels
            out, _ = transform(x, y, context)
        draw = transform.draw(context, x.shape) if hasattr(transform, "draw") else {}
        table.append((label, out, caption(draw)))

    fig, axes = plt.subplots(len(table), COLUMNS, figsize=(1.35 * COLUMNS + 3.2, 1.5 * len(table)))
    for row, (name, images, captions) in zip(axes, table):
        for ax, image, text in zip(row, images, captions):
            ax.imshow(image[0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel(text, fontsize=7, labelpad=2)
        row[0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=8, labelpad=8)
    fig.suptitle(
        "nabla.data.transforms: the first MNIST test images, seed 0, epoch 0; "
        "captions: the drawn parameters",
        fontsize=11,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=80)
    plt.close(fig)
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
