"""Every function and method that nabla exports is fully annotated: every parameter (but self and
cls) and the return (``__init__`` aside). An editor and a type checker then see the public API
as its docstrings describe it. The Function subclasses' forward/backward are the engine's
protocol, not API, and are left out."""

from __future__ import annotations

import importlib
import inspect

import pytest

# the namespaces a user imports from; each one's __all__ (or, without one, its names that do not
# start with "_") is its public API
NAMESPACES = [
    "nabla", "nabla.models", "nabla.nn", "nabla.nn.functional", "nabla.nn.init", "nabla.optim",
    "nabla.optim.schedules", "nabla.optim.scaling", "nabla.optim.registry", "nabla.data",
    "nabla.data.transforms", "nabla.data.datasets", "nabla.train", "nabla.autograd",
]  # fmt: skip


def _unannotated(fn, bound: bool) -> list[str]:
    signature = inspect.signature(fn)
    params = list(signature.parameters.values())[1 if bound else 0 :]
    missing = [p.name for p in params if p.annotation is inspect.Parameter.empty]
    if fn.__name__ != "__init__" and signature.return_annotation is inspect.Signature.empty:
        missing.append("return")
    return missing


def _public_callables():
    seen = {}
    for namespace in NAMESPACES:
        module = importlib.import_module(namespace)
        public = getattr(module, "__all__", [n for n in dir(module) if not n.startswith("_")])
        for name in public:
            obj = getattr(module, name)
            if not getattr(obj, "__module__", "").startswith("nabla"):
                continue
            if inspect.isfunction(obj):
                seen[f"{obj.__module__}.{obj.__qualname__}"] = (obj, False)
            elif inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") and attr != "__init__":
                        continue
                    if obj.__module__.startswith("nabla.ops") and attr in ("forward", "backward"):
                        continue
                    if isinstance(member, (staticmethod, classmethod)):
                        seen[f"{obj.__module__}.{obj.__qualname__}.{attr}"] = (
                            member.__func__,
                            isinstance(member, classmethod),
                        )
                    elif inspect.isfunction(member):
                        seen[f"{obj.__module__}.{obj.__qualname__}.{attr}"] = (member, True)
    return seen


def test_the_public_api_is_fully_annotated():
    found = _public_callables()
    assert len(found) > 400  # the namespaces above were read
    missing = {
        name: gaps for name, (fn, bound) in found.items() if (gaps := _unannotated(fn, bound))
    }
    assert not missing, "annotate: " + "; ".join(
        f"{n} ({', '.join(g)})" for n, g in missing.items()
    )


@pytest.mark.parametrize("gap", ["x", "return"])
def test_the_check_sees_a_missing_annotation(gap):
    def f(x: int) -> int:
        return x

    def g(x) -> int:
        return x

    def h(x: int):
        return x

    assert _unannotated(f, bound=False) == []
    assert _unannotated(g if gap == "x" else h, bound=False) == [gap]
