"""Run configuration: named settings from defaults, a TOML file and flags.

Every setting of ``nabla train`` is a key of :data:`SCHEMA` with its type, default, allowed
values and help, except the optimizer's hyperparameters: those are the chosen optimizer class's
own (its ``defaults``, ``descriptions`` and ``validate``; :mod:`nabla.optim.registry`) and live in
a table named after it, ``[sgd]`` in the TOML file. A run resolves its config as defaults <-
``CONFIG.toml`` <- command-line flags, validates it (unknown keys, bad values and impossible
combinations get an error listing the valid choices) and writes the result to the run folder as
``config.toml``.

A hyperparameter given flat (``momentum = 0.9`` in a file, ``--momentum 0.9``) belongs to the
chosen optimizer; so an old run folder's flat config still resolves the same.

>>> cfg = resolve({"lr": 0.05}, {"optimizer": "sgd", "momentum": 0.9})
>>> cfg["optimizer"], cfg["lr"], cfg["sgd"]["momentum"], cfg["dataset"]
('sgd', 0.05, 0.9, 'digits')
>>> resolve({"optimiser": "sgd"})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
nabla.train.config.ConfigError: unknown setting 'optimiser' (did you mean 'optimizer'?); ...
"""

from __future__ import annotations

import argparse
import difflib
import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..optim import registry, schedules

if TYPE_CHECKING:
    import os

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class ConfigError(ValueError):
    """A setting is unknown, has a bad value, or contradicts another."""


@dataclass(frozen=True)
class Setting:
    type: type  # bool, int, float, str, or list (of item_type)
    default: Any
    help: str
    choices: tuple | Any = ()  # or a function returning them (the registered optimizers)
    item_type: type = str
    minimum: float = -math.inf
    maximum: float = math.inf


DATASETS = (
    "digits",
    "mnist10k",
    "mnist",
    "fashion_mnist",
    "cifar10",
    "spirals",
    "moons",
    "blobs",
    "xor",
)
AUGMENTATIONS = (
    "translate",
    "rotate",
    "scale",
    "flip",
    "crop",
    "noise",
    "erase",
    "mixup",
    "cutmix",
)
ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu")

SCHEMA: dict[str, Setting] = {
    # data
    "dataset": Setting(
        str,
        "digits",
        "the dataset (digits is embedded; the others download or read $NABLA_DATA)",
        DATASETS,
    ),
    "dev_fraction": Setting(
        float,
        0.1,
        "share of the training split held out as dev data (datasets without a dev split)",
        minimum=0.01,
        maximum=0.5,
    ),
    "standardize": Setting(
        bool, False, "standardize inputs per channel with training-set statistics"
    ),
    "augment": Setting(list, [], "augmentations of training batches, in order", AUGMENTATIONS),
    "batch_size": Setting(int, 32, "minibatch size", minimum=1),
    "loader_threads": Setting(int, 0, "loader threads preparing batches ahead", minimum=0),
    # model
    "model": Setting(str, "mlp", "the architecture", ("mlp", "lenet", "resnet")),
    "hidden": Setting(
        list, [256], "hidden layer widths of the mlp ([] for softmax regression)", item_type=int
    ),
    "activation": Setting(str, "relu", "hidden-layer activation", ACTIVATIONS),
    "dropout": Setting(
        float,
        0.3,
        "dropout probability after each hidden layer of the mlp",
        minimum=0.0,
        maximum=0.95,
    ),
    "batch_norm": Setting(
        bool, False, "batch normalization after each hidden linear layer of the mlp"
    ),
    "depth": Setting(int, 20, "resnet depth (6n + 2: 20, 32, 44, 56, 110)", minimum=8),
    # optimization
    "optimizer": Setting(
        str, "adam", "the optimizer; its hyperparameters are below", registry.names
    ),
    "lr": Setting(float, 0.01, "peak learning rate", minimum=0.0),
    "lr_batch_size": Setting(
        int,
        0,
        "linear scaling rule: the batch size lr is meant for; training uses lr x batch_size / "
        "lr_batch_size (Goyal et al. 2017; 0: lr as given)",
        minimum=0,
    ),
    "label_smoothing": Setting(
        float, 0.0, "cross-entropy label smoothing", minimum=0.0, maximum=0.99
    ),
    "clip_grad_norm": Setting(
        float, 0.0, "clip the gradient norm to this value (0: off)", minimum=0.0
    ),
    "schedule": Setting(
        str, "cosine", "learning-rate schedule over the whole run", schedules.names
    ),
    "warmup_epochs": Setting(float, 0.0, "linear warmup from 0 over this many epochs", minimum=0.0),
    "decay_rate": Setting(
        float,
        0.01,
        "final lr / peak lr for exponential and inverse-time decay",
        minimum=1e-8,
        maximum=1.0,
    ),
    "snapshot_ensemble": Setting(
        bool,
        False,
        "keep the weights at the end of every cosine-restart cycle and report their ensemble "
        "(Huang et al. 2017)",
    ),
    # training
    "epochs": Setting(int, 40, "epochs to train", minimum=1),
    "early_stopping": Setting(
        int, 0, "stop after this many epochs without dev-loss improvement (0: off)", minimum=0
    ),
    "seed": Setting(
        int, 0, "seed for initialization, dropout, shuffling and augmentation", minimum=0
    ),
    "compile": Setting(
        bool,
        False,
        "define-and-run: trace the training step once and replay it (nabla.compile); the same "
        "numbers, faster",
    ),
}


