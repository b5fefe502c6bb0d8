"""Downloads with checksums, and the folders where datasets live.

``download(url, path, md5=...)`` streams a file into a temporary file next to ``path``, checks
it, and renames it into place, so ``path`` is either absent or complete and verified: an
interrupted or corrupt download never leaves a file that a later run would trust.

``fetch(name, files)`` finds a dataset's files, first in ``<root>/<name>/``, then in
``$NABLA_DATA/<name>/``, then in the cache ``$NABLA_CACHE/<name>/`` (default
``~/.cache/nabla/<name>/``), verifying the checksum of every file it finds, and downloads the
missing ones from the mirrors in :data:`MIRRORS` into ``<root>/<name>/`` (or the cache).
Setting ``NABLA_MIRROR=http://host/path`` makes every dataset come from
``http://host/path/<name>/<file>`` instead, which is how a local copy of the data folder (or a
test server) stands in for the internet.

Failing fast: a mirror that cannot be reached at all (no network, an unknown host, a refused or
timed-out connection) is not retried, since waiting will not bring it back; errors after the
connection is made (a stalled or cut transfer, 5xx and 429 answers) are. A dataset that is
nowhere to be found and cannot be downloaded gives one message naming the folders searched,
``NABLA_DATA`` and the command that downloads it (``nabla download NAME``).

Checksums: ``md5`` is the md5 of the file as downloaded; ``raw_md5`` the md5 of its gunzipped
content, which survives re-compression (the copies of MNIST here were re-gzipped). A file is
accepted when either matches.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..files import atomic_path

if TYPE_CHECKING:
    from typing import BinaryIO

__all__ = [
    "MIRRORS",
    "Checksum",
    "ChecksumError",
    "DownloadError",
    "cache_dir",
    "download",
    "fetch",
    "md5sum",
    "search_dirs",
    "verify",
]

# Base URLs tried in order; a file's URL is the base followed by its file name.
MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion_mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
    "cifar10": ["https://www.cs.toronto.edu/~kriz/"],
}

BACKOFF = 1.0  # seconds before the first retry; doubled before each further one
_CHUNK = 1 << 20
_RETRYABLE_HTTP = {408, 425, 429, 500, 502, 503, 504}


class DownloadError(RuntimeError):
    """A file could not be downloaded or verified; the message names the url, path and reason
    (``reason`` alone, for messages about several tries)."""

    def __init__(self, message: str, reason: str = ""):
        super().__init__(message)
        self.reason = reason or message


class ChecksumError(DownloadError):
    """A file's content does not match its published checksum."""


class Checksum(NamedTuple):
    """The published checksums of one file: ``md5`` of the file, ``raw_md5`` of it gunzipped."""

    md5: str | None = None
    raw_md5: str | None = None


