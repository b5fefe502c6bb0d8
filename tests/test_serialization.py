"""nb.save / nb.load: safetensors round trips, interchange with PyTorch, corrupt files,
atomicity."""

from __future__ import annotations

import io
import json
import os
import pickle

import numpy as np
import pytest
import torch
from safetensors.torch import load_file as torch_load_file
from safetensors.torch import save_file as torch_save_file

import nabla as nb
from nabla import files, nn
from nabla.serialization import CheckpointError

RNG = np.random.default_rng(0)
ARRAYS = {
    "f32": RNG.standard_normal((3, 4)).astype(np.float32),
    "f64": RNG.standard_normal((2, 5)),
    "i64": RNG.integers(-(2**40), 2**40, (7,)),
    "bool": RNG.random((2, 3)) > 0.5,
    "scalar_f32": np.array(1.5, dtype=np.float32),
    "scalar_f64": np.array(-2.25),
    "scalar_i64": np.array(42),
    "scalar_bool": np.array(True),
    "empty": np.zeros((0, 3), dtype=np.float32),
}


def test_round_trip_every_dtype_and_0d(tmp_path):
    path = tmp_path / "a.safetensors"
    state = {k: (nb.from_numpy(v) if k.startswith("f") else v) for k, v in ARRAYS.items()}
    nb.save(state, path)
    loaded = nb.load(path)
    assert set(loaded) == set(ARRAYS)
    for name, array in ARRAYS.items():
        assert isinstance(loaded[name], nb.Tensor)
        assert loaded[name].dtype == array.dtype and loaded[name].shape == array.shape
        np.testing.assert_array_equal(loaded[name].numpy(), array)
        assert loaded[name].numpy().flags.writeable  # usable as a parameter, e.g. by an optimizer


def test_non_contiguous_and_big_endian_are_written_as_values(tmp_path):
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    state = {"t": base.T, "s": base[::2, 1::3], "be": base.astype(">f8")}
    nb.save(state, tmp_path / "a.safetensors")
    loaded = nb.load(tmp_path / "a.safetensors")
    for name, array in state.items():
        np.testing.assert_array_equal(loaded[name].numpy(), array)
        assert loaded[name].dtype == np.float64


def test_save_copies_so_later_writes_do_not_matter_and_requires_grad_is_fine(tmp_path):
    w = nb.tensor([1.0, 2.0], requires_grad=True)
    nb.save({"w": w}, tmp_path / "a.safetensors")
    w.data[:] = 0
    np.testing.assert_array_equal(nb.load(tmp_path / "a.safetensors")["w"].numpy(), [1.0, 2.0])


def test_metadata_round_trip(tmp_path):
    path = tmp_path / "a.safetensors"
    meta = {"epoch": "3", "config": json.dumps({"lr": 1e-3, "layers": [64, 10]}), "unicode": "λ✓"}
    nb.save({"x": np.ones(2, np.float32)}, str(path), metadata=meta)
    assert nb.load_metadata(path) == meta
    nb.save({"x": np.ones(2, np.float32)}, path)
    assert nb.load_metadata(path) == {}


def test_torch_reads_our_files(tmp_path):
    path = tmp_path / "a.safetensors"
    nb.save(ARRAYS, path, metadata={"k": "v"})
    theirs = torch_load_file(str(path))
    assert set(theirs) == set(ARRAYS)
    for name, array in ARRAYS.items():
        assert theirs[name].numpy().dtype == array.dtype
        assert torch.equal(theirs[name], torch.from_numpy(array))


def _models():
    nb.manual_seed(0)
    ours = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
    torch.manual_seed(0)
    theirs = torch.nn.Sequential(torch.nn.Linear(784, 64), torch.nn.ReLU(), torch.nn.Linear(64, 10))
    x = RNG.standard_normal((8, 784)).astype(np.float32)
    return ours, theirs, x


def _outputs(ours, theirs, x):
    with nb.no_grad(), torch.no_grad():
        return ours(nb.tensor(x)).numpy(), theirs(torch.from_numpy(x)).numpy()


