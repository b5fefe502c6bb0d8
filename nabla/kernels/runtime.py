"""Loading the compiled kernels: numba on first use, the thread policy, the reference switch.

**Threads.** On a 2-core machine the training step's matrix products (OpenBLAS) and the kernels
take turns on the same cores, many times per step. Measured on the MNIST MLP (docs/benchmarks.md):
numba's default OpenMP threads spin-wait after every kernel and made the step 3.5 to 8x *slower*;
its ``workqueue`` layer was slower than one thread. With OpenMP told to sleep at once
(``OMP_WAIT_POLICY=PASSIVE``, set here unless the environment already chose a policy) a parallel
kernel costs the step nothing and halves a million-parameter update. So: OpenMP with passive
waiting, parallel only for buffers of at least :data:`PARALLEL_MIN` elements (below that, waking
the threads costs more than the work, measured inside the training step), and one thread where
OpenMP is not available.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

#: Elements below which a kernel runs on the calling thread alone. Measured in the MNIST MLP's
#: training loop (269k parameters, right after the backward pass's matrix products): the Adam
#: update took 0.14 ms on one thread against 0.20 ms on two at batch 64 (0.26 against 0.38 at
#: 512), although alone two threads are faster; at a million parameters two threads halve it.
PARALLEL_MIN = 1 << 19

#: How long OpenBLAS's threads spin after a matrix product before they sleep: 2^20 cycles (about
#: 0.3 ms), against OpenBLAS's default of 2^28 (about 0.1 s). A thread spinning that long holds a
#: core that the compiled kernels between two products need: the ResNet-20 training step took
#: 232-278 ms at 2 threads with the default and 166-193 ms with a short spin, while 2^20 still
#: covers the gap between the MLP's back-to-back products (its step is as fast as with the
#: default; sleeping at once, 2^4, made it 12% slower). Measured in docs/benchmarks.md's machine.
BLAS_SPIN_CYCLES_LOG2 = 20


def _shorten_blas_spin() -> None:
    """Set ``OPENBLAS_THREAD_TIMEOUT`` (see BLAS_SPIN_CYCLES_LOG2) unless the environment chose a
    value. OpenBLAS reads it once, when NumPy loads: ``import nabla`` before NumPy to have it (the
    ``nabla`` command does), or set it in the environment."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", str(BLAS_SPIN_CYCLES_LOG2))


_shorten_blas_spin()  # runs when nabla is imported, before nabla imports NumPy
_reference = os.environ.get("NABLA_KERNELS", "compiled").strip().lower() in ("reference", "numpy")
_numba = None  # the numba module, once loaded
_parallel = False  # whether parallel variants are used (OpenMP available, not in a forked child)
_forked = False  # a child forked from a process with OpenMP: parallel variants turned off
_cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
# set_num_threads's default: numba's own variable, else the cores (see its docstring)
_threads = max(1, int(os.environ.get("NUMBA_NUM_THREADS") or _cores or 1))
_pairs: dict[str, tuple] = {}  # "module.function" -> (one-thread kernel, parallel kernel)
_lock = threading.Lock()


def compiled() -> bool:
    """Whether updates run compiled kernels (True) or the NumPy references (False)."""
    return not _reference and _load_numba() is not None


def use_reference(flag: bool = True) -> None:
    """Run the NumPy references instead of the compiled kernels (``flag=False`` switches back).
    The results agree (tests/kernels); the reference is the code to read and to step through."""
    global _reference
    _reference = bool(flag)


@contextlib.contextmanager
def reference(flag: bool = True) -> Iterator[None]:
    """``with nabla.kernels.reference(): ...`` runs the block on the NumPy references
    (``reference(False)``: on the compiled kernels)."""
    previous = _reference
    use_reference(flag)
    try:
        yield
    finally:
        use_reference(previous)


