"""The report's configuration table lists the settings that apply to the run: the optimizer's own
table (``adam.beta1``), no momentum for Adam even in an older flat config, no convolution or
ResNet settings for an MLP (nor MLP settings for a convnet), no augmentation when there is none."""

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
    assert {"optimizer", "lr", "adam.beta1", "adam.beta2", "adam.weight_decay"} <= shown
    assert {"hidden", "dropout"} <= shown
    assert not {"momentum", "sgd.momentum", "depth", "augment", "decay_rate"} & shown


def test_sgd_shows_momentum_and_nesterov_but_not_adams_betas(tmp_path):
    shown = _shown(tmp_path, optimizer="sgd", momentum=0.9, nesterov=True)
    assert {"sgd.momentum", "sgd.nesterov"} <= shown
    assert not {"adam.beta1", "beta1", "beta2"} & shown


def test_rmsprop_has_momentum_but_no_nesterov(tmp_path):
    shown = _shown(tmp_path, optimizer="rmsprop")
    assert "rmsprop.momentum" in shown and not any("nesterov" in key for key in shown)


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


def test_an_older_flat_config_hides_the_other_optimizers_keys_below_the_table(tmp_path):
    # run folders written before the optimizer tables list every optimizer's keys flat
    (tmp_path / "config.toml").write_text(
        'optimizer = "adam"\nmomentum = 0.0\nnesterov = false\nbeta1 = 0.9\n'
    )
    page = write_report(tmp_path).read_text()
    table, below = page.split('<table class="config">')[1].split("</table>")[:2]
    shown = set(re.findall(r"<tr><td>([^<]+)</td>", table))
    assert "beta1" in shown and not {"momentum", "nesterov"} & shown
    assert "Not applicable to this run" in below and "momentum, nesterov" in below


def test_a_setting_the_report_does_not_know_is_shown(tmp_path):
    (tmp_path / "config.toml").write_text('optimizer = "adam"\nsnapshot_ensemble = true\n')
    assert "snapshot_ensemble" in write_report(tmp_path).read_text()