def options(setting: Setting) -> tuple:
    return tuple(setting.choices() if callable(setting.choices) else setting.choices)


def defaults() -> dict:
    return {key: (list(s.default) if s.type is list else s.default) for key, s in SCHEMA.items()}


def hyperparameters() -> dict[str, Setting]:
    """Every registered optimizer's hyperparameters (but lr) as settings, in registration order;
    a name several optimizers share takes its first owner's default."""
    out: dict[str, Setting] = {}
    for name in registry.names():
        cls = registry.get(name)
        for key, default in registry.hyperparameters(name).items():
            out.setdefault(key, Setting(type(default), default, cls.descriptions[key]))
    return out


def setting(key: str) -> Setting:
    """The setting ``key``: a key of :data:`SCHEMA` or a registered optimizer's hyperparameter."""
    found = SCHEMA.get(key) or hyperparameters().get(key)
    if found is None:
        raise _unknown(key)
    return found


def _unknown(key: str) -> ConfigError:
    known = [*SCHEMA, *hyperparameters()]
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(
        f"unknown setting {key!r}{hint}; valid settings: {', '.join(SCHEMA)}; the optimizers' "
        f"hyperparameters: {', '.join(hyperparameters())}"
    )


def parse_value(key: str, text: str) -> bool | int | float | str | list:
    """A setting's value from command-line text: ``"0.1"``, ``"true"``, ``"128,64"``."""
    setting_, text = setting(key), str(text).strip()
    return _parse(key, setting_, text)


def _parse(key: str, setting: Setting, text: str) -> bool | int | float | str | list:
    try:
        if setting.type is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        if setting.type is list:
            return [setting.item_type(t.strip()) for t in text.split(",") if t.strip()]
        return (
            setting.type(float(text)) if setting.type is int and "e" in text else setting.type(text)
        )
    except ValueError:
        kind = (
            f"a list of {setting.item_type.__name__}"
            if setting.type is list
            else setting.type.__name__
        )
        raise ConfigError(f"{key}: expected {kind}, got {text!r}") from None


def check(key: str, value: object) -> bool | int | float | str | list:
    """``value`` converted to the setting's type, or a ConfigError naming the valid choices."""
    return _check(key, setting(key), value)


