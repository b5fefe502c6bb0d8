"""Compiled kernels: one pass over memory where NumPy would make many.

Each kernel (numba, compiled on first use and cached on disk) sits beside a NumPy *reference*
written as the lecture's math; the tests hold every kernel to its reference. ``import nabla``
never imports numba: :func:`kernel` loads a module of kernels the first time one is asked for.

Two switches:

* :func:`use_reference` (or ``NABLA_KERNELS=reference`` in the environment) runs the NumPy
  reference everywhere, for reading and debugging; :func:`reference` is the same as a ``with``
  block.
* :func:`set_num_threads` sets the threads of the kernels and of NumPy's BLAS together.
"""

from .runtime import (
    compiled,
    get_num_threads,
    kernel,
    reference,
    set_num_threads,
    threading_layer,
    use_reference,
)

__all__ = [
    "compiled", "get_num_threads", "kernel", "reference", "set_num_threads", "threading_layer",
    "use_reference",
]  # fmt: skip
