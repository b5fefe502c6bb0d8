"""An optimizer's state_dict: step count, hyperparameters (schedules as their configs) and the
algorithm's buffers per parameter name, and loading one back with every mismatch refused."""

from __future__ import annotations

import numpy as np


def value_at(h, step: int):
    """A hyperparameter's value at ``step``: a number, or a schedule called with the step."""
    return h(step) if callable(h) else h


def state_dict(opt) -> dict:
    groups, state = [], {}
    for i, group in enumerate(opt.param_groups):
        pack = opt._pack(i)
        settings = {k: _to_config(v) for k, v in group.items() if k != "params"}
        groups.append({**settings, "params": list(opt._names[i])})
        state.update(pack.param_state())
        state.update({n: bufs for n, bufs in opt._stash.items() if n in opt._names[i]})
    return {"iterations": opt.iterations, "param_groups": groups, "state": state}


def load_state_dict(opt, state_dict: dict) -> None:
    name = type(opt).__name__
    groups = state_dict["param_groups"]
    if len(groups) != len(opt.param_groups):
        raise ValueError(
            f"{name}.load_state_dict: {len(groups)} parameter groups saved, "
            f"{len(opt.param_groups)} here"
        )
    for i, saved in enumerate(groups):
        unknown = sorted(set(saved) - {"params"} - set(opt.defaults))
        if unknown:
            raise ValueError(
                f"{name}.load_state_dict: settings {unknown} are not {name}'s; this state_dict "
                "comes from another optimizer"
            )
        if list(saved["params"]) != opt._names[i]:
            missing = sorted(set(opt._names[i]) - set(saved["params"]))
            unexpected = sorted(set(saved["params"]) - set(opt._names[i]))
            raise ValueError(
                f"{name}.load_state_dict: group {i} has different parameters "
                f"(missing {missing}, unexpected {unexpected}, or a different order)"
            )
        shapes = {n: p.shape for n, p in zip(opt._names[i], opt.param_groups[i]["params"])}
        for param in saved["params"]:
            for key, value in state_dict["state"].get(param, {}).items():
                if key != "step" and np.shape(value) != shapes[param]:
                    raise ValueError(
                        f"{name}.load_state_dict: state {key!r} of {param} has shape "
                        f"{np.shape(value)}, the parameter {shapes[param]}"
                    )
    for i, saved in enumerate(groups):
        for key, value in saved.items():
            if key != "params":
                opt.param_groups[i][key] = _from_config(value)
        pack = opt._pack(i)
        pack.state.clear()
        saved_state = {n: state_dict["state"].get(n, {}) for n in saved["params"]}
        pack.load_param_state({n: saved_state[n] for n in pack.names})
        for param in set(saved["params"]) - set(pack.names):  # frozen here: keep in the stash
            opt._stash[param] = {k: np.array(v) for k, v in saved_state[param].items()}
    opt.iterations = int(state_dict["iterations"])
    opt.lr = value_at(opt.param_groups[0]["lr"], max(opt.iterations - 1, 0))


def _to_config(value):
    if callable(value) and hasattr(value, "get_config"):
        return {"schedule": value.get_config()}
    return value


def _from_config(value):
    if isinstance(value, dict) and "schedule" in value:
        from .schedules import from_config  # schedules import nothing from here

        return from_config(value["schedule"])
    return value
