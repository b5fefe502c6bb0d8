"""Lowerings: operations rewritten as NumPy calls into preallocated buffers.

A lowering states, for one operation, the same arithmetic as its ``forward`` and ``backward``
(the same NumPy functions in the same order, so the numbers are bit for bit those of eager
mode), with every result written into a buffer the plan owns (``out=``). An operation without a
lowering still runs in a plan, through its own code (see :mod:`nabla.jit.builder`); a
lowering only removes its allocations and its Python overhead. To add one: write a class with
``forward() -> buffer`` and ``backward(g)``, and register it in ``LOWERINGS`` (a function that
returns None where the lowering does not apply: the plan then runs the operation's own code).
"""

from __future__ import annotations

import numpy as np

from .. import kernels, random
from ..nn.layers import _DropoutFunction
from ..ops.activations import dense, relu_grad
from ..ops.linalg import Linear, LinearReLU
from ..ops.losses import CrossEntropy, kernel_applies
from .elementwise import LOWERINGS as ELEMENTWISE
from .recorder import OpEvent, Value


def relu_grad_into(g, out, result, mask, ones):
    """``nabla.ops.activations.relu_grad`` written into ``result``: g where out > 0, else 0
    (the compiled kernel where eager uses it, else ``g * (out > 0)``, the mask cast to ``ones``
    by a copy: a ufunc that casts would allocate a buffer). A ``g`` that is not C-contiguous
    takes eager's own function, whose result has g's layout (later sums depend on it)."""
    if not g.flags.c_contiguous:
        return relu_grad(g, out)
    if g.dtype == out.dtype and g.strides == out.strides == result.strides and kernels.compiled():
        flat_g = dense(g)
        if flat_g is not None:
            kernels.kernel("activations.relu_backward", g.size)(flat_g, dense(out), dense(result))
            return result
    np.greater(out, 0, out=mask)
    np.copyto(ones, mask)
    return np.multiply(g, ones, out=result)


def add_bias(y, bias, relu: bool, tile) -> None:
    """``y += bias`` and, when ``relu``, ``np.maximum(y, 0, out=y)``, as eager's Linear and
    LinearReLU: one compiled pass when the kernels are on; else through ``tile`` (a buffer of
    y's shape), because NumPy allocates a buffer for a broadcasting ufunc and not for a copy."""
    if tile is None:
        kernels.kernel("activations.bias_relu", y.size)(y, bias, relu)
        return
    np.copyto(tile, bias)
    np.add(y, tile, out=y)
    if relu:
        np.maximum(y, 0, out=y)


def check_targets(target, classes: int) -> None:
    """The check eager ``cross_entropy`` makes before it indexes (an index out of range would
    otherwise wrap around, or read past the buffer)."""
    if target.size and (target.min() < 0 or target.max() >= classes):
        bad = target[(target < 0) | (target >= classes)].flat[0]
        raise IndexError(f"cross_entropy: target class {bad} is out of range for {classes} classes")


