"""The report's configuration table lists the settings that apply to the run: no momentum for
Adam, no Nesterov unless SGD, no convolution or ResNet settings for an MLP (nor MLP settings for
a convnet), no augmentation when there is none."""

from __future__ import annotations

import re

import pytest

from nabla.report import write_report
from nabla.train import config


def _shown(tmp_path, **settings) -> set[str]:
    """The setting names in the configuration table of a run with ``settings``."""
    (tmp_path / "config.toml").write_text(config.to_toml(config.resolve(settings)))
    page = write_report(tmp_path).read_text()
    table = page.split('<table class="config">')[1].split("</table>")[0]
    return set(re.findall(r"<tr><td>([^<]+)</td>", table))


def test_an_adam_mlp_shows_no_sgd_or_convnet_settings(tmp_path):
    shown = _shown(tmp_path, optimizer="adam", model="mlp")
    assert {"optimizer", "lr", "beta1", "beta2", "weight_decay", "hidden", "dropout"} <= shown
    assert not {"momentum", "nesterov", "depth", "augment", "decay_rate"} & shown


def test_sgd_shows_momentum_and_nesterov_but_not_adams_betas(tmp_path):
    shown = _shown(tmp_path, optimizer="sgd", momentum=0.9, nesterov=True)
    assert {"momentum", "nesterov"} <= shown
    assert not {"beta1", "beta2"} & shown


def test_rmsprop_has_momentum_but_no_nesterov(tmp_path):
    shown = _shown(tmp_path, optimizer="rmsprop")
    assert "momentum" in shown and "nesterov" not in shown


def test_a_resnet_shows_its_depth_and_no_mlp_settings(tmp_path):
    shown = _shown(tmp_path, model="resnet", dataset="cifar10", augment=["crop", "flip"])
    assert {"depth", "augment"} <= shown
    assert not {"hidden", "dropout", "batch_norm", "activation"} & shown


def test_lenet_keeps_its_activation(tmp_path):
    shown = _shown(tmp_path, model="lenet", dataset="mnist")
    assert "activation" in shown and not {"hidden", "dropout", "depth"} & shown


@pytest.mark.parametrize(
    "schedule, has_decay_rate, has_warmup",
    [("cosine", False, True), ("exponential", True, True), ("onecycle", False, False)],
)
def test_schedule_settings_follow_the_schedule(tmp_path, schedule, has_decay_rate, has_warmup):
    shown = _shown(tmp_path, schedule=schedule)
    assert ("decay_rate" in shown) == has_decay_rate
    assert ("warmup_epochs" in shown) == has_warmup


def test_the_hidden_settings_are_named_below_the_table(tmp_path):
    _shown(tmp_path, optimizer="adam")
    page = (tmp_path / "report.html").read_text()
    assert "Not applicable to this run" in page and "momentum" in page.split("</table>")[1]


def test_a_setting_the_report_does_not_know_is_shown(tmp_path):
    (tmp_path / "config.toml").write_text('optimizer = "adam"\nsnapshot_ensemble = true\n')
    assert "snapshot_ensemble" in write_report(tmp_path).read_text()
