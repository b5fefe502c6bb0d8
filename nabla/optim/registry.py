"""Optimizers by name: the one list that ``nabla train --optimizer``, its config and flags, and the
lab's trajectory presets and colours are all read from.

An optimizer class joins by naming itself; defining it is the registration (as for schedules)::

    class Lion(Optimizer):
        name = "lion"                               # --optimizer lion, and [lion] in config.toml
        defaults = {"lr": 1e-4, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.0}
        descriptions = {"beta1": "...", ...}        # the help of each hyperparameter but lr
        presets = {"lion": Preset({}, "#8c564b")}   # what `nabla lab trajectories` runs
                                                    # (default: the name, at the defaults)

Its hyperparameters, defaults and validation are the class's own (``defaults`` and
``validate``): the config checks a setting by asking the class.

>>> from nabla import optim
>>> names()
['sgd', 'adagrad', 'rmsprop', 'adam', 'adamw']
>>> get("sgd") is optim.SGD, list(presets())[:3]
(True, ['sgd', 'momentum', 'nesterov'])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Preset", "get", "hyperparameters", "names", "owners", "presets", "register"]

_REGISTRY: dict[str, type] = {}
# a colour for presets that do not choose one (matplotlib's tab10 after the built-ins' colours)
_SPARE_COLORS = ("#8c564b", "#17becf", "#bcbd22", "#7f7f7f", "#aec7e8", "#98df8a")


@dataclass(frozen=True)
class Preset:
    """A named setting of an optimizer for the lab (``momentum`` = SGD with momentum 0.9)."""

    settings: dict[str, Any] = field(default_factory=dict)
    color: str = ""


def register(cls: type) -> None:
    """Add ``cls`` under ``cls.name``; every hyperparameter but ``lr`` needs a description."""
    name = cls.name
    if not name.replace("_", "").isalnum() or name != name.lower():
        raise TypeError(f"{cls.__name__}: name must be lowercase letters and digits, got {name!r}")
    if name in _REGISTRY and _REGISTRY[name].__qualname__ != cls.__qualname__:
        raise TypeError(f"{cls.__name__}: the name {name!r} is taken by {_REGISTRY[name]}")
    missing = set(cls.defaults) - {"lr"} - set(cls.descriptions)
    if missing or "lr" not in cls.defaults:
        what = f"descriptions of {sorted(missing)}" if missing else "a default lr"
        raise TypeError(f"{cls.__name__} (optimizer {name!r}) lacks {what}")
    _REGISTRY[name] = cls


def names() -> list[str]:
    """The registered optimizers' names, in the order they were defined."""
    return list(_REGISTRY)


def get(name: str) -> type:
    """The class registered as ``name``; a ``KeyError`` naming the registered ones."""
    if name not in _REGISTRY:
        raise KeyError(f"no optimizer {name!r}; the optimizers are: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def hyperparameters(name: str) -> dict[str, Any]:
    """Optimizer ``name``'s hyperparameters but ``lr`` (which every run sets), with defaults."""
    return {k: v for k, v in get(name).defaults.items() if k != "lr"}


def owners(key: str) -> list[str]:
    """The optimizers that have hyperparameter ``key``."""
    return [name for name in _REGISTRY if key in hyperparameters(name)]


def presets() -> dict[str, tuple[type, Preset]]:
    """Every optimizer's presets, in registration order: name -> (class, preset); a preset without
    a colour gets a spare one."""
    out, spares = {}, 0
    for cls in _REGISTRY.values():
        own = cls.__dict__.get("presets", {cls.name: Preset()})  # not inherited
        for name, preset in own.items():
            color = preset.color or _SPARE_COLORS[spares % len(_SPARE_COLORS)]
            spares += not preset.color
            out[name] = (cls, Preset(dict(preset.settings), color))
    return out