class LinearLowering:
    """y = x W^T + b [relu]:  forward one matmul into y, the bias and the rectifier in place;
    backward G (masked by relu'), dL/dx = G W, dL/dW = G^T x, dL/db = sum over rows of G."""

    def __init__(self, b, event: OpEvent, relu: bool):
        self.b, self.event, self.relu = b, event, relu

    def forward(self) -> str:
        b, e = self.b, self.event
        x, w = b.expr[e.inputs[0]], b.expr[e.inputs[1]]
        bias = e.inputs[2]
        self.y = y = b.buffer(e.out.shape, e.out.dtype)
        lines = [f"np.matmul({x}, {w}.T, out={y})"]
        writes = {y}
        if bias is not None:
            tile = "None" if b.kernels else b.buffer(e.out.shape, e.out.dtype)
            writes.add(tile)
            b.bind("add_bias", add_bias)
            lines.append(f"add_bias({y}, {b.expr[bias]}, {self.relu}, {tile})")
        elif self.relu:
            lines.append(f"np.maximum({y}, 0, out={y})")
        reads = b.reads_of(x, w, *([b.expr[bias]] if bias is not None else []))
        b.emit("forward", type_name(e), lines, reads, writes)
        return y

    def backward(self, g: str) -> None:
        b, e = self.b, self.event
        xv, wv, bv = e.inputs[:3]
        x, w = b.expr[xv], b.expr[wv]
        need_x, need_w, need_b = e.needs[:3]
        if self.relu:  # G * relu'(y), y being this op's own output
            masked = b.buffer(e.out.shape, e.out.dtype)
            mask = b.buffer(e.out.shape, np.bool_)
            ones = b.buffer(e.out.shape, e.out.dtype)
            b.bind("relu_grad_into", relu_grad_into)
            b.emit(
                "backward",
                f"{type_name(e)} backward: relu'",
                [f"gm = relu_grad_into({g}, {self.y}, {masked}, {mask}, {ones})"],
                b.reads_of(g, self.y),
                {masked, mask, ones},
            )
            b.aliases["gm"] = b.reads_of(masked, g)
            g = "gm"
        if need_x:
            gx = b.buffer(xv.shape, xv.dtype)
            b.emit(
                "backward",
                "dL/dx = G W",
                [f"np.matmul({g}, {w}, out={gx})"],
                b.reads_of(g, w),
                {gx},
            )
            b.contribute(xv, gx)
        if need_w:
            b.leaf_product(
                wv,
                lambda out: f"np.matmul({g}.T, {x}{_out(out)})",
                b.reads_of(g, x),
                "dL/dW = G^T x",
            )
        if need_b:
            b.leaf_product(
                bv,
                lambda out: f"np.add.reduce({g}, axis=0{_out(out)})",
                b.reads_of(g),
                "dL/db = sum of G",
            )


def lower_linear(b, event: OpEvent, relu: bool = False):
    x, w, bias = event.inputs[:3]
    _need_x, need_w, need_b = event.needs[:3]
    if not (isinstance(x, Value) and isinstance(w, Value) and len(x.shape) == 2):
        return None
    if (need_w and w.kind != "external") or (bias is not None and not isinstance(bias, Value)):
        return None
    if need_b and bias.kind != "external":
        return None
    dtypes = {x.dtype, w.dtype, event.out.dtype} | ({bias.dtype} if bias is not None else set())
    if len(dtypes) != 1 or event.out.dtype.kind != "f":
        return None
    return LinearLowering(b, event, relu)


