"""Reverse-mode differentiation: backpropagation over the recorded graph.

The forward pass visited the operations in a topological order (each after its inputs). Backward
visits them in the reverse order, so a node is processed only after every node that consumed its
output has sent its contribution. With u_j the nodes and L the output,

    g_L = dL/dL = 1,        g_i = sum over consumers j of u_i:  g_j * du_j/du_i,

where ``g_j * du_j/du_i`` is exactly what ``Function.backward`` computes (a vector-Jacobian
product, never the Jacobian itself). The order is found by an iterative depth-first search, so a
chain of any length works without touching Python's recursion limit. After a node has been used
its saved arrays and links are dropped (unless ``retain_graph``), which frees the graph as soon as
backward no longer needs it.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .broadcast import sum_to
from .trace import Trace

if TYPE_CHECKING:
    from .tensor import Tensor

FREED_GRAPH = (
    "trying to backward through the graph a second time (or to use a tensor computed in a "
    "graph that backward already freed); pass retain_graph=True to the first backward if you "
    "need to backpropagate through it again"
)


def backward(root, grad: Tensor | ArrayLike | None = None, retain_graph: bool = False) -> None:
    """Accumulate d(root)/d(leaf) . grad into ``leaf.grad`` for every leaf that requires grad."""
    if not root._requires_grad:
        raise RuntimeError(
            "backward() on a tensor that does not require grad: no input of the computation "
            "has requires_grad=True (or it was computed under no_grad)"
        )
    if Trace.recorder is not None:  # nabla.compile: the order is recorded before the graph is freed
        Trace.recorder.backward(root, grad)
    grad = _initial_grad(root, grad)
    if root._node is None:  # backward on a leaf: dL/dL
        _accumulate_leaf(root, grad)
        return

    pending = {root._node: grad}  # node -> gradient of its output, summed so far
    owned = set()  # nodes whose pending gradient nabla allocated, safe to add to in place
    for node in reversed(_topological_order(root._node)):
        g = pending.pop(node, None)
        if g is not None:
            _check_versions(node)
            retained = node.retained and node.retained()
            if retained is not None:
                retained.grad = g.copy() if retained.grad is None else retained.grad + g
            grads = type(node).backward(node, g)
            if type(grads) is not tuple:
                grads = (grads,)
            for tensor, needed, g_in in zip(node.inputs, node.needs_input_grad, grads):
                if not needed or g_in is None:
                    continue
                data = tensor.data
                if g_in.shape != data.shape:
                    g_in = sum_to(g_in, data.shape)
                if g_in.dtype != data.dtype:
                    g_in = g_in.astype(data.dtype)
                parent = tensor._node
                if parent is None:
                    _accumulate_leaf(tensor, g_in)
                elif parent not in pending:
                    pending[parent] = g_in
                elif parent in owned:
                    pending[parent] += g_in
                else:
                    pending[parent] = pending[parent] + g_in
                    owned.add(parent)
        if not retain_graph:
            _free(node)


def _check_versions(node) -> None:
    now = sum(t._vc[0] for t in node.inputs if hasattr(t, "_vc"))
    if node.output_vc is not None and node.output_vc[0] != node.output_version:
        raise RuntimeError(
            f"the output of {type(node).__name__} was modified in place after the operation "
            "saved it for backward, so its gradient would be wrong; compute a new tensor instead"
        )
    if now != node.versions:
        shapes = ", ".join(str(getattr(t, "shape", "constant")) for t in node.inputs)
        raise RuntimeError(
            f"an input of {type(node).__name__} (input shapes {shapes}) was modified in place "
            "after the operation used it, so its gradient would be wrong; compute a new tensor "
            "instead of writing into one that a graph still needs"
        )


def _initial_grad(root: Tensor, grad: Tensor | ArrayLike | None) -> np.ndarray:
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward() without a gradient needs a one-element tensor, got shape "
                f"{root.data.shape}; pass grad= (dL/d this tensor) of that shape"
            )
        return np.ones_like(root.data)
    grad = np.asarray(grad, dtype=root.data.dtype)  # a Tensor converts through __array__
    if grad.shape != root.data.shape:
        raise ValueError(
            f"backward(): gradient of shape {grad.shape} for a tensor of shape {root.data.shape}"
        )
    return grad


def _accumulate_leaf(tensor: Tensor, g: np.ndarray) -> None:
    if tensor.grad is None:
        slot = getattr(tensor, "_grad_slot", None)
        data = tensor.data
        if slot is not None and slot.shape == data.shape and slot.dtype == data.dtype:
            # the first gradient goes straight into the optimizer's flat buffer
            if g is not slot:  # (an op may have written it there already: see grad_slot)
                np.copyto(slot, g)
            tensor.grad = slot
        else:
            # Copy: an op may hand the same array to several inputs, and .grad is updated in place.
            # (g already has the leaf's dtype: both callers cast it.)
            tensor.grad = np.array(g)
    else:
        tensor.grad += g  # in place, so a .grad that views an optimizer's flat buffer stays one


def grad_slot(tensor: Tensor, shape: tuple[int, ...], dtype: DTypeLike) -> np.ndarray | None:
    """Where an op may write ``tensor``'s gradient directly (``np.matmul(..., out=slot)``) and
    return the slot itself: the optimizer's flat-buffer view, when ``tensor`` is a leaf whose
    ``.grad`` was set to None by ``zero_grad``, so that this gradient is its first. Else None."""
    slot = getattr(tensor, "_grad_slot", None)
    if slot is None or tensor.grad is not None or tensor._node is not None:
        return None
    return slot if slot.shape == shape and slot.dtype == dtype else None


def _topological_order(root) -> list:
    """Nodes reachable from ``root``, each placed after all of its predecessors (its inputs)."""
    order = []
    visited = set()
    stack = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)  # every input was expanded, hence placed, before this
            continue
        if node in visited:
            continue
        visited.add(node)
        inputs = node.inputs
        if inputs is None:
            raise RuntimeError(FREED_GRAPH)
        stack.append((node, True))
        for tensor, needed in zip(inputs, node.needs_input_grad):
            parent = tensor._node if needed else None
            if parent is not None and parent not in visited:
                stack.append((parent, False))
    return order


def _free(node) -> None:
    # Dropping the instance dict releases saved arrays and input links; ``inputs`` then reads
    # the class default None, which marks the node as freed.
    node.__dict__.clear()


def retain(tensor) -> None:
    """Ask backward to store the gradient of the non-leaf ``tensor`` in its ``.grad``."""
    tensor._node.retained = weakref.ref(tensor)
