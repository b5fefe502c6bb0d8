"""An optimizer's state_dict: step count, hyperparameters (schedules as their configs) and the
algorithm's buffers per parameter name, and loading one back with every mismatch refused.

The layout, as ``state_dict()`` writes it::

    {"iterations": 3,                                     updates made so far
     "param_groups": [{"lr": 0.01, ..., "params": ["0.weight", "0.bias", ...]}, ...],
     "state": {"0.weight": {"step": 3, "exp_avg": array, "exp_avg_sq": array}, ...}}

Loading is strict, because a state that does not fit fails silently otherwise: a buffer under a
misspelt name, or keyed by a parameter the optimizer does not have, is never read, the real
buffer stays at zero, and training continues from a cold state. :func:`problems` lists every
mismatch (unknown or missing entries, groups, parameters and buffers, wrong shapes, dtypes and
step counts, invalid settings); :func:`load_state_dict` refuses the state_dict, loading nothing,
if there is any. What is legitimately absent may be absent: a parameter without an entry (it has
not been trained yet, or was frozen throughout) and buffers before a parameter's first step.
Floating-point buffers of another precision are cast to the parameter's dtype, as PyTorch does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .optimizer import Optimizer

ENTRIES = ("iterations", "param_groups", "state")  # what every optimizer's state_dict holds
LISTED = 8  # names shown in a message before "..."


def value_at(h: Any, step: int) -> Any:
    """A hyperparameter's value at ``step``: a number, or a schedule called with the step (or a
    flag or a name: ``nesterov``, ``bias_correction``)."""
    return h(step) if callable(h) else h


def state_dict(opt: Optimizer) -> dict:
    groups, state = [], {}
    for i, group in enumerate(opt.param_groups):
        pack = opt._pack(i)
        settings = {k: _to_config(v) for k, v in group.items() if k != "params"}
        groups.append({**settings, "params": list(opt._names[i])})
        state.update(pack.param_state())
        state.update({n: bufs for n, bufs in opt._stash.items() if n in opt._names[i]})
    return {"iterations": opt.iterations, "param_groups": groups, "state": state}


def load_state_dict(opt: Optimizer, state_dict: dict) -> None:
    found = opt._state_problems(state_dict)
    if found:
        raise ValueError(
            f"{type(opt).__name__}.load_state_dict: the state_dict does not fit this optimizer "
            "(nothing was loaded):\n  - " + "\n  - ".join(found)
        )
    for i, saved in enumerate(state_dict["param_groups"]):
        for key, value in saved.items():
            if key != "params":
                opt.param_groups[i][key] = _from_config(value)
        pack = opt._pack(i)
        pack.state.clear()
        pack.fills = opt.initial_state(opt.param_groups[i])  # under the settings just loaded
        saved_state = {n: state_dict["state"].get(n, {}) for n in saved["params"]}
        pack.load_param_state({n: saved_state[n] for n in pack.names})
        for param in set(saved["params"]) - set(pack.names):  # frozen here: keep in the stash
            opt._stash[param] = {k: np.array(v) for k, v in saved_state[param].items()}
    iterations = _count(state_dict["iterations"])
    assert iterations is not None  # problems() refused anything else before a change was made
    opt.iterations = iterations
    opt.lr = value_at(opt.param_groups[0]["lr"], max(iterations - 1, 0))


# --- checking -------------------------------------------------------------------------------------


def problems(opt: Optimizer, saved: Any, entries: tuple[str, ...] = ENTRIES) -> list[str]:
    """Every way ``saved`` does not fit ``opt``, one line each; empty when it loads.

    ``entries``: the top-level entries the optimizer's state_dict has (L-BFGS adds its own).
    """
    if not isinstance(saved, Mapping):
        return [f"a state_dict is a dict, got a {type(saved).__name__}"]
    found = []
    missing = [k for k in entries if k not in saved]
    unknown = [k for k in saved if k not in entries]
    if missing:
        hint = ""
        if missing == ["iterations"]:  # state and param_groups: perhaps torch.optim's layout
            hint = " (a PyTorch state_dict has none: docs/optimizers.md shows how to convert one)"
        found.append(f"missing entries {missing}{hint}")
    if unknown:
        found.append(f"unknown entries {unknown} (an optimizer's state_dict holds {list(entries)})")
    if "param_groups" not in saved or "state" not in saved:
        return found
    if "iterations" in saved and _count(saved["iterations"]) is None:
        found.append(f"iterations must be a whole number >= 0, got {saved['iterations']!r}")
    settings = _group_problems(opt, saved["param_groups"], found)
    if settings is not None:
        _entry_problems(opt, saved, settings, found)
    return found


def _group_problems(opt, groups, found: list) -> list | None:
    """Check the saved groups; returns each group's settings as they will be after loading (the
    saved ones over the current ones), or None when the groups cannot be matched at all."""
    name = type(opt).__name__
    if not isinstance(groups, list) or not all(isinstance(g, Mapping) for g in groups):
        found.append("param_groups must be a list of dicts, one per parameter group")
        return None
    if len(groups) != len(opt.param_groups):
        found.append(f"{len(groups)} parameter groups saved, {len(opt.param_groups)} here")
        return None
    merged = []
    for i, saved in enumerate(groups):
        own = {k: v for k, v in opt.param_groups[i].items() if k != "params"}
        unknown = sorted(set(saved) - {"params"} - set(opt.defaults))
        if unknown:
            found.append(
                f"group {i}: settings {unknown} are not {name}'s; this state_dict comes from "
                "another optimizer or framework"
            )
        params = saved.get("params")
        if not isinstance(params, list):
            found.append(f"group {i} has no 'params' list (the names of its parameters)")
        elif params != opt._names[i]:
            found.append(f"group {i} has different parameters: " + _difference(params, opt, i))
        try:
            settings = {**own, **{k: _from_config(v) for k, v in saved.items() if k in own}}
            opt.validate(settings)
        except (ValueError, TypeError, KeyError) as err:
            found.append(f"group {i}: {err}")
            settings = own
        merged.append(settings)
    return merged


def _difference(params: list, opt, i: int) -> str:
    missing = [n for n in opt._names[i] if n not in params]
    unexpected = [n for n in params if n not in opt._names[i]]
    if not missing and not unexpected:
        return "the same names in a different order"
    parts = [f"missing {missing}"] if missing else []
    return "; ".join([*parts, f"unexpected {unexpected}"] if unexpected else parts)


def _entry_problems(opt, saved: Mapping, settings: list, found: list) -> None:
    """Check every parameter's entry of ``saved["state"]``: known parameter, known buffers of
    the right shape and dtype, a valid step count, and every required buffer once it stepped."""
    name = type(opt).__name__
    state = saved["state"]
    if not isinstance(state, Mapping):
        found.append(
            f"state must be a dict: parameter name -> buffers, not a {type(state).__name__}"
        )
        return
    owners = {}  # parameter name -> (its tensor, its group's settings)
    for i, group in enumerate(opt.param_groups):
        owners.update({n: (p, settings[i]) for n, p in zip(opt._names[i], group["params"])})
    strangers = [p for p in state if p not in owners]
    if strangers:
        hint = ""
        if any(isinstance(p, int) for p in strangers):  # torch.optim numbers its parameters
            hint = "; PyTorch numbers parameters, nabla names them (see docs/optimizers.md)"
        found.append(
            f"state for parameters this optimizer does not have: {_listing(strangers)} "
            f"(its parameters: {_listing(list(owners))}){hint}"
        )
    shared: dict[str, list] = {}  # a problem met in several parameters' state -> their names
    for param, entry in state.items():
        if param not in owners:
            continue
        tensor, h = owners[param]
        if not isinstance(entry, Mapping):
            found.append(
                f"state of {param} must be a dict of buffers, not a {type(entry).__name__}"
            )
            continue
        known = opt.buffers(h, saved)
        for key, value in entry.items():
            if key == "step":
                if _count(value) is None:
                    found.append(f"step of {param} must be a whole number >= 0, got {value!r}")
            elif key not in known:
                keeps = _kept(known)
                what = (
                    f"unknown buffer {key!r} ({name} keeps {keeps} with these settings; "
                    "docs/optimizers.md lists every algorithm's)"
                )
                shared.setdefault(what, []).append(param)
            else:
                _buffer_problem(param, key, value, tensor, found)
        if entry and "step" not in entry:
            found.append(f"state of {param} has buffers but no 'step' (the updates it took)")
        elif _count(entry.get("step")) or len(entry) > 1:
            # a parameter's state is empty (not trained yet) or whole: a buffer missing beside
            # the others would silently restart from its initial value
            for key, required in known.items():
                if required and key not in entry:
                    what = f"missing buffer {key!r} ({name} keeps it from the first step on)"
                    shared.setdefault(what, []).append(param)
    for what, params in shared.items():
        found.append(f"state of {_listing(params, quote=False)}: {what}")


def _buffer_problem(param: str, key: str, value, tensor, found: list) -> None:
    if not (isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "__array__")):
        found.append(f"buffer {key!r} of {param} is a {type(value).__name__}, not an array")
        return
    array = np.asarray(value)
    if array.dtype.kind != "f":
        found.append(
            f"buffer {key!r} of {param} has dtype {array.dtype}; buffers hold floating-point "
            f"numbers (the parameter's {tensor.dtype})"
        )
    elif array.shape != tensor.shape:
        found.append(
            f"buffer {key!r} of {param} has shape {array.shape}, the parameter {tensor.shape}"
        )


def _kept(known: dict) -> str:
    """'exp_avg', 'exp_avg_sq' (and possibly 'velocity'): the buffer names, optional ones last."""
    required = ", ".join(repr(k) for k, needed in known.items() if needed)
    optional = ", ".join(repr(k) for k, needed in known.items() if not needed)
    if required and optional:
        return f"{required} and possibly {optional}"
    return required or (f"possibly {optional}" if optional else "no buffers")


def _count(value) -> int | None:
    """``value`` as a whole number >= 0 (an int, a float such as PyTorch's float ``step``, or a
    0-d array of either), or None if it is not one."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        return None
    if array.shape != () or array.dtype.kind not in "iuf":
        return None
    number = array.item()
    if not math.isfinite(number) or number < 0 or number != int(number):
        return None
    return int(number)


def _listing(names: list, quote: bool = True) -> str:
    shown = [repr(n) if quote else str(n) for n in names[:LISTED]]
    more = f", ... ({len(names)} in all)" if len(names) > LISTED else ""
    return ", ".join(shown) + more


def _to_config(value):
    get_config = getattr(value, "get_config", None)
    if callable(value) and get_config is not None:
        return {"schedule": get_config()}
    return value


def _from_config(value):
    if isinstance(value, dict) and "schedule" in value:
        from .schedules import from_config  # schedules import nothing from here

        return from_config(value["schedule"])
    return value