def test_nabla_model_loads_into_torch(tmp_path):
    ours, theirs, x = _models()
    path = tmp_path / "mlp.safetensors"
    nb.save(ours.state_dict(), path)
    theirs.load_state_dict(torch_load_file(str(path)))
    a, b = _outputs(ours, theirs, x)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_torch_model_loads_into_nabla(tmp_path):
    ours, theirs, x = _models()
    a0, b0 = _outputs(ours, theirs, x)
    assert not np.allclose(a0, b0)  # different initial weights, so the load below matters
    path = tmp_path / "mlp.safetensors"
    torch_save_file(theirs.state_dict(), str(path), metadata={"format": "pt"})
    loaded = nb.load(path)
    assert list(loaded) != [] and all(v.dtype == np.float32 for v in loaded.values())
    ours.load_state_dict(loaded)
    a, b = _outputs(ours, theirs, x)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    assert nb.load_metadata(path) == {"format": "pt"}


# --- corrupt and foreign files --------------------------------------------------------------------


@pytest.fixture
def good_bytes(tmp_path):
    path = tmp_path / "good.safetensors"
    nb.save(ARRAYS, path, metadata={"k": "v"})
    return path.read_bytes()


def _write(tmp_path, data: bytes, name="bad.safetensors"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _assert_corrupt(path, *fragments):
    with pytest.raises(CheckpointError) as info:
        nb.load(path)
    message = str(info.value)
    assert str(path) in message
    for fragment in fragments:
        assert fragment in message
    with pytest.raises(CheckpointError):
        nb.load_metadata(path)
    assert isinstance(info.value, ValueError)


def test_truncated_files(tmp_path, good_bytes):
    header_end = 8 + int.from_bytes(good_bytes[:8], "little")
    cuts = [0, 3, 8, 20, header_end - 1, header_end, header_end + 5, len(good_bytes) - 1]
    for cut in cuts:
        _assert_corrupt(_write(tmp_path, good_bytes[:cut], f"cut{cut}.safetensors"))


def test_trailing_garbage(tmp_path, good_bytes):
    _assert_corrupt(_write(tmp_path, good_bytes + b"\0" * 8), "trailing")


def test_random_bytes(tmp_path):
    for seed in range(5):
        data = np.random.default_rng(seed).bytes(1000)
        _assert_corrupt(_write(tmp_path, data, f"r{seed}.safetensors"))


class _Boom:
    """Unpickling this would run code: the test fails if load ever unpickles."""

    def __reduce__(self):
        return (pytest.fail, ("nabla unpickled a file",))


def test_pickle_is_refused_without_unpickling(tmp_path):
    data = pickle.dumps({"w": np.ones(3), "boom": _Boom()})
    _assert_corrupt(_write(tmp_path, data, "model.pt"), "pickle")


def test_npz_is_refused(tmp_path):
    buffer = io.BytesIO()
    np.savez(buffer, w=np.ones(3))
    _assert_corrupt(_write(tmp_path, buffer.getvalue(), "w.npz"), "zip")


def test_header_length_past_end_of_file(tmp_path):
    header = b'{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    data = (len(header) + 100).to_bytes(8, "little") + header + b"\0" * 4
    _assert_corrupt(_write(tmp_path, data), "header claims")


def test_header_not_json(tmp_path):
    for header in [b"{not json at all}", b"\xff\xfe\xfd", b"[1, 2, 3]"]:
        data = len(header).to_bytes(8, "little") + header
        _assert_corrupt(_write(tmp_path, data), "header")


def _file(header: dict, data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return len(raw).to_bytes(8, "little") + raw + data


@pytest.mark.parametrize(
    ("header", "data", "fragment"),
    [
        ({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4, "truncated"),
        ({"x": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}, b"\0" * 8, "needs 12"),
        ({"x": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4, "F16"),
        ({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "shape"),
        ({"x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4, "offsets"),
        ({"x": {"dtype": "F32", "shape": [1]}}, b"\0" * 4, "lacks"),
        ({"__metadata__": {"k": 1}}, b"", "__metadata__"),
        (
            {
                "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
            },
            b"\0" * 8,
            "overlap",
        ),
    ],
)
def test_inconsistent_headers(tmp_path, header, data, fragment):
    _assert_corrupt(_write(tmp_path, _file(header, data)), fragment)


def test_missing_file(tmp_path):
    path = tmp_path / "nope.safetensors"
    for fn in (nb.load, nb.load_metadata):
        with pytest.raises(FileNotFoundError, match=r"nope\.safetensors"):
            fn(path)


# --- atomic writes --------------------------------------------------------------------------------


@pytest.mark.parametrize("fail_at", ["replace", "fsync", "write"])
def test_a_crash_while_saving_keeps_the_old_file(tmp_path, monkeypatch, fail_at):
    path = tmp_path / "ckpt.safetensors"
    nb.save({"w": np.ones(3, np.float32)}, path, metadata={"v": "old"})
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("simulated crash")

    if fail_at == "write":

        class Failing:
            def __init__(self, *args, **kwargs):
                self.file = open(*args, **kwargs)  # closed in __exit__

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.file.close()

            def write(self, data):
                self.file.write(data[: len(data) // 2])  # half a file on disk, then the crash
                crash()

        monkeypatch.setattr(files, "open", Failing, raising=False)  # nabla.files' open()
    else:
        monkeypatch.setattr(os, fail_at, crash)
    with pytest.raises(OSError, match="simulated crash"):
        nb.save({"w": np.zeros(1000, np.float32)}, path, metadata={"v": "new"})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]  # no temporary file left behind
    assert nb.load_metadata(path) == {"v": "old"}


def test_save_replaces_and_leaves_no_temporary_files(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    for value in (1.0, 2.0):
        nb.save({"w": np.full(3, value, np.float32)}, path)
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]
    np.testing.assert_array_equal(nb.load(path)["w"].numpy(), [2.0, 2.0, 2.0])
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # like a plain open(path, "wb")


def test_save_into_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nb.save({"w": np.ones(1)}, tmp_path / "missing" / "a.safetensors")


# --- bad arguments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "error", "fragment"),
    [
        ({1: np.ones(1)}, TypeError, "names must be strings"),
        ({"": np.ones(1)}, ValueError, "non-empty"),
        ({"__metadata__": np.ones(1)}, ValueError, "reserved"),
        ({"w": [1.0, 2.0]}, TypeError, "'w' must be a nabla Tensor or a NumPy array"),
        ({"w": np.ones(2, np.float16)}, TypeError, "float16"),
        ({"w": np.array(["a"])}, TypeError, "dtype"),
        ({"w": np.array([object()])}, TypeError, "dtype"),
        ([("w", np.ones(1))], TypeError, "mapping"),
    ],
)
def test_save_refuses_bad_keys_and_values(tmp_path, state, error, fragment):
    with pytest.raises(error, match=fragment):
        nb.save(state, tmp_path / "a.safetensors")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("metadata", [{"epoch": 3}, {1: "a"}, {"nested": {"a": "b"}}, ["a"]])
def test_save_refuses_non_string_metadata(tmp_path, metadata):
    with pytest.raises(TypeError, match="metadata"):
        nb.save({"w": np.ones(1)}, tmp_path / "a.safetensors", metadata=metadata)
    assert os.listdir(tmp_path) == []


# --- the digest and files that are not regular files ---------------------------------------------


def test_every_file_carries_a_digest_that_load_checks(tmp_path):
    path = tmp_path / "a.safetensors"
    nb.save(ARRAYS, path, metadata={"k": "v"})
    assert nb.load_metadata(path) == {"k": "v"}  # the digest is the file's, not the user's
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # one bit of the last tensor
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="digest") as info:
        nb.load(path)
    assert str(path) in str(info.value)


def test_files_without_a_digest_load_unverified(tmp_path):
    path = tmp_path / "torch.safetensors"
    torch_save_file({"w": torch.ones(3)}, str(path))
    np.testing.assert_array_equal(nb.load(path)["w"].numpy(), np.ones(3, np.float32))


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    path = tmp_path / "fifo.safetensors"
    os.mkfifo(path)
    with pytest.raises(CheckpointError, match="FIFO"):
        nb.load(path)  # opening it for reading, as open() does, would block here