def set_num_threads(n: int) -> None:
    """Threads for the compiled kernels and for NumPy's BLAS, together. Every element of an
    update is independent, so results do not depend on it.

    The default, before any call, is ``NUMBA_NUM_THREADS`` when the environment sets it (numba's
    own variable, which also sizes numba's thread pool: set it before ``import nabla``), else
    the cores this process may use. The default leaves BLAS to its own variables
    (``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``)."""
    global _threads
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: need an integer >= 1, got {n!r}")
    _threads = n
    from threadpoolctl import threadpool_limits  # a small pure-Python dependency

    threadpool_limits(limits=n, user_api="blas")  # stays in force: the object is not a context here


def get_num_threads() -> int:
    """The threads the compiled kernels use (see :func:`set_num_threads`)."""
    return _threads


def threading_layer() -> str:
    """How kernels run: ``"omp"`` (parallel above PARALLEL_MIN elements), ``"one thread"``, or
    ``"one thread (forked)"`` in a child forked from a process that had OpenMP."""
    _load_numba()
    return "omp" if _parallel else "one thread (forked)" if _forked else "one thread"


def kernel(name: str, size: int, parallel_min: int = PARALLEL_MIN) -> Callable[..., Any]:
    """The compiled kernel ``name`` ("module.function" in this package) for a buffer of ``size``
    elements: the parallel variant from ``parallel_min`` elements on (kernels that do more work
    per element than an update, such as resampling an image, pass a lower threshold), else the
    one-thread variant."""
    pair = _pairs.get(name) or _compile_pair(name)
    if _parallel and _threads > 1 and size >= parallel_min:
        if _numba.get_num_threads() != min(_threads, _numba.config.NUMBA_NUM_THREADS):
            _numba.set_num_threads(min(_threads, _numba.config.NUMBA_NUM_THREADS))  # per thread
        return pair[1]
    return pair[0]


def _load_numba():
    global _numba, _parallel
    if _numba is not None:
        return _numba
    with _lock:
        if _numba is not None:
            return _numba
        if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # read when libgomp loads (module docstring)
        try:
            import numba
        except ImportError as err:  # a broken install: keep training, on the references
            warnings.warn(
                f"numba could not be imported ({err}); nabla runs its NumPy references instead "
                "of the compiled kernels (pip install numba)",
                RuntimeWarning,
                stacklevel=3,
            )
            use_reference(True)
            return None
        _parallel = _openmp_available(numba)
        if _parallel:
            os.register_at_fork(after_in_child=_one_thread_after_fork)
        _numba = numba
        return numba


def _openmp_available(numba) -> bool:
    chosen = os.environ.get("NUMBA_THREADING_LAYER")
    if chosen:  # the user picked a layer: respect it
        return chosen != "workqueue"
    try:
        importlib.import_module("numba.np.ufunc.omppool")
    except ImportError:
        return False
    numba.config.THREADING_LAYER = "omp"
    return True


def _one_thread_after_fork() -> None:
    # GNU OpenMP does not survive fork(): a forked child that launched a parallel kernel would be
    # terminated (or hang, if the parent's OpenMP threads were torch's). One-thread kernels never
    # touch OpenMP.
    global _parallel, _forked
    _parallel, _forked = False, True


def _compile_pair(name: str) -> tuple:
    """Compile ``name`` twice: one-thread and parallel (prange), both cached on disk. Each gets
    its own qualified name, so that numba's cache keeps the two apart."""
    numba = _load_numba()
    module_name, function_name = name.rsplit(".", 1)
    source = getattr(importlib.import_module(f"{__package__}.{module_name}"), function_name)
    pair = []
    for suffix, parallel in (("serial", False), ("parallel", True)):
        fn = types.FunctionType(source.__code__, source.__globals__, f"{function_name}_{suffix}")
        fn.__qualname__, fn.__module__ = f"{source.__qualname__}_{suffix}", source.__module__
        fn.__defaults__ = source.__defaults__
        options = {"cache": True, "nogil": True, "error_model": "numpy", "boundscheck": False}
        pair.append(numba.njit(parallel=parallel, **options)(fn))
    _pairs[name] = pair = tuple(pair)
    return pair
