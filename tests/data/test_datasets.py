"""Dataset loaders, IDX and CIFAR-10 readers, downloads and the data folder search.

Real data: the MNIST test split in ``$NABLA_DATA`` (default ``../shared/data`` next to the
repository). Everything else runs on small files the tests write, served by a local HTTP
server on 127.0.0.1: no test touches the internet or the user's cache.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import sys
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest

from nabla.data import cifar, datasets, download, idx
from nabla.data.download import Checksum, ChecksumError, DownloadError, fetch
from nabla.data.idx import DataFormatError

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("NABLA_DATA") or REPO.parent / "shared" / "data")
MNIST_DIR = SHARED / "mnist"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No test sees the user's data, cache or mirrors; retries wait a millisecond."""
    for var in ("NABLA_DATA", "NABLA_MIRROR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NABLA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(download, "BACKOFF", 0.001)


def shared_data(monkeypatch) -> Path:
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"the real MNIST test split is not at {MNIST_DIR} (set NABLA_DATA)")
    monkeypatch.setenv("NABLA_DATA", str(SHARED))
    return SHARED


# --- a local HTTP server -----------------------------------------------------------------------


class Server:
    """Serves ``files[path] = bytes`` or ``= int`` (an HTTP error status); counts requests."""

    def __init__(self):
        self.files: dict[str, bytes | int] = {}
        self.requests: list[str] = []
        self.truncate: set[str] = set()  # paths whose body stops halfway
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                body = server.files.get(self.path, 404)
                if isinstance(body, int):
                    self.send_error(body)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                half = self.path in server.truncate
                self.wfile.write(body[: len(body) // 2] if half else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- real MNIST ---------------------------------------------------------------------------------


def test_mnist_test_split_from_nabla_data(monkeypatch):
    shared_data(monkeypatch)
    test = datasets.mnist(split="test", download=False)
    assert test.x.shape == (10000, 1, 28, 28) and test.x.dtype == np.float32
    assert test.y.dtype == np.int64 and test.name == "MNIST test"
    assert test.x.min() == 0.0 and test.x.max() == 1.0
    assert np.bincount(test.y).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert test.y[:5].tolist() == [7, 2, 1, 0, 4]


def test_mnist10k_is_a_stratified_seeded_partition(monkeypatch):
    shared_data(monkeypatch)
    full = datasets.mnist("test", download=False)
    parts = datasets.mnist10k(seed=0, download=False)
    assert [len(p) for p in parts] == [7000, 1000, 2000]
    assert [p.name for p in parts] == ["MNIST-10k train", "MNIST-10k dev", "MNIST-10k test"]
    whole = np.bincount(full.y, minlength=10)
    for part in parts:
        share = whole * len(part) / len(full)
        assert np.abs(np.bincount(part.y, minlength=10) - share).max() <= 1
    # disjoint and covering: every image lands in exactly one part (match by pixel content)
    keys = {full.x[i].tobytes(): i for i in range(len(full))}
    seen = [keys[x.tobytes()] for part in parts for x in part.x]
    assert sorted(seen) == list(range(len(full)))
    again, other = datasets.mnist10k(seed=0, download=False), datasets.mnist10k(seed=1)
    assert all(np.array_equal(a.x, b.x) and np.array_equal(a.y, b.y) for a, b in zip(parts, again))
    assert not np.array_equal(parts.dev.y, other.dev.y)


def test_mnist_downloads_from_a_mirror_and_accepts_the_raw_md5(server, monkeypatch, tmp_path):
    shared_data(monkeypatch)
    monkeypatch.delenv("NABLA_DATA")  # the files must come over HTTP, re-gzipped as they are
    for name in datasets.MNIST_FILES["test"]:
        server.files[f"/mnist/{name}"] = (MNIST_DIR / name).read_bytes()
    monkeypatch.setenv("NABLA_MIRROR", server.url)
    test = datasets.mnist("test", root=tmp_path / "data")
    assert len(test) == 10000 and test.y[:5].tolist() == [7, 2, 1, 0, 4]
    assert leftovers(tmp_path / "data" / "mnist") == sorted(datasets.MNIST_FILES["test"])


# --- the stratified split on synthetic labels ---------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
def test_stratified_indices_exact_sizes_and_proportions(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 7, size=997) ** 2  # uneven classes, non-contiguous label values
    sizes = (600, 97, 300)
    parts = datasets.stratified_indices(labels, sizes, np.random.default_rng(seed))
    assert [len(p) for p in parts] == list(sizes)
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(len(labels)))
    for part, size in zip(parts, sizes):
        for c in np.unique(labels):
            share = (labels == c).sum() * size / len(labels)
            assert abs((labels[part] == c).sum() - share) <= 1


def test_stratified_indices_rejects_wrong_sizes():
    with pytest.raises(ValueError, match="do not add up"):
        datasets.stratified_indices(np.zeros(10, int), (5, 4), np.random.default_rng(0))


def test_split_names_are_checked():
    with pytest.raises(ValueError, match="split must be"):
        datasets.mnist("validation")


# --- IDX --------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    header = magic if magic is not None else 0x800 | array.ndim
    dims = b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header.to_bytes(4, "big") + dims + array.astype(np.uint8).tobytes()


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_idx_reads_images_and_labels(tmp_path, gz):
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    labels = np.array([7, 2, 1, 0, 4], dtype=np.uint8)
    x, y = idx.read_idx_pair(
        write(tmp_path / "images", idx_bytes(images), gz),
        write(tmp_path / "labels", idx_bytes(labels), gz),
    )
    assert np.array_equal(x, images) and np.array_equal(y, labels)


def test_idx_multi_byte_types_are_big_endian():
    data = (0x0C01).to_bytes(4, "big") + (2).to_bytes(4, "big") + np.array([1, -2], ">i4").tobytes()
    assert idx.parse_idx(data).tolist() == [1, -2]


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\0\0", "truncated"),
        (idx_bytes(np.zeros((2, 28, 28)))[:10], "truncated: header"),
        (idx_bytes(np.zeros((2, 28, 28)))[:-1], "truncated: shape"),
        (idx_bytes(np.zeros((2, 28, 28))) + b"\0", "1 bytes after"),
        (idx_bytes(np.zeros((2, 28, 28)), magic=2049), "bad magic number 2049, expected 2051"),
        (idx_bytes(np.zeros((2, 14, 14))), "14x14 pixels"),
    ],
)
def test_idx_image_errors_name_the_file_and_the_problem(tmp_path, data, message):
    path = write(tmp_path / "broken-images", data)
    with pytest.raises(DataFormatError, match=message) as info:
        idx.read_idx_images(path)
    assert str(path) in str(info.value)


