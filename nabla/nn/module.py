"""Module and Parameter: how a model holds its weights, names them and switches modes.

A Module owns Parameters (trainable tensors), buffers (state such as BatchNorm's running mean)
and submodules. Assigning one as an attribute registers it, so ``named_parameters`` can walk the
tree and produce PyTorch's names ("0.weight", "encoder.1.bias"): a nabla ``state_dict`` has the
same keys and shapes as the equivalent PyTorch model's.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import numpy as np

from ..autograd.dtypes import as_array, as_dtype
from ..autograd.tensor import Tensor
from ..autograd.trace import Trace

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, DTypeLike

_Self = TypeVar("_Self", bound="Module")  # train() and eval() return the module itself


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable; ``requires_grad`` is True by default.

    >>> Parameter([1.0, 2.0])
    Parameter containing:
    tensor([1., 2.], requires_grad=True)
    """

    __slots__ = ()

    def __init__(self, data: Tensor | ArrayLike, requires_grad: bool = True):
        if isinstance(data, Tensor):
            array = data.data
        elif isinstance(data, np.ndarray) and data.dtype in (np.float32, np.float64):
            array = data  # an array's float dtype is kept (and its memory shared)
        else:
            array = as_array(data)
        self._init(array)
        self.requires_grad = requires_grad

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


