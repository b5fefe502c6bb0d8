import pytest

from nabla.train import config
from nabla.train.config import ConfigError


def test_defaults_resolve_and_round_trip_through_toml(tmp_path):
    cfg = config.resolve({}, {"hidden": [128, 64], "augment": ["translate"], "lr": 0.05})
    path = tmp_path / "c.toml"
    path.write_text(config.to_toml(cfg))
    assert config.resolve(config.read_toml(path)) == cfg
    assert cfg["lr"] == 0.05 and cfg["dataset"] == "digits"


def test_later_layers_override_earlier_ones():
    assert config.resolve({"lr": 0.1, "epochs": 3}, {"lr": 0.2})["lr"] == 0.2


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("lr", "1e-3", 1e-3),
        ("epochs", "5", 5),
        ("epochs", "1e2", 100),
        ("nesterov", "true", True),
        ("hidden", "128,64", [128, 64]),
        ("hidden", "", []),
        ("augment", "translate,rotate", ["translate", "rotate"]),
    ],
)
def test_parse_value(key, text, value):
    assert config.parse_value(key, text) == value


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        ({"optimiser": "sgd"}, "did you mean 'optimizer'"),
        ({"optimizer": "adamm"}, "'adamm' is not one of sgd, adagrad, rmsprop, adam, adamw"),
        ({"lr": -1.0}, r"lr: -1.0 is outside \[0.0, inf\]"),
        ({"epochs": 2.5}, "epochs: expected int"),
        ({"augment": ["translate", "spin"]}, "'spin' is not one of translate"),
        ({"nesterov": True}, "nesterov applies to sgd, not adam"),
        ({"optimizer": "sgd", "nesterov": True}, "nesterov=True needs momentum > 0"),
        ({"momentum": 0.9}, "momentum applies to sgd and rmsprop, not adam"),
        ({"optimizer": "sgd", "beta2": 0.99}, "beta2 applies to adam"),
        ({"model": "lenet"}, "LeNet-5 for 28x28 images"),
        ({"dataset": "moons", "augment": ["rotate"]}, "2-D points, not images"),
        ({"dataset": "moons", "model": "resnet"}, "needs images"),
        ({"model": "resnet", "dataset": "cifar10", "depth": 21}, "6n \\+ 2"),
        ({"warmup_epochs": 50.0}, "warmup_epochs"),
        ({"augment": ["mixup", "cutmix"]}, "mixup or cutmix"),
    ],
)
def test_bad_settings_are_explained(layer, message):
    with pytest.raises(ConfigError, match=message):
        config.resolve(layer)


def test_bad_toml_is_explained(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("lr = = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.read_toml(path)
    with pytest.raises(ConfigError, match="does not exist"):
        config.read_toml(tmp_path / "missing.toml")
