"""The ReLU backward kernel against its NumPy reference, g * (out > 0), bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

import nabla as nb
from nabla import kernels
from nabla.kernels import runtime


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("size", [1, 1001, runtime.PARALLEL_MIN + 7])
def test_relu_backward_kernel_equals_reference(size, dtype):
    rng = np.random.default_rng(0)
    g = rng.standard_normal(size).astype(dtype)
    out = np.maximum(rng.standard_normal(size), 0).astype(dtype)
    g[::17] = np.nan
    out[::13] = np.nan
    result = np.empty_like(g)
    kernels.kernel("activations.relu_backward", size)(g, out, result)
    reference = g * (out > 0)
    np.testing.assert_array_equal(result, reference)
    np.testing.assert_array_equal(np.signbit(result), np.signbit(reference))  # -0 where g < 0


@pytest.mark.parametrize("contiguous", [True, False])
def test_relu_gradient_same_on_both_paths(contiguous):
    rng = np.random.default_rng(1)
    data = rng.standard_normal((6, 8)).astype(np.float32)
    grads, inputs = [], data if contiguous else data.T
    assert inputs.flags.c_contiguous == contiguous
    for compiled in (True, False):
        with kernels.reference(not compiled):
            x = nb.from_numpy(inputs)  # shares memory: data.T stays non-contiguous
            x.requires_grad = True
            (x.relu() * nb.tensor(np.arange(48.0).reshape(x.shape))).sum().backward()
            grads.append(x.grad)
    np.testing.assert_array_equal(grads[0], grads[1])
    np.testing.assert_array_equal(grads[0], np.arange(48.0).reshape(inputs.shape) * (inputs > 0))


@pytest.mark.threads  # in a forked process: runs in a fresh one (conftest.py)
def test_relu_grad_of_a_large_gradient_on_two_threads_equals_the_reference():
    """Large enough for the parallel variant: relu_grad passes the buffer's size to pick it."""
    from nabla.ops.activations import relu_grad

    rng = np.random.default_rng(2)
    g = rng.standard_normal((runtime.PARALLEL_MIN // 64 + 1, 64)).astype(np.float32)
    out = np.maximum(rng.standard_normal(g.shape), 0).astype(np.float32)
    before = kernels.get_num_threads()
    try:
        kernels.set_num_threads(2)
        result = relu_grad(g, out)
    finally:
        kernels.set_num_threads(before)
    np.testing.assert_array_equal(result, g * (out > 0))


@pytest.mark.parametrize("relu", [True, False], ids=["bias+relu", "bias"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (600, 300)])  # the last one runs in parallel
def test_bias_relu_kernel_equals_numpy_bit_for_bit(shape, dtype, relu):
    """y += b; np.maximum(y, 0, out=y), as eager's Linear / LinearReLU: NaN kept, -0 -> +0."""
    rng = np.random.default_rng(0)
    y = rng.standard_normal(shape).astype(dtype)
    bias = rng.standard_normal(shape[1]).astype(dtype)
    y.flat[::11] = np.nan
    if shape[1] > 2:
        y[0, 1], y[0, 2], bias[2] = -bias[1], -0.0, -0.0  # sums of exactly 0 and of -0
    reference = y.copy()
    reference += bias
    if relu:
        np.maximum(reference, 0, out=reference)
    kernels.kernel("activations.bias_relu", y.size)(y, bias, relu)
    assert np.array_equal(y.view(f"u{y.itemsize}"), reference.view(f"u{y.itemsize}"))
