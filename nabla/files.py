"""Files written atomically: a reader sees the old file or the new one, never half of one.

Every file nabla writes (checkpoints, configs, results, figures, reports, animations, downloads)
goes through :func:`atomic_path`: the writer fills a temporary file beside the target (same
folder, so same filesystem), which is fsync'd and renamed over the target (``os.replace``, atomic
on POSIX and Windows), and the folder is fsync'd so that the rename itself survives a power cut.
An exception removes the temporary file and leaves the target as it was; a killed process may
leave a hidden ``.<name>.<random>.tmp`` file behind, never a half-written file under the real name.

>>> import tempfile, pathlib
>>> target = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
>>> write_text_atomic(target, "first\\n")
>>> try:
...     with atomic_path(target) as temporary:
...         _ = temporary.write_text("second, half-way")
...         raise RuntimeError("the writer failed")
... except RuntimeError:
...     pass
>>> target.read_text(), sorted(p.name for p in target.parent.iterdir())
('first\\n', ['notes.txt'])
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path


class atomic_path:  # noqa: N801 - used as a function: ``with atomic_path(target) as temporary``
    """``with atomic_path(path) as temporary:`` gives a new, empty file beside ``path`` for the
    block to write (by name: a figure's ``savefig``, an animation writer). When the block ends
    without an exception, the file is fsync'd and renamed to ``path``; otherwise it is removed.
    ``suffix`` ends the temporary name, for writers that pick the format from it (``".gif"``).
    ``before_replace(temporary)`` runs once the file is on disk and before the rename: it may
    check the file, or raise to abandon it. The temporary file is created here, before the
    block: a folder that is missing or not writable raises ``OSError`` at the call."""

    def __init__(
        self, path, suffix: str = ".tmp", before_replace: Callable[[Path], None] | None = None
    ):
        self.target, self.before_replace = Path(path), before_replace
        self.directory = self.target.absolute().parent
        if not self.directory.is_dir():
            raise FileNotFoundError(
                f"cannot write {os.fspath(path)!r}: folder {str(self.directory)!r} does not exist"
            )
        while True:
            self.temporary = self.directory / f".{self.target.name}.{secrets.token_hex(6)}{suffix}"
            try:
                # 0o666 minus the umask: the permissions a plain open(path, "w") would give
                os.close(os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
                return
            except FileExistsError:  # pragma: no cover - a 48-bit random name collided
                continue

    def __enter__(self) -> Path:
        return self.temporary

    def __exit__(self, kind, error, traceback) -> None:
        try:
            if kind is None:
                _fsync_file(self.temporary)  # on disk before a check reads it back
                if self.before_replace is not None:
                    self.before_replace(self.temporary)
                os.replace(self.temporary, self.target)
                _fsync_directory(self.directory)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.temporary)  # after a rename it is gone: nothing to remove


def write_atomic(path, payload: bytes, before_replace: Callable[[Path], None] | None = None):
    """Write ``payload`` to ``path`` atomically (``before_replace``: see :class:`atomic_path`)."""
    with atomic_path(path, before_replace=before_replace) as temporary:
        with open(temporary, "wb") as f:
            f.write(payload)


def write_text_atomic(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_atomic(path, text.encode("utf-8"))


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _fsync_directory(directory) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on folders
        pass
    finally:
        os.close(fd)
