"""Test-wide settings for pytest.

- The doctests of the package and of the docs run in a scratch folder of their own that is
  removed after each of them (examples that save files call ``tempfile.mkdtemp()``, as a reader
  would, and must leave nothing behind).
- A test marked ``threads`` compares the one-thread and the parallel kernels. In a forked process
  the parallel kernels are off (GNU OpenMP does not survive a fork) and the comparison would check
  nothing: with NABLA_THREAD_TESTS_FRESH=1 there the test runs in a fresh process instead. mutmut
  runs every mutant in a process forked from its own, so this lets a mutant in how the work is
  split across threads meet the tests that compare the splits; it costs a process start per
  marked test and mutant, so tools/mutation.py sets it only for the modules that need it.
- Under mutmut, torch runs on one thread in every test: a worker forked from a process whose
  OpenMP threads ran would hang in torch's first parallel loop (GNU OpenMP does not survive a
  fork either), and ``kernels.set_num_threads`` sets the BLAS threads that torch's loops use.
"""

import os
import subprocess
import sys
import tempfile

import pytest

FRESH = "NABLA_THREAD_TESTS_FRESH"


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if pyfuncitem.get_closest_marker("threads") is None:
        return None
    from nabla import kernels

    if kernels.threading_layer() != "one thread (forked)" or not os.environ.get(FRESH):
        return None  # run here, as usual
    command = [sys.executable, "-m", "pytest", "-q", "-x", "--no-header", pyfuncitem.nodeid]
    done = subprocess.run(command, cwd=pyfuncitem.config.rootpath, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"failed in a fresh process (this one was forked):\n{done.stdout[-4000:]}")
    return True


@pytest.fixture(autouse=True)
def _one_torch_thread_under_mutmut():
    mutmut = "MUTANT_UNDER_TEST" in os.environ
    if mutmut and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    yield
    if mutmut and "torch" in sys.modules:  # and so when mutmut forks its next worker
        sys.modules["torch"].set_num_threads(1)


@pytest.fixture(autouse=True)
def _doctest_scratch_folder(request):
    if not isinstance(request.node, pytest.DoctestItem):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="nabla-doctest-") as folder:
        previous, tempfile.tempdir = tempfile.tempdir, folder  # where mkdtemp() creates
        try:
            yield
        finally:
            tempfile.tempdir = previous