def _check(key: str, setting: Setting, value: object) -> bool | int | float | str | list:
    if setting.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if setting.type is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        items = value
    else:
        if not isinstance(value, setting.type) or (setting.type is int and isinstance(value, bool)):
            raise ConfigError(f"{key}: expected {setting.type.__name__}, got {value!r}")
        items = [value]
    for item in items:
        if setting.type is list and not isinstance(item, setting.item_type):
            raise ConfigError(f"{key}: items must be {setting.item_type.__name__}, got {item!r}")
        if isinstance(item, float) and not math.isfinite(item):
            raise ConfigError(f"{key}: {item!r} is not a finite number")
        if options(setting) and item not in options(setting):
            raise ConfigError(f"{key}: {item!r} is not one of {', '.join(options(setting))}")
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            low, high = (
                (setting.minimum, setting.maximum) if setting.type is not list else (1, math.inf)
            )
            if not low <= item <= high:
                raise ConfigError(f"{key}: {item!r} is outside [{low}, {high}]")
    return list(value) if setting.type is list else value


def add_flags(parser: argparse.ArgumentParser) -> None:
    """One command-line flag per setting (``--batch-size``, ``--nesterov/--no-nesterov``), each
    with its help, choices and default; an unset flag stays None, so the config file keeps it."""
    group = parser.add_argument_group("settings (each overrides the config file)")
    for key, setting in SCHEMA.items():
        named = f" ({', '.join(options(setting))})" if options(setting) else ""
        default = (
            setting.default if setting.type is not list else ",".join(map(str, setting.default))
        )
        _add_flag(group, key, setting, f"{setting.help}{named}; default {default!s}")
    group = parser.add_argument_group(
        "optimizer hyperparameters (each for the chosen optimizer; [NAME] tables in the file)"
    )
    for key, setting in hyperparameters().items():
        defaults = ", ".join(
            f"{name} {registry.hyperparameters(name)[key]}" for name in registry.owners(key)
        )
        _add_flag(group, key, setting, f"{setting.help}; default: {defaults}")


def _add_flag(group: argparse._ArgumentGroup, key: str, setting: Setting, text: str) -> None:
    flag = "--" + key.replace("_", "-")
    if setting.type is bool:
        group.add_argument(
            flag, dest=key, action=argparse.BooleanOptionalAction, default=None, help=text
        )
    else:
        group.add_argument(flag, dest=key, metavar=key.upper(), default=None, help=text)


def overrides(args: argparse.Namespace) -> dict:
    """The settings given as flags (parsed from their text), for :func:`resolve`'s last layer."""
    out = {}
    for key, setting in [*SCHEMA.items(), *hyperparameters().items()]:
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value if setting.type is bool else parse_value(key, value)
    return out


def read_toml(path: str | os.PathLike[str]) -> dict:
    """The settings in the TOML file ``path``; a ConfigError for a path that is missing, not a
    regular file (a folder, a FIFO), not UTF-8 text, or not valid TOML."""
    from ..serialization import open_regular

    try:
        with open_regular(path, ConfigError, "config file") as f:
            text = f.read().decode("utf-8")
        return tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"config file {str(path)!r} is not UTF-8 text (byte {err.start} is "
            f"{err.object[err.start]:#04x}): "
            "a config is a TOML text file"
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"config file {str(path)!r} is not valid TOML: {err}") from None


def resolve(*layers: dict) -> dict:
    """Defaults overridden by each layer in turn, every value checked, then the combinations.

    The result holds every setting of :data:`SCHEMA` and, under the optimizer's name, a table of
    all its hyperparameters but lr."""
    cfg, given = defaults(), []  # given: (table or None if flat, key, value), in order
    for layer in layers:
        for key, value in layer.items():
            if key in SCHEMA:
                cfg[key] = check(key, value)
            elif key in registry.names() and isinstance(value, dict):
                given += [(key, k, v) for k, v in value.items()]
            elif registry.owners(key):
                given.append((None, key, value))
            else:
                raise _unknown(key)
    cfg[cfg["optimizer"]] = _optimizer_table(cfg["optimizer"], cfg["lr"], given)
    combinations(cfg)
    return cfg


