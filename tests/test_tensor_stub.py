"""nabla/autograd/tensor.pyi shows editors and type checkers the Tensor that nabla builds at
import time (the operations are attached by nabla/ops/methods.py): it must be what
tools/tensor_stub.py writes now."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import tensor_stub  # noqa: E402  (tools/tensor_stub.py)


def test_the_stub_is_up_to_date():
    assert tensor_stub.STUB.read_text(encoding="utf-8") == tensor_stub.render(), (
        "nabla/autograd/tensor.pyi is out of date: run `python tools/tensor_stub.py`"
    )


def test_the_stub_shows_the_bound_operations_with_their_signatures():
    stub = tensor_stub.render()
    for line in (
        "    def sum(self, axis: int | Sequence[int] | None = ..., keepdims: bool = ..., *, "
        "dim: int | Sequence[int] | None = ..., keepdim: bool | None = ...) -> Tensor: ...",
        "    def __add__(self, b: Tensor | ArrayLike) -> Tensor: ...",
        "    def T(self) -> Tensor: ...",
        "    def item(self) -> float | int | bool: ...",
        "    data: np.ndarray",
    ):
        assert line in stub.split("\n"), line