class Module:
    """Base class of every layer and model: subclasses define ``forward``.

    >>> from nabla import nn
    >>> model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    >>> [name for name, _ in model.named_parameters()]
    ['0.weight', '0.bias']
    """

    training: bool
    _parameters: OrderedDict[str, Parameter | None]
    _buffers: OrderedDict[str, Tensor | None]
    _modules: OrderedDict[str, Module | None]

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # --- registration ----------------------------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        if name in self._buffers and (value is None or isinstance(value, Tensor)):
            self._buffers[name] = value  # a buffer stays a buffer (e.g. reset running stats)
        elif name in self._parameters and not (value is None or isinstance(value, Parameter)):
            raise TypeError(
                f"{type(self).__name__}.{name} is a parameter: assign an nn.Parameter or None, "
                f"not a {type(value).__name__} (a computed tensor would silently stop training)"
            )
        else:
            # replacing an entry of the same kind keeps its place (a Sequential's order)
            target: OrderedDict[str, Any] | None = (
                self._parameters
                if isinstance(value, Parameter)
                else self._modules
                if isinstance(value, Module)
                else None
            )
            for registry in (self._parameters, self._buffers, self._modules):
                if registry is not target:
                    registry.pop(name, None)
            if target is not None:
                target[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for registry in (self._parameters, self._buffers, self._modules):
            registry.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """Register non-trainable state saved in the state_dict (unless ``persistent=False``)."""
        object.__setattr__(self, name, tensor)
        self._buffers[name] = tensor
        if not persistent:
            self.__dict__.setdefault("_non_persistent", set()).add(name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        """Register ``param`` (or None, for an absent optional parameter such as a bias)."""
        object.__setattr__(self, name, param)
        self._parameters[name] = param

    def add_module(self, name: str, module: Module | None) -> None:
        object.__setattr__(self, name, module)
        self._modules[name] = module

    # --- calling ---------------------------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if Trace.recorder is not None:  # nabla.compile guards on every traced module's mode
            Trace.recorder.module(self)
        return self.forward(*args, **kwargs)

    # --- traversal -------------------------------------------------------------------------------

    def named_modules(
        self, prefix: str = "", remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Module]]:
        """Yield (name, module) for this module and every descendant (each once, unless
        ``remove_duplicate=False``: then a module reachable by two paths appears under both)."""
        seen = set()
        stack: list[tuple[str, Module]] = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate and id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [
                (f"{name}.{child}" if name else child, m)
                for child, m in module._modules.items()
                if m is not None
            ]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for name, module in self._modules.items():
            if module is not None:
                yield name, module

    def children(self) -> Iterator[Module]:
        for _, module in self.named_children():
            yield module

    def _named_members(self, registry: str, recurse: bool) -> Iterator[tuple[str, Any]]:
        seen = set()
        modules = self.named_modules() if recurse else [("", self)]
        for prefix, module in modules:
            for name, value in getattr(module, registry).items():
                if value is None or id(value) in seen:
                    continue
                seen.add(id(value))
                yield (f"{prefix}.{name}" if prefix else name), value

    def named_parameters(self, recurse: bool = True) -> Iterator[tuple[str, Parameter]]:
        """Yield (dotted name, Parameter), each shared parameter once."""
        return self._named_members("_parameters", recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse):
            yield p

    def named_buffers(self, recurse: bool = True) -> Iterator[tuple[str, Tensor]]:
        return self._named_members("_buffers", recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse):
            yield b

    # --- modes and gradients ---------------------------------------------------------------------

    def train(self: _Self, mode: bool = True) -> _Self:
        """Training mode (dropout active, batch statistics in BatchNorm) for the whole tree."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self: _Self) -> _Self:
        """Evaluation mode: ``train(False)``."""
        return self.train(False)

    def requires_grad_(self: _Self, requires_grad: bool = True) -> _Self:
        """Freeze (False) or unfreeze every parameter, e.g. for transfer learning."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def zero_grad(self) -> None:
        """Zero every parameter's gradient *in place*.

        Unlike PyTorch's default (``set_to_none``), existing gradient arrays are kept and filled
        with zeros, so a ``.grad`` that views an optimizer's flat buffer stays a view.
        """
        if Trace.recorder is not None:  # nabla.compile replays this call
            Trace.recorder.call(self.zero_grad)
        for p in self.parameters():
            if p.grad is not None:
                p.grad.fill(0)

    def to(self, dtype: DTypeLike) -> Module:
        """Convert floating parameters and buffers to ``dtype`` (gradients are dropped)."""
        dtype = as_dtype(dtype)
        for t in [*self.parameters(), *self.buffers()]:
            if t.data.dtype.kind == "f":
                t.data = t.data.astype(dtype)
                t.grad = t._grad_slot = None  # the optimizer's old buffers no longer fit
        return self

    def double(self) -> Module:
        return self.to("float64")

    def float(self) -> Module:
        return self.to("float32")

    # --- state -----------------------------------------------------------------------------------

    def state_dict(self) -> OrderedDict[str, Tensor]:
        """Parameters and persistent buffers by dotted name, as detached tensors sharing memory."""
        state: OrderedDict[str, Tensor] = OrderedDict()
        for prefix, module in self.named_modules(remove_duplicate=False):  # torch's keys
            skip = module.__dict__.get("_non_persistent", set())
            for registry in (module._parameters, module._buffers):
                for name, value in registry.items():
                    if value is not None and name not in skip:
                        state[f"{prefix}.{name}" if prefix else name] = value.detach()
        return state

    def load_state_dict(
        self, state_dict: Mapping[str, Tensor | ArrayLike], strict: bool = True
    ) -> IncompatibleKeys:
        """Copy values into this module's parameters and buffers (in place, cast to their dtype).

        With ``strict`` every key must match and every shape agree; otherwise one error lists all
        missing keys, unexpected keys and shape mismatches.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = []
        for key, target in own.items():
            if key in state_dict:
                value = np.asarray(getattr(state_dict[key], "data", state_dict[key]))
                if value.shape != target.shape:
                    mismatched.append(f"{key}: expected {target.shape}, got {value.shape}")
        problems = []
        if mismatched:
            problems.append("shape mismatch for " + "; ".join(mismatched))
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        if problems:
            raise ValueError(
                f"error loading state_dict into {type(self).__name__}: " + "; ".join(problems)
            )
        for key, target in own.items():
            if key in state_dict:
                value = getattr(state_dict[key], "data", state_dict[key])
                np.copyto(target.data, value, casting="unsafe")
        return IncompatibleKeys(missing, unexpected)

    # --- printing --------------------------------------------------------------------------------

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [
            f"  ({name}): " + repr(module).replace("\n", "\n  ")
            for name, module in self._modules.items()
        ]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n" + "\n".join(lines) + "\n)"