def _optimizer_table(name: str, lr: float, given: list) -> dict:
    """The hyperparameters of optimizer ``name``: its defaults, then the values given for it in
    order, each checked by type, then all of them by the class's own ``validate``. A table of
    another optimizer is checked and left out; a flat key that the optimizer lacks is refused
    unless it holds its default (an old flat config lists every optimizer's keys)."""
    table = registry.hyperparameters(name)
    for owner, key, value in given:
        mine = registry.hyperparameters(owner or name)
        if key not in mine:
            if owner is not None:
                raise ConfigError(
                    f"[{owner}]: {key!r} is not a hyperparameter of {owner}; it has "
                    f"{', '.join(mine)}"
                )
            if any(value == registry.hyperparameters(o)[key] for o in registry.owners(key)):
                continue
            raise ConfigError(f"{key} applies to {_and(registry.owners(key))}, not {name}")
        value = _check(key, Setting(type(mine[key]), mine[key], ""), value)
        if owner in (None, name):
            table[key] = value
    try:
        registry.get(name).validate({"lr": lr, **table})
    except ValueError as err:
        raise ConfigError(f"[{name}]: {err}") from None
    return table


def _and(names: list[str]) -> str:
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0]


def combinations(cfg: dict) -> None:
    """Reject settings that contradict each other."""
    if cfg["snapshot_ensemble"] and cfg["schedule"] != "cosine-restarts":
        raise ConfigError(
            f"snapshot_ensemble needs schedule = 'cosine-restarts' (a snapshot at the end of "
            f"every cycle), got schedule = {cfg['schedule']!r}"
        )
    if len(set(cfg["augment"])) != len(cfg["augment"]):
        raise ConfigError(f"augment lists an augmentation twice: {cfg['augment']}")
    if "mixup" in cfg["augment"] and "cutmix" in cfg["augment"]:
        raise ConfigError("augment: choose mixup or cutmix, not both")
    image = cfg["dataset"] not in ("spirals", "moons", "blobs", "xor")
    if not image and (cfg["augment"] and set(cfg["augment"]) - {"noise", "mixup"}):
        raise ConfigError(
            f"dataset {cfg['dataset']} has 2-D points, not images: only noise and mixup apply, "
            f"got augment = {cfg['augment']}"
        )
    if cfg["model"] != "mlp" and not image:
        raise ConfigError(
            f"model {cfg['model']} needs images; dataset {cfg['dataset']} has 2-D points"
        )
    if cfg["model"] == "lenet" and cfg["dataset"] not in ("mnist10k", "mnist", "fashion_mnist"):
        raise ConfigError(
            f"model lenet is LeNet-5 for 28x28 images (mnist10k, mnist, fashion_mnist), "
            f"not {cfg['dataset']}"
        )
    if cfg["model"] == "resnet" and (cfg["depth"] - 2) % 6:
        raise ConfigError(
            f"depth: a CIFAR ResNet has depth 6n + 2 (20, 32, 44, 56, 110), got {cfg['depth']}"
        )
    if cfg["warmup_epochs"] >= cfg["epochs"]:
        raise ConfigError(
            f"warmup_epochs ({cfg['warmup_epochs']}) must be less than epochs ({cfg['epochs']})"
        )


def to_toml(cfg: dict) -> str:
    """The config as TOML, one ``key = value`` line per setting with its help as a comment; the
    optimizer's hyperparameters in a table after them."""
    lines = ["# nabla run configuration: `nabla train CONFIG.toml` reproduces this run", ""]
    for key, value in cfg.items():
        if key in SCHEMA:
            lines.append(f"{key} = {_toml_value(value)}  # {SCHEMA[key].help}")
    name = cfg["optimizer"]
    cls = registry.get(name)
    lines += ["", f"[{name}]  # the hyperparameters of {cls.__module__}.{cls.__qualname__}"]
    for key, value in cfg.get(name, {}).items():
        lines.append(f"{key} = {_toml_value(value)}  # {cls.descriptions[key]}")
    return "\n".join(lines) + "\n"


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
