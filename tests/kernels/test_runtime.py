"""Loading the kernels: lazily, with the thread policy of nabla/kernels/runtime.py."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import nabla as nb
from nabla import kernels, optim
from nabla.kernels import runtime


def python(code: str, **env) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter, on the compiled kernels unless ``env`` says otherwise
    (this test session itself may run on the references: NABLA_KERNELS=reference in CI)."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "NABLA_KERNELS": "compiled", **env},
    )


def test_import_nabla_does_not_import_numba():
    code = (
        "import sys, nabla as nb\n"
        "from nabla import models, optim\n"
        "opt = optim.Adam(models.mlp([4, 3]).parameters())\n"
        "print('numba' in sys.modules)\n"
        "opt.step()\n"
        "print('numba' in sys.modules)\n"
    )
    result = python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]  # loaded by the first step, not before


def test_reference_from_the_environment():
    code = (
        "from nabla import kernels; import sys; print(kernels.compiled(), 'numba' in sys.modules)"
    )
    result = python(code, NABLA_KERNELS="reference")
    assert result.stdout.split() == ["False", "False"], result.stderr


def test_openmp_waits_passively_unless_the_user_chose():
    code = (
        "import os; from nabla import kernels; kernels.compiled(); "
        "print(os.environ['OMP_WAIT_POLICY'])"
    )
    assert python(code).stdout.strip() == "PASSIVE"
    assert python(code, OMP_WAIT_POLICY="ACTIVE").stdout.strip() == "ACTIVE"


def test_openblas_threads_spin_briefly_unless_the_user_chose():
    # OpenBLAS reads the variable once, when NumPy loads it: the environment then is what counts.
    code = "import os, nabla; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert run.stdout.strip() == str(runtime.BLAS_SPIN_CYCLES_LOG2), run.stderr
    assert python(code, OPENBLAS_THREAD_TIMEOUT="28").stdout.strip() == "28"
    late = "import os, numpy, nabla; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'))"
    run = subprocess.run(
        [sys.executable, "-c", late], capture_output=True, text=True, timeout=120, env=env
    )
    assert run.stdout.strip() == "None"  # NumPy came first: OpenBLAS has read its settings


def test_thread_count_defaults_to_numba_num_threads_else_the_cores():
    """NUMBA_NUM_THREADS, numba's own variable, is the default (bench/common.py's pin_threads
    sets it for --threads); without it, the cores this process may use."""
    code = "import nabla as nb; print(nb.get_num_threads())"
    assert python(code, NUMBA_NUM_THREADS="1").stdout.strip() == "1"
    assert python(code, NUMBA_NUM_THREADS="3").stdout.strip() == "3"
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert run.stdout.strip() == str(runtime._cores), run.stderr  # the same affinity here


@pytest.mark.threads  # in a forked process: runs in a fresh one (conftest.py)
def test_large_updates_run_in_parallel_small_ones_on_one_thread():
    if kernels.threading_layer() != "omp":
        pytest.skip("numba's OpenMP layer is not available here: every kernel runs on one thread")
    pair = runtime._compile_pair("updates.adam")
    before = kernels.get_num_threads()
    try:
        kernels.set_num_threads(2)
        assert runtime.kernel("updates.adam", runtime.PARALLEL_MIN) is pair[1]
        assert runtime.kernel("updates.adam", runtime.PARALLEL_MIN - 1) is pair[0]
        # Kernels with more work per element choose their own threshold.
        assert runtime.kernel("updates.adam", 1000, parallel_min=1000) is pair[1]
        assert runtime.kernel("updates.adam", 999, parallel_min=1000) is pair[0]
        kernels.set_num_threads(1)
        assert runtime.kernel("updates.adam", 10 * runtime.PARALLEL_MIN) is pair[0]
    finally:
        kernels.set_num_threads(before)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() on this platform")
def test_a_forked_child_can_still_update():
    """GNU OpenMP does not survive fork(): the child switches to one-thread kernels."""
    w = nb.zeros(4 * runtime.PARALLEL_MIN, requires_grad=True)
    opt = optim.Adam([w], lr=0.1)
    w.grad = np.ones(w.shape, np.float32)
    opt.step()  # the parent has used its OpenMP threads
    parent = kernels.threading_layer()
    pid = os.fork()
    if pid == 0:  # the child: one more step, then report through the exit status
        try:
            opt.step()
            if parent == "omp" and kernels.threading_layer() != "one thread (forked)":
                os._exit(3)
            os._exit(0 if np.allclose(w.data, -0.2) else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
