"""The LeNet-5 recipe of bench/time_to_accuracy.py, in nabla and in torch, augmentation included.

The recipe is docs/results.md's MNIST-10k LeNet (98.5% and more on test): LeNet-5 with ReLU and
max pooling, Adam 1e-3 with cosine decay to 0 over 30 epochs (per update), batch 32, label
smoothing 0.1, random translations of up to 3 pixels and rotations of up to 15 degrees
(bilinear, zeros outside), standardized with the training images' mean and std.

Unlike the MLP recipe, each framework prepares its own batches inside the timed loop, because
feeding the step is part of what is measured: nabla through its ``DataLoader`` (shuffled per
epoch, the augmentation on its compiled kernels), torch with the same augmentation written in
torch ops, torchvision-free: a per-sample affine map (rotation about the centre, then an integer
shift) sampled by ``F.affine_grid`` + ``F.grid_sample`` (bilinear, zero padding) in one pass, the
way a torch user writes it. The two draw different random numbers, so their batches differ;
they start from the same weights.
"""

from __future__ import annotations

import math
import time

EPOCHS, BATCH, LR, SMOOTHING, SHIFT, DEGREES, SEED = 30, 32, 1e-3, 0.1, 3, 15.0, 0
TARGET = 0.985


def nabla_model():
    import nabla as nb
    from nabla import models

    nb.manual_seed(SEED)
    return models.lenet()


def statistics(train) -> tuple[float, float]:
    """The training images' mean and std, the standardization of both frameworks."""
    import numpy as np

    return float(train.x.mean(dtype=np.float64)), float(train.x.std(dtype=np.float64))


def steps_per_epoch(n: int) -> int:
    return math.ceil(n / BATCH)


class NablaLenet:
    """The recipe in nabla: its DataLoader (augmentation on the kernels) feeds the step."""

    def __init__(self, train, model, augment_: bool = True, workers: int | None = None):
        from nabla import optim
        from nabla.data import DataLoader, transforms
        from nabla.data.transforms import augment
        from nabla.optim.schedules import CosineDecay

        mean, std = statistics(train)
        steps = (
            [augment.RandomTranslate(SHIFT), augment.RandomRotation(DEGREES)] if augment_ else []
        )
        standardize = transforms.Standardize(mean=mean, std=std)
        options = {} if workers is None else {"workers": workers}
        self.loader = DataLoader(
            train,
            batch_size=BATCH,
            shuffle=True,
            seed=SEED,
            transform=transforms.Compose([*steps, standardize]),
            **options,
        )
        self.model, self.mean, self.std = model, mean, std
        self.opt = optim.Adam(model.parameters(), lr=CosineDecay(LR, EPOCHS * len(self.loader)))

    def train_epoch(self) -> float:
        from nabla import nn

        self.model.train()
        start = time.perf_counter()
        for x, y in self.loader:
            loss = nn.functional.cross_entropy(self.model(x), y, label_smoothing=SMOOTHING)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        return time.perf_counter() - start

    def logits(self, x):
        from common import nabla_logits

        return nabla_logits(self.model, (x - self.mean) / self.std)


def torch_lenet():
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120),
        nn.ReLU(),
        nn.Linear(120, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )


class TorchLenet:
    """The recipe in torch, from nabla's initial weights, on nabla's schedule; its own shuffling
    and augmentation, in torch ops."""

    def __init__(self, train, start):
        import torch

        from nabla.optim.schedules import CosineDecay

        torch.manual_seed(SEED)
        self.model = torch_lenet()
        self.model.load_state_dict(
            {k: torch.from_numpy(v.numpy().copy()) for k, v in start.state_dict().items()}
        )
        self.x, self.y = torch.from_numpy(train.x.copy()), torch.from_numpy(train.y.copy())
        self.mean, self.std = statistics(train)
        self.schedule = CosineDecay(LR, EPOCHS * steps_per_epoch(len(train)))
        self.step, self.epoch = 0, 0
        self.opt = torch.optim.Adam(self.model.parameters(), lr=self.schedule(0), fused=True)

    def augment(self, x, generator):
        """Rotate each image by an angle uniform in [-DEGREES, DEGREES] about its centre and
        shift it by whole pixels uniform in [-SHIFT, SHIFT], bilinear with zeros outside."""
        import torch
        import torch.nn.functional as F

        n, _, h, w = x.shape
        angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(DEGREES)
        shift = torch.randint(-SHIFT, SHIFT + 1, (n, 2), generator=generator)
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.empty(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
        # grid_sample's coordinates span [-1, 1] over the image: one pixel is 2 / size.
        theta[:, 0, 2] = -2 * shift[:, 1] / w
        theta[:, 1, 2] = -2 * shift[:, 0] / h
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)

    def train_epoch(self) -> float:
        import torch

        self.model.train()
        generator = torch.Generator().manual_seed(SEED * 1000 + self.epoch)
        self.epoch += 1
        start = time.perf_counter()
        order = torch.randperm(len(self.x), generator=generator)
        for first in range(0, len(order), BATCH):
            index = order[first : first + BATCH]
            x = (self.augment(self.x[index], generator) - self.mean) / self.std
            loss = torch.nn.functional.cross_entropy(
                self.model(x), self.y[index], label_smoothing=SMOOTHING
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
            return self.model(torch.from_numpy((x - self.mean) / self.std)).numpy()