class CrossEntropyLowering:
    """Mean (or summed) cross-entropy over class-index targets of 2-D logits:

    log p = z - max z - log sum exp(z - max z),   loss_i = -log p[i, t_i],
    dL/dz = (p - onehot(t)) * g / N   (with smoothing eps: q = (1 - eps) onehot + eps / C)."""

    def __init__(self, b, event: OpEvent):
        self.b, self.event = b, event
        logits, target, reduction, _ = event.inputs
        # eager's choice, so the same numbers (the plan's kernels guard keeps it true)
        self.kernel = kernel_applies(
            logits.shape, logits.dtype, logits.contiguous, target.dtype, reduction
        )

    def _forward_kernel(self, z, t, n, c, reduction, smoothing) -> str:
        b, dt = self.b, self.event.inputs[0].dtype
        self.log_p, loss, out = b.buffer((n, c), dt), b.buffer((n,), dt), b.buffer((), dt)
        b.bind("check_targets", check_targets)
        forward = b.bind(
            f"ce_forward{self.event.index}", kernels.kernel("losses.cross_entropy_forward", n * c)
        )
        keep, eps = b.literal(dt.type(1 - smoothing)), b.literal(dt.type(smoothing))
        total = f"np.add.reduce({loss})" + (f" / {n}" if reduction == "mean" else "")
        lines = [
            f"check_targets({t}, {c})",
            f"{forward}({z}, {t}, {keep}, {eps}, {self.log_p}, {loss})",
            f"{out}[()] = {total}",
        ]
        b.emit("forward", "CrossEntropy", lines, b.reads_of(z, t), {self.log_p, loss, out})
        return out

    def _backward_kernel(self, g: str, n: int, c: int, reduction, smoothing) -> None:
        b, e = self.b, self.event
        logits, target = e.inputs[:2]
        dt = logits.dtype
        grad = b.buffer((n, c), dt)
        backward = b.bind(
            f"ce_backward{e.index}", kernels.kernel("losses.cross_entropy_backward", n * c)
        )
        hit, spread = b.literal(dt.type(1 - smoothing)), b.literal(dt.type(smoothing / c))
        scale = f"{g} / {n}" if reduction == "mean" else g
        t = b.expr[target]
        cast = b.bind(f"F{dt.name}", dt.type)  # g / N as eager's scalar of the logits' dtype
        lines = [f"{backward}({self.log_p}, {t}, {hit}, {spread}, {cast}({scale}), {grad})"]
        reads = b.reads_of(g, self.log_p, t)
        b.emit("backward", "CrossEntropy backward: (p - q) g", lines, reads, {grad})
        b.contribute(logits, grad)

    def forward(self) -> str:
        b, e = self.b, self.event
        logits, target, reduction, smoothing = e.inputs
        z, t = b.expr[logits], b.expr[target]
        n, c = logits.shape
        dt = logits.dtype
        if self.kernel:
            return self._forward_kernel(z, t, n, c, reduction, smoothing)
        mx, s = b.buffer((n, 1), dt), b.buffer((n, 1), dt)
        shifted, expd = b.buffer((n, c), dt), b.buffer((n, c), dt)
        self.log_p, self.index = b.buffer((n, c), dt), b.buffer((n,), np.intp)
        loss, out = b.buffer((n,), dt), b.buffer((), dt)
        rows = b.bind(f"ROWS{e.index}", np.arange(n, dtype=np.intp) * c)
        b.bind("check_targets", check_targets)
        tile = b.buffer((n, c), dt)  # the row statistics spread out: see add_bias
        lines = [
            f"check_targets({t}, {c})",
            f"np.maximum.reduce({z}, axis=1, keepdims=True, out={mx})",
            f"np.copyto({tile}, {mx})",
            f"np.subtract({z}, {tile}, out={shifted})",
            f"np.exp({shifted}, out={expd})",
            f"np.add.reduce({expd}, axis=1, keepdims=True, out={s})",
            f"np.log({s}, out={s})",
            f"np.copyto({tile}, {s})",
            f"np.subtract({shifted}, {tile}, out={self.log_p})",
            f"np.add({rows}, {t}, out={self.index})",
            f'np.take({self.log_p}.reshape(-1), {self.index}, out={loss}, mode="clip")',
            f"np.negative({loss}, out={loss})",
        ]
        writes = {mx, s, tile, shifted, expd, self.log_p, self.index, loss, out}
        if smoothing:  # (1 - eps) loss - eps mean_c log p
            mean = b.buffer((n,), dt)
            writes.add(mean)
            lines += [
                f"np.multiply({loss}, {1 - smoothing!r}, out={loss})",
                f"np.mean({self.log_p}, axis=1, out={mean})",
                f"np.multiply({mean}, {smoothing!r}, out={mean})",
                f"np.subtract({loss}, {mean}, out={loss})",
            ]
        total = f"np.add.reduce({loss})" + (f" / {n}" if reduction == "mean" else "")
        lines.append(f"{out}[()] = {total}")
        b.emit("forward", "CrossEntropy", lines, b.reads_of(z, t), writes)
        return out

    def backward(self, g: str) -> None:
        b, e = self.b, self.event
        logits, _, reduction, smoothing = e.inputs
        n, c = logits.shape
        if self.kernel:
            return self._backward_kernel(g, n, c, reduction, smoothing)
        grad, picked = b.buffer((n, c), logits.dtype), b.buffer((n,), logits.dtype)
        lines = [
            f"np.exp({self.log_p}, out={grad})",
            f'np.take({grad}.reshape(-1), {self.index}, out={picked}, mode="clip")',
            f"np.subtract({picked}, {1 - smoothing!r}, out={picked})",
            f'np.put({grad}.reshape(-1), {self.index}, {picked}, mode="clip")',
        ]
        if smoothing:
            lines.append(f"np.subtract({grad}, {smoothing / c!r}, out={grad})")
        scale = f"{g} / {n}" if reduction == "mean" else g
        lines.append(f"np.multiply({grad}, {scale}, out={grad})")
        reads = b.reads_of(g, self.log_p, self.index)
        b.emit("backward", "CrossEntropy backward: (p - q) g", lines, reads, {grad, picked})
        b.contribute(logits, grad)


