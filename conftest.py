"""Test-wide settings for pytest.

- The doctests of the package and of the docs run in a scratch folder of their own that is
  removed after each of them (examples that save files call ``tempfile.mkdtemp()``, as a reader
  would, and must leave nothing behind).
- A test marked ``threads`` compares the one-thread and the parallel kernels. In a forked process
  the parallel kernels are off (GNU OpenMP does not survive a fork) and the comparison would check
  nothing: there the test runs in a fresh process instead. mutmut runs every mutant in a process
  forked from its own (tools/mutation.py), so this is what lets a mutant in how the work is split
  across threads meet the tests that compare the splits.
"""

import subprocess
import sys
import tempfile

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if pyfuncitem.get_closest_marker("threads") is None:
        return None
    from nabla import kernels

    if kernels.threading_layer() != "one thread (forked)":
        return None  # run here, as usual
    command = [sys.executable, "-m", "pytest", "-q", "-x", "--no-header", pyfuncitem.nodeid]
    done = subprocess.run(command, cwd=pyfuncitem.config.rootpath, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"failed in a fresh process (this one was forked):\n{done.stdout[-4000:]}")
    return True


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
