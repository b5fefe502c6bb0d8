"""Test-wide settings for pytest: the doctests of the package and of the docs run in a scratch
folder of their own that is removed after each of them (examples that save files call
``tempfile.mkdtemp()``, as a reader would, and must leave nothing behind)."""

import tempfile

import pytest


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