def md5sum(path: str | os.PathLike[str], gunzip: bool = False) -> str:
    """The md5 hex digest of the file at ``path`` (of its decompressed content with ``gunzip``)."""
    digest = hashlib.md5(usedforsecurity=False)
    with (gzip.open if gunzip else open)(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(
    path: str | os.PathLike[str], md5: str | None = None, raw_md5: str | None = None
) -> str | None:
    """None when the file matches ``md5`` or ``raw_md5`` (or neither is given), else why not."""
    if md5 is None and raw_md5 is None:
        return None
    got = md5sum(path)
    if md5 is not None and got == md5.lower():
        return None
    expected, found = [], [f"md5 {got}"]
    if md5 is not None:
        expected.append(f"md5 {md5}")
    if raw_md5 is not None:
        try:
            got_raw = md5sum(path, gunzip=True)
        except (OSError, EOFError, zlib.error) as error:
            got_raw = f"none (not readable as gzip: {error})"
        if got_raw == raw_md5.lower():
            return None
        expected.append(f"md5 {raw_md5} of the decompressed content")
        found.append(f"decompressed md5 {got_raw}")
    return f"checksum mismatch: expected {' or '.join(expected)}, got {', '.join(found)}"


def download(
    url: str,
    path: str | os.PathLike[str],
    md5: str | None = None,
    raw_md5: str | None = None,
    retries: int = 3,
    timeout: float = 10,
    progress: bool = True,
    backoff: float | None = None,
) -> Path:
    """Download ``url`` to ``path``, verified, atomically; return ``path``.

    The bytes stream into a temporary file in ``path``'s folder (a tqdm bar on a terminal when
    ``progress``), are checked against ``md5`` / ``raw_md5`` (either may match), and the file
    is renamed into place with ``os.replace``. Errors during the transfer (timeouts, truncated
    bodies, 5xx/429 answers) are retried ``retries`` times, waiting ``backoff`` seconds (default
    :data:`BACKOFF`), then twice that, and so on; a host that cannot be reached, a 404 or a
    checksum mismatch is final. On failure the partial file is removed and
    :class:`DownloadError` names url, path and reason.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(
            f"download {url} -> {path}: cannot create the folder ({error})"
        ) from None
    bar = progress and sys.stderr is not None and sys.stderr.isatty()
    wait = BACKOFF if backoff is None else backoff
    reason = "no attempt made"
    for attempt in range(max(0, retries) + 1):
        if attempt:
            time.sleep(wait * 2 ** (attempt - 1))
        try:
            writing = atomic_path(path, suffix=".part")
        except OSError as error:
            raise DownloadError(f"download {url} -> {path}: cannot write there ({error})") from None
        try:
            with writing as temporary:  # renamed into place once verified; else removed
                with open(temporary, "wb") as out:
                    _stream(url, out, timeout, bar, path.name)
                mismatch = verify(temporary, md5, raw_md5)
                if mismatch is not None:
                    raise ChecksumError(f"download {url} -> {path}: {mismatch}")
            return path
        except urllib.error.HTTPError as error:
            reason = f"HTTP {error.code} {error.reason}"
            if error.code not in _RETRYABLE_HTTP:
                break
        except urllib.error.URLError as error:  # no connection at all: retrying will not help
            host = urllib.parse.urlsplit(url).netloc
            reason = f"URLError, cannot reach {host}: {error.reason}"
            break
        except (OSError, http.client.HTTPException, _TruncatedError) as error:
            reason = f"{type(error).__name__}: {error}"
    else:
        reason += f" (after {max(0, retries) + 1} attempts)"
    raise DownloadError(f"download {url} -> {path} failed: {reason}", reason)


_download = download  # fetch's ``download`` flag shadows the function's name


class _TruncatedError(Exception):
    """The connection closed before Content-Length bytes arrived."""


def _stream(url: str, out: BinaryIO, timeout: float, bar: bool, label: str) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "nabla"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = response.headers.get("Content-Length")
        total = int(total) if total and total.isdigit() else None
        pbar = None
        if bar:
            from tqdm import tqdm  # only needed on a terminal

            pbar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=label)
        received = 0
        try:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                if pbar is not None:
                    pbar.update(len(chunk))
        finally:
            if pbar is not None:
                pbar.close()
    if total is not None and received != total:
        raise _TruncatedError(f"received {received} of {total} bytes")


def cache_dir() -> Path:
    """Where downloads go when no root is given: ``$NABLA_CACHE`` or ``~/.cache/nabla``."""
    env = os.environ.get("NABLA_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "nabla"


def search_dirs(name: str, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The folders searched for dataset ``name``, in order: root, ``$NABLA_DATA``, the cache."""
    dirs = [] if root is None else [Path(root).expanduser() / name]
    if os.environ.get("NABLA_DATA"):
        dirs.append(Path(os.environ["NABLA_DATA"]).expanduser() / name)
    dirs.append(cache_dir() / name)
    return dirs


def _mirrors(name: str) -> list[str]:
    override = os.environ.get("NABLA_MIRROR")
    if override:
        return [override.rstrip("/") + f"/{name}/"]
    if name not in MIRRORS:
        raise DownloadError(f"fetch({name!r}): no mirrors known; add some to MIRRORS[{name!r}]")
    return MIRRORS[name]


def fetch(
    name: str,
    files: Mapping[str, Checksum | tuple[str | None, str | None] | str | None],
    root: str | os.PathLike[str] | None = None,
    download: bool = True,
    retries: int = 3,
    progress: bool = True,
) -> dict[str, Path]:
    """The verified local paths of dataset ``name``'s ``files``, downloading missing ones.

    ``files`` maps each file name to a :class:`Checksum`, an md5 string, or None (unchecked).
    Each file is taken from the first of :func:`search_dirs` holding it; a file found there
    with the wrong checksum is refused (delete it to download it again), never silently
    replaced. A missing file is downloaded from the first mirror that serves it, into
    ``<root>/<name>/`` when ``root`` is given, else into the cache.
    """
    dirs = search_dirs(name, root)
    target = dirs[0] if root is not None else dirs[-1]
    paths = {}
    for filename, checksum in files.items():
        checksum = _as_checksum(checksum)
        found = next((d / filename for d in dirs if (d / filename).is_file()), None)
        if found is not None:
            mismatch = verify(found, *checksum)
            if mismatch is not None:
                raise ChecksumError(
                    f"fetch({name!r}): {found} is corrupt or not the published file "
                    f"({mismatch}); delete it to download it again"
                )
            paths[filename] = found
            continue
        if not download:
            raise FileNotFoundError(_missing(name, filename, dirs, "download=False"))
        errors = []
        for base in _mirrors(name):
            try:
                paths[filename] = _download(
                    base + filename,
                    target / filename,
                    *checksum,
                    retries=retries,
                    progress=progress,
                )
                break
            except DownloadError as error:
                errors.append(error.reason)
        else:
            why = f"nabla could not get {filename} from any mirror ({'; '.join(errors)})"
            raise DownloadError(_missing(name, filename, dirs, why))
    return paths


def _missing(name: str, filename: str, dirs: list[Path], why: str) -> str:
    """One line: which file of which dataset is missing, where it was looked for, why it was not
    downloaded, and what to do."""
    data = os.environ.get("NABLA_DATA")
    setting = f"NABLA_DATA is {data}" if data else "NABLA_DATA is not set"
    return (
        f"dataset {name}: {filename} is in none of {', '.join(str(d) for d in dirs)} ({setting}), "
        f"and {why}. Set NABLA_DATA to a folder holding {name}/{filename}, or download the "
        f"dataset where there is a network with `nabla download {name}`"
    )


def _as_checksum(checksum: tuple[str | None, str | None] | str | None) -> Checksum:
    if checksum is None or isinstance(checksum, str):
        return Checksum(checksum)
    return Checksum(*checksum)
