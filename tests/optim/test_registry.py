"""The optimizer registry: one class definition gives the config, the flags, the CLI, the build and
the lab a new optimizer; nothing else is edited."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tomllib

from nabla import optim
from nabla.lab import trajectories
from nabla.lab.trajectory_plots import _color
from nabla.optim import registry
from nabla.train import config
from nabla.train.build import build_optimizer

# A toy optimizer in a module of its own, as a newcomer would add one: sign descent,
# theta <- theta - lr sign(g). Nothing outside the class mentions it.
SIGN_DESCENT = textwrap.dedent(
    """
    import numpy as np
    from nabla.optim import Optimizer
    from nabla.optim.registry import Preset

    class SignDescent(Optimizer):
        name = "signdescent"
        defaults = {"lr": 0.01, "weight_decay": 0.0, "decoupled_weight_decay": False}
        descriptions = {
            "weight_decay": "weight decay",
            "decoupled_weight_decay": "decay the weights directly",
        }
        presets = {"signdescent": Preset({}, "#123456")}

        def reference(self, theta, g, state, h, t):
            theta -= h["lr"] * np.sign(g)
    """
)


def test_the_built_in_optimizers_are_registered_in_teaching_order():
    assert registry.names() == ["sgd", "adagrad", "rmsprop", "adam", "adamw"]
    assert registry.get("adamw") is optim.AdamW and registry.get("rmsprop") is optim.RMSProp
    with pytest.raises(KeyError, match="no optimizer 'lion'; the optimizers are: sgd, adagrad"):
        registry.get("lion")
    assert registry.owners("momentum") == ["sgd", "rmsprop"]
    assert registry.hyperparameters("adam")["beta2"] == 0.999 and "lr" not in (
        registry.hyperparameters("adam")
    )


def test_the_lab_presets_and_colours_come_from_the_registry():
    presets = registry.presets()
    assert list(presets) == ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam"]
    cls, preset = presets["nesterov"]
    assert cls is optim.SGD and preset.settings == {"momentum": 0.9, "nesterov": True}
    assert trajectories.presets() == list(presets)
    assert _color("adam") == "#9467bd" and _color("no such") == "black"
    opt = trajectories.make_optimizer("nesterov", [_param()], lr=0.1)
    assert isinstance(opt, optim.SGD) and opt.param_groups[0]["nesterov"] is True


def _param():
    import nabla as nb

    return nb.zeros(3, requires_grad=True)


def test_a_class_without_descriptions_or_with_a_taken_name_is_refused():
    with pytest.raises(TypeError, match=r"lacks descriptions of \['beta'\]"):

        class Missing(optim.Optimizer):
            name = "missing"
            defaults = {"lr": 0.1, "beta": 0.5}

    with pytest.raises(TypeError, match="the name 'sgd' is taken"):

        class Impostor(optim.Optimizer):
            name = "sgd"
            defaults = {"lr": 0.1}

    with pytest.raises(TypeError, match="lowercase letters and digits"):

        class Shouting(optim.Optimizer):
            name = "Shout"
            defaults = {"lr": 0.1}

    assert "missing" not in registry.names() and registry.get("sgd") is optim.SGD


def test_the_config_nests_the_optimizer_table_and_checks_it_through_the_class():
    cfg = config.resolve({"optimizer": "rmsprop", "rmsprop": {"beta": 0.95}}, {"momentum": 0.5})
    assert cfg["rmsprop"] == {**registry.hyperparameters("rmsprop"), "beta": 0.95, "momentum": 0.5}
    assert "sgd" not in cfg and "momentum" not in cfg
    text = config.to_toml(cfg)
    assert "[rmsprop]  # the hyperparameters of nabla.optim.rmsprop.RMSProp" in text
    assert config.resolve(tomllib.loads(text)) == cfg  # the written file reproduces the run
    with pytest.raises(config.ConfigError, match=r"^\[rmsprop\]: RMSProp: beta must be in"):
        config.resolve({"optimizer": "rmsprop", "rmsprop": {"beta": 1.5}})
    with pytest.raises(config.ConfigError, match=r"'beta1' is not a hyperparameter of rmsprop"):
        config.resolve({"optimizer": "sgd", "rmsprop": {"beta1": 0.5}})
    with pytest.raises(config.ConfigError, match=r"^amsgrad: expected bool, got 1$"):
        config.resolve({"optimizer": "adam", "amsgrad": 1})
    later = config.resolve({"optimizer": "sgd", "sgd": {"momentum": 0.5}}, {"momentum": 0.9})
    assert later["sgd"]["momentum"] == 0.9  # layers apply in order, flat or nested


def test_an_old_flat_config_resolves_to_the_same_optimizer():
    old = {  # a run folder's config.toml before the tables: every optimizer's keys, flat
        "optimizer": "sgd",
        "momentum": 0.9,
        "nesterov": True,
        "beta1": 0.9,
        "beta2": 0.999,
        "weight_decay": 1e-4,
    }
    cfg = config.resolve(old)
    assert cfg["sgd"]["momentum"] == 0.9 and cfg["sgd"]["nesterov"] is True
    assert cfg["sgd"]["weight_decay"] == 1e-4 and "beta1" not in cfg["sgd"]
    with pytest.raises(config.ConfigError, match=r"^beta1 applies to adam and adamw, not sgd$"):
        config.resolve({**old, "beta1": 0.5})


def test_build_passes_the_table_to_the_registered_class():
    import nabla as nb

    cfg = config.resolve({"optimizer": "adamw", "beta2": 0.99})
    model = nb.nn.Linear(3, 2)
    opt = build_optimizer(cfg, model, steps_per_epoch=10)
    assert type(opt) is optim.AdamW
    group = opt.param_groups[0]
    assert group["beta2"] == 0.99 and group["weight_decay"] == 0.01  # AdamW's own default


def test_a_toy_optimizer_added_by_one_file_trains_from_the_command_line(tmp_path):
    (tmp_path / "sign_descent.py").write_text(SIGN_DESCENT)
    program = "import sys, sign_descent; from nabla import cli; sys.exit(cli.main(sys.argv[1:]))"
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    run = tmp_path / "run"

    def nabla(*args):
        return subprocess.run(
            [sys.executable, "-c", program, *args], capture_output=True, text=True, env=env
        )

    shown = nabla("train", "--help").stdout
    assert "signdescent" in shown and "decay the weights directly" in shown
    result = nabla(
        "train", "--optimizer", "signdescent", "--lr", "0.003", "--epochs", "2",
        "--hidden", "32", "--schedule", "constant", "--out", str(run), "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = tomllib.loads((run / "config.toml").read_text())
    assert written["optimizer"] == "signdescent" and written["signdescent"]["weight_decay"] == 0.0
    import json

    results = json.loads((run / "results.json").read_text())
    assert results["evaluations"]["test"]["accuracy"] > 0.8  # sign descent learns the digits
    refused = nabla("train", "--optimizer", "signdescent", "--momentum", "0.9", "--out", str(run))
    assert refused.returncode == 2 and "momentum applies to sgd and rmsprop, not signdescent" in (
        refused.stderr
    )
    assert np.isfinite(results["evaluations"]["test"]["loss"])


def test_an_optimizer_without_presets_runs_in_the_lab_under_its_name(monkeypatch):
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))

    class Plain(optim.Optimizer):
        name = "plain"
        defaults = {"lr": 0.05}

        def reference(self, theta, g, state, h, t):
            theta -= h["lr"] * g

    cls, preset = registry.presets()["plain"]
    assert cls is Plain and preset.settings == {} and preset.color == "#8c564b"  # the first spare
    assert _color("plain") == "#8c564b"
    assert "plain" in trajectories.presets()
