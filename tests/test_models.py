"""Ready-made models: checkpoints move to the same architecture in torch and give its outputs."""

from __future__ import annotations

import numpy as np
import pytest
import safetensors.torch
import torch

import nabla as nb
from nabla import models, nn


def torch_mlp():
    return torch.nn.Sequential(
        torch.nn.Linear(784, 64),
        torch.nn.BatchNorm1d(64),
        torch.nn.ReLU(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(64, 10),
    )


def torch_lenet():
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 6, 5, padding=2),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(6, 16, 5),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(400, 120),
        torch.nn.ReLU(),
        torch.nn.Linear(120, 84),
        torch.nn.ReLU(),
        torch.nn.Linear(84, 10),
    )


class TorchBlock(torch.nn.Module):
    def __init__(self, cin, cout, stride, skip):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(cout)
        self.conv2 = torch.nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(cout)
        self.skip = skip
        self.shortcut = torch.nn.Identity()
        if skip and (stride != 1 or cin != cout):
            self.shortcut = torch.nn.Sequential(
                torch.nn.Conv2d(cin, cout, 1, stride, bias=False), torch.nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + self.shortcut(x) if self.skip else out)


class TorchResNet(torch.nn.Module):
    def __init__(self, depth, width, skip):
        super().__init__()
        n = (depth - 2) // 6
        self.conv = torch.nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn = torch.nn.BatchNorm2d(width)
        blocks, c = [], width
        for stage, cout in enumerate((width, 2 * width, 4 * width)):
            for i in range(n):
                blocks.append(TorchBlock(c, cout, 2 if stage and not i else 1, skip))
                c = cout
        self.blocks = torch.nn.Sequential(*blocks)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(c, 10)

    def forward(self, x):
        return self.fc(self.pool(self.blocks(torch.relu(self.bn(self.conv(x))))).flatten(1))


CASES = [
    (lambda: models.mlp([784, 64, 10], dropout=0.5, batch_norm=True), torch_mlp, (8, 784)),
    (models.lenet, torch_lenet, (4, 1, 28, 28)),
    (lambda: models.resnet(8, width=4), lambda: TorchResNet(8, 4, True), (2, 3, 16, 16)),
    (
        lambda: models.resnet(14, width=4, skip=False),
        lambda: TorchResNet(14, 4, False),
        (2, 3, 8, 8),
    ),
]


@pytest.mark.parametrize(
    ("make_ours", "make_theirs", "shape"), CASES, ids=["mlp", "lenet", "resnet8", "plain14"]
)
def test_nabla_checkpoint_runs_in_torch_and_back(tmp_path, make_ours, make_theirs, shape):
    nb.manual_seed(0)
    ours, theirs = make_ours(), make_theirs()
    path = tmp_path / "model.safetensors"
    nb.save(ours.state_dict(), path)
    theirs.load_state_dict(safetensors.torch.load_file(path))
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    ours.eval(), theirs.eval()
    np.testing.assert_allclose(
        ours(nb.tensor(x)).data, theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5
    )

    # train mode (batch statistics) and the gradients agree too, dropout aside
    if not any(isinstance(m, nn.Dropout) for m in ours.modules()):
        ours.train(), theirs.train()
        xa, xt = nb.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ours(xa).sum().backward()
        theirs(xt).sum().backward()
        np.testing.assert_allclose(xa.grad, xt.grad.numpy(), rtol=1e-3, atol=1e-5)
        for name, p in ours.named_parameters():
            np.testing.assert_allclose(
                p.grad,
                dict(theirs.named_parameters())[name].grad.numpy(),
                rtol=1e-3,
                atol=1e-4,
                err_msg=name,
            )

    # and the reverse: torch's checkpoint into a fresh nabla model
    safetensors.torch.save_file(theirs.state_dict(), tmp_path / "torch.safetensors")
    nb.manual_seed(1)
    fresh = make_ours()
    fresh.load_state_dict(nb.load(tmp_path / "torch.safetensors"))
    fresh.eval(), theirs.eval()
    np.testing.assert_allclose(
        fresh(nb.tensor(x)).data, theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5
    )


def test_resnet_depths_and_shortcuts():
    assert len(models.resnet(20).blocks) == 9 and len(models.resnet(56).blocks) == 27
    plain = models.resnet(20, skip=False)
    assert not any("shortcut" in name for name, _ in plain.named_parameters())
    with pytest.raises(ValueError, match="6n \\+ 2"):
        models.resnet(21)


def test_unknown_activation_lists_the_choices():
    with pytest.raises(ValueError, match="relu"):
        models.mlp([4, 3, 2], activation="swish")