def test_idx_label_errors(tmp_path):
    with pytest.raises(DataFormatError, match="bad magic number 2051, expected 2049"):
        idx.read_idx_labels(write(tmp_path / "l", idx_bytes(np.zeros((1, 28, 28)))))
    with pytest.raises(DataFormatError, match="label 12 out of range"):
        idx.read_idx_labels(write(tmp_path / "l", idx_bytes(np.array([1, 12]))))
    with pytest.raises(DataFormatError, match="not an IDX file"):
        idx.read_idx(write(tmp_path / "l", b"PK\x03\x04 a zip file"))


def test_idx_count_mismatch(tmp_path):
    images = write(tmp_path / "i", idx_bytes(np.zeros((3, 28, 28))))
    labels = write(tmp_path / "l", idx_bytes(np.zeros(2)))
    with pytest.raises(DataFormatError, match=r"has 3 images but .* has 2 labels"):
        idx.read_idx_pair(images, labels)


def test_idx_corrupt_and_truncated_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.arange(100) % 10))
    with pytest.raises(DataFormatError, match="corrupt gzip"):
        idx.read_idx(write(tmp_path / "cut.gz", data[: len(data) // 2]))
    flipped = bytearray(data)
    flipped[20] ^= 0xFF
    with pytest.raises(DataFormatError, match="corrupt gzip"):
        idx.read_idx(write(tmp_path / "flipped.gz", bytes(flipped)))


# --- CIFAR-10 ---------------------------------------------------------------------------------


def cifar_records(n: int, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    y = rng.integers(0, 10, n, dtype=np.uint8)
    data = np.concatenate([y[:, None], x.reshape(n, -1)], axis=1).tobytes()
    return data, x, y


def make_archive(path: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in links:
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
    return path


def cifar_members() -> tuple[dict[str, bytes], dict]:
    members, truth = {}, {}
    for i, name in enumerate([*cifar.SPLITS["train"], *cifar.SPLITS["test"]]):
        data, x, y = cifar_records(3 + i, seed=i)
        members[f"cifar-10-batches-bin/{name}"] = data
        truth[name] = (x, y)
    return members, truth


def test_cifar_archive_reads_both_splits(tmp_path):
    members, truth = cifar_members()
    members["../escape.bin"] = b"evil"  # ignored: never read, never written
    archive = make_archive(tmp_path / "c.tar.gz", members)
    for split, names in cifar.SPLITS.items():
        x, y = cifar.read_cifar10_archive(archive, split)
        assert np.array_equal(x, np.concatenate([truth[n][0] for n in names]))
        assert np.array_equal(y, np.concatenate([truth[n][1] for n in names]))
    assert leftovers(tmp_path) == ["c.tar.gz"] and not (tmp_path.parent / "escape.bin").exists()


def test_cifar_batch_file_errors(tmp_path):
    data, x, _ = cifar_records(2, seed=0)
    assert np.array_equal(cifar.read_cifar10([write(tmp_path / "b.bin", data)])[0], x)
    with pytest.raises(DataFormatError, match="truncated"):
        cifar.read_cifar10([write(tmp_path / "b.bin", data[:-5])])
    with pytest.raises(DataFormatError, match="truncated"):
        cifar.parse_cifar10(b"")
    bad = bytearray(data)
    bad[3073] = 10
    with pytest.raises(DataFormatError, match="record 1 has label 10"):
        cifar.parse_cifar10(bytes(bad), "b.bin")


def test_cifar_archive_errors(tmp_path):
    members, _ = cifar_members()
    test_only = {k: v for k, v in members.items() if "test" in k}
    with pytest.raises(DataFormatError, match=r"missing .*data_batch_1.bin"):
        cifar.read_cifar10_archive(make_archive(tmp_path / "a.tar.gz", test_only), "train")
    linked = make_archive(tmp_path / "l.tar.gz", {}, links=("cifar-10-batches-bin/test_batch.bin",))
    with pytest.raises(DataFormatError, match="not a regular file"):
        cifar.read_cifar10_archive(linked, "test")
    blob = (tmp_path / "a.tar.gz").read_bytes()
    with pytest.raises(DataFormatError, match="corrupt or truncated"):
        cifar.read_cifar10_archive(write(tmp_path / "cut.tar.gz", blob[: len(blob) // 2]), "test")
    with pytest.raises(ValueError, match="split must be"):
        cifar.read_cifar10_archive(tmp_path / "a.tar.gz", "dev")


def test_cifar10_dataset_from_root(tmp_path, monkeypatch):
    members, truth = cifar_members()
    archive = make_archive(tmp_path / "cifar-10-binary.tar.gz", members)
    (tmp_path / "cifar10").mkdir()
    archive = archive.rename(tmp_path / "cifar10" / archive.name)
    monkeypatch.setattr(datasets, "CIFAR10_FILES", {archive.name: md5(archive.read_bytes())})
    test = datasets.cifar10("test", root=tmp_path, download=False)
    assert test.x.shape == (8, 3, 32, 32) and test.x.dtype == np.float32
    assert test.y.dtype == np.int64 and test.name == "CIFAR-10 test"
    assert np.array_equal(test.x * 255, truth["test_batch.bin"][0].astype(np.float32))
    assert len(datasets.cifar10("train", root=tmp_path, download=False)) == 3 + 4 + 5 + 6 + 7


# --- download ---------------------------------------------------------------------------------

PAYLOAD = bytes(range(256)) * 40


def test_download_verifies_and_places_the_file(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    path = download.download(f"{server.url}/f.bin", tmp_path / "sub" / "f.bin", md5=md5(PAYLOAD))
    assert path.read_bytes() == PAYLOAD and leftovers(tmp_path / "sub") == ["f.bin"]


def test_download_shows_a_progress_bar_on_a_terminal(server, tmp_path, monkeypatch, capsys):
    server.files["/f.bin"] = PAYLOAD
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    download.download(f"{server.url}/f.bin", tmp_path / "f.bin", progress=False)
    assert capsys.readouterr().err == ""
    download.download(f"{server.url}/f.bin", tmp_path / "f.bin")
    assert "f.bin" in capsys.readouterr().err


def test_download_accepts_the_md5_of_the_gunzipped_content(server, tmp_path):
    server.files["/f.gz"] = gzip.compress(PAYLOAD, mtime=0)
    path = download.download(
        f"{server.url}/f.gz", tmp_path / "f.gz", md5="0" * 32, raw_md5=md5(PAYLOAD)
    )
    assert gzip.decompress(path.read_bytes()) == PAYLOAD


def test_checksum_mismatch_names_both_checksums_and_leaves_nothing(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    with pytest.raises(ChecksumError) as info:
        download.download(f"{server.url}/f.bin", tmp_path / "f.bin", md5="0" * 32)
    message = str(info.value)
    assert "0" * 32 in message and md5(PAYLOAD) in message
    assert f"{server.url}/f.bin" in message and str(tmp_path / "f.bin") in message
    assert leftovers(tmp_path) == [] and len(server.requests) == 1  # a bad file is not retried


def test_server_errors_are_retried_then_reported(server, tmp_path):
    server.files["/f.bin"] = 503
    with pytest.raises(DownloadError, match=r"HTTP 503.*after 3 attempts"):
        download.download(f"{server.url}/f.bin", tmp_path / "f.bin", retries=2)
    assert len(server.requests) == 3 and leftovers(tmp_path) == []


def test_not_found_is_final(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download.download(f"{server.url}/missing.bin", tmp_path / "f.bin", retries=2)
    assert str(tmp_path / "f.bin") in str(info.value) and "missing.bin" in str(info.value)
    assert len(server.requests) == 1 and leftovers(tmp_path) == []


def test_truncated_body_is_retried_and_no_partial_file_is_left(server, tmp_path):
    server.files["/f.bin"] = PAYLOAD
    server.truncate.add("/f.bin")
    with pytest.raises(DownloadError, match="received 5120 of 10240 bytes"):
        download.download(f"{server.url}/f.bin", tmp_path / "f.bin", retries=1)
    assert len(server.requests) == 2 and leftovers(tmp_path) == []


def test_connection_refused_is_a_download_error(tmp_path):
    s = Server()
    url = s.url
    s.close()
    with pytest.raises(DownloadError, match="URLError"):
        download.download(f"{url}/f.bin", tmp_path / "f.bin", retries=1, timeout=2)
    assert leftovers(tmp_path) == []


def test_replacement_is_atomic(server, tmp_path):
    target = write(tmp_path / "f.bin", b"old")
    server.files["/f.bin"] = 500
    with pytest.raises(DownloadError):
        download.download(f"{server.url}/f.bin", target, retries=0)
    assert target.read_bytes() == b"old"  # a failed download never touches the old file
    server.files["/f.bin"] = PAYLOAD
    download.download(f"{server.url}/f.bin", target, md5=md5(PAYLOAD))
    assert target.read_bytes() == PAYLOAD and leftovers(tmp_path) == ["f.bin"]


# --- fetch: where files are found -------------------------------------------------------------

FILES = {"a.bin": Checksum(md5(b"a")), "b.bin": md5(b"b")}


def put(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write(folder / name, data)


def test_fetch_search_order_root_then_nabla_data_then_cache(tmp_path, monkeypatch):
    root, data, cache = tmp_path / "root", tmp_path / "data", tmp_path / "cache"
    monkeypatch.setenv("NABLA_DATA", str(data))
    for folder in (root, data, cache):
        put(folder / "ds", "a.bin", b"a")
        put(folder / "ds", "b.bin", b"b")
    assert fetch("ds", FILES, root=root, download=False)["a.bin"] == root / "ds" / "a.bin"
    assert fetch("ds", FILES, download=False)["a.bin"] == data / "ds" / "a.bin"
    monkeypatch.delenv("NABLA_DATA")
    assert fetch("ds", FILES, download=False)["b.bin"] == cache / "ds" / "b.bin"


def test_fetch_default_cache_is_under_home(tmp_path, monkeypatch):
    monkeypatch.delenv("NABLA_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    put(tmp_path / "home" / ".cache" / "nabla" / "ds", "a.bin", b"a")
    paths = fetch("ds", {"a.bin": FILES["a.bin"]}, download=False)
    assert paths["a.bin"] == tmp_path / "home" / ".cache" / "nabla" / "ds" / "a.bin"


def test_fetch_refuses_a_corrupt_file(tmp_path, monkeypatch):
    put(tmp_path / "cache" / "ds", "a.bin", b"not a")
    put(tmp_path / "data" / "ds", "a.bin", b"a")  # later in the order: not a fallback
    with pytest.raises(ChecksumError, match=r"a.bin is corrupt.*delete it"):
        fetch("ds", {"a.bin": FILES["a.bin"]}, root=tmp_path / "cache", download=False)


def test_fetch_without_download_names_the_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"a.bin is in none of .*cache"):
        fetch("ds", FILES, download=False)


def test_fetch_downloads_missing_files_into_the_cache(server, tmp_path, monkeypatch):
    put(tmp_path / "cache" / "ds", "a.bin", b"a")
    server.files["/mirror/b.bin"] = b"b"
    monkeypatch.setitem(download.MIRRORS, "ds", [f"{server.url}/down/", f"{server.url}/mirror/"])
    paths = fetch("ds", FILES)
    assert paths["b.bin"] == tmp_path / "cache" / "ds" / "b.bin"
    assert server.requests == ["/down/b.bin", "/mirror/b.bin"]  # the first mirror 404s


def test_fetch_downloads_into_root_and_honours_nabla_mirror(server, tmp_path, monkeypatch):
    server.files.update({"/ds/a.bin": b"a", "/ds/b.bin": b"x"})
    monkeypatch.setenv("NABLA_MIRROR", server.url + "/")
    with pytest.raises(DownloadError, match=r"could not get b.bin from any mirror"):
        fetch("ds", FILES, root=tmp_path / "root")
    assert leftovers(tmp_path / "root" / "ds") == ["a.bin"]
    assert not (tmp_path / "cache").exists()