def lower_cross_entropy(b, event: OpEvent):
    logits, target, reduction, _smoothing = event.inputs
    if not (isinstance(logits, Value) and isinstance(target, Value)):
        return None
    if len(logits.shape) != 2 or target.dtype.kind not in "iu" or reduction not in ("mean", "sum"):
        return None
    if logits.dtype.kind != "f" or logits.shape[0] == 0 or not logits.contiguous:
        return None
    return CrossEntropyLowering(b, event)


class DropoutLowering:
    """y = x * mask, mask = (u >= p) / (1 - p) with u uniform in [0, 1) drawn fresh at every
    replay from the same generator as eager (float32 draws, as eager's)."""

    def __init__(self, b, event: OpEvent):
        self.b, self.event = b, event

    def forward(self) -> str:
        b, e = self.b, self.event
        xv, p, generator = e.inputs
        x = b.expr[xv]
        u = b.buffer(xv.shape, np.float32)
        keep = b.buffer(xv.shape, np.bool_)
        self.mask, y = b.buffer(xv.shape, xv.dtype), b.buffer(xv.shape, xv.dtype)
        scale = b.bind(f"SCALE{e.index}", xv.dtype.type(1.0 / (1.0 - p)))
        gen = b.bind(f"GEN{e.index}", generator)
        b.bind("resolve", random.resolve)
        lines = [
            f"resolve({gen}).random({xv.shape}, dtype=np.float32, out={u})",
            f"np.greater_equal({u}, {p!r}, out={keep})",
            f"np.copyto({self.mask}, {keep})",  # keep.astype(x.dtype) * scale, as eager
            f"np.multiply({self.mask}, {scale}, out={self.mask})",
            f"np.multiply({x}, {self.mask}, out={y})",
        ]
        b.emit("forward", "Dropout", lines, b.reads_of(x), {u, keep, self.mask, y})
        return y

    def backward(self, g: str) -> None:
        b, e = self.b, self.event
        xv = e.inputs[0]
        gx = b.buffer(xv.shape, xv.dtype)
        lines = [  # a g of another layout: eager's product, whose result has g's layout
            f"gd = np.multiply({g}, {self.mask}, out={gx}) if {g}.flags.c_contiguous "
            f"else {g} * {self.mask}"
        ]
        b.emit("backward", "Dropout backward: G * mask", lines, b.reads_of(g, self.mask), {gx})
        b.aliases["gd"] = b.reads_of(gx, g)
        b.contribute(xv, "gd")


def lower_dropout(b, event: OpEvent):
    x, p, _ = event.inputs
    if not isinstance(x, Value) or x.dtype.kind != "f" or not 0.0 <= p < 1.0 or not x.contiguous:
        return None
    return DropoutLowering(b, event)


def _out(buffer) -> str:
    return "" if buffer is None else f", out={buffer}"


def type_name(event: OpEvent) -> str:
    return event.cls.__name__


LOWERINGS = {
    Linear: lower_linear,
    LinearReLU: lambda b, e: lower_linear(b, e, relu=True),
    CrossEntropy: lower_cross_entropy,
    _DropoutFunction: lower_dropout,
}
LOWERINGS.update(ELEMENTWISE)
