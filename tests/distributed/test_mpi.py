"""Data-parallel training on real MPI ranks (mpirun -np 2 or 3), against one process.

Every test starts ``mpi_worker.py`` under mpirun and compares what the ranks wrote with a
reference trained here. Skipped, with the reason, where mpi4py or mpirun is missing.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from mpi_harness import (
    WORKER,
    buffers,
    build,
    dataset,
    flat_parameters,
    loader,
    relative_difference,
    run_mpi,
    skip_reason,
)

from nabla.train import Trainer
from nabla.train.callbacks import ModelCheckpoint

pytestmark = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))


def _ranks(out, world: int) -> list:
    return [dict(np.load(out / f"rank{r}.npz")) for r in range(world)]


def _checked(done):
    assert done.returncode == 0, f"mpirun failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"


def _reference(optimizer: str, samples: int, batch: int, epochs: int, norm: str = "none"):
    model, opt, loss = build(optimizer, norm=norm)
    trainer = Trainer(model, loss, opt, distributed=False)
    trainer.fit(loader(dataset(samples), batch), epochs=epochs, verbose=0)
    return model, trainer


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_two_ranks_of_batch_b_follow_one_process_of_batch_2b(tmp_path, optimizer):
    done, _ = run_mpi([WORKER, "equivalence", tmp_path, optimizer])
    _checked(done)
    ranks = _ranks(tmp_path, 2)
    model, trainer = _reference(optimizer, 400, 16, 2)
    expected = flat_parameters(model)
    assert len(trainer.history.steps["loss"]) == 50
    # the ranks started from different weights: rank 0's broadcast made them equal, and the
    # averaged gradients kept them bit-for-bit equal
    np.testing.assert_array_equal(ranks[0]["params"], ranks[1]["params"])
    assert relative_difference(ranks[0]["params"], expected) <= 1e-9
    assert relative_difference(expected, flat_parameters(build(optimizer)[0])) > 1e-2  # it trained
    # the logged step loss is the global batch's
    np.testing.assert_allclose(ranks[0]["losses"], trainer.history.steps["loss"], rtol=1e-9)
    assert int(ranks[0]["bytes"]) == expected.size * 8  # one float64 buffer per step


def test_sync_batchnorm_matches_one_process_and_plain_batchnorm_does_not(tmp_path):
    done, _ = run_mpi([WORKER, "equivalence", tmp_path / "sync", "sgd", "sync"])
    _checked(done)
    done, _ = run_mpi([WORKER, "equivalence", tmp_path / "plain", "sgd", "batch"])
    _checked(done)
    model, _ = _reference("sgd", 400, 16, 2, norm="batch")
    sync, plain = _ranks(tmp_path / "sync", 2), _ranks(tmp_path / "plain", 2)
    np.testing.assert_array_equal(sync[0]["params"], sync[1]["params"])
    np.testing.assert_array_equal(sync[0]["buffers"], sync[1]["buffers"])
    assert relative_difference(sync[0]["params"], flat_parameters(model)) <= 1e-9
    assert relative_difference(sync[0]["buffers"], buffers(model)) <= 1e-9
    # per-rank statistics (the default) normalize each half with its own mean: another result,
    # though the running statistics were averaged so the ranks agree
    assert relative_difference(plain[0]["params"], flat_parameters(model)) > 1e-6
    np.testing.assert_array_equal(plain[0]["buffers"], plain[1]["buffers"])


def test_dropout_runs_are_bit_reproducible_with_a_stream_per_rank(tmp_path):
    for attempt in ("a", "b"):
        done, _ = run_mpi([WORKER, "dropout", tmp_path / attempt])
        _checked(done)
    a, b = _ranks(tmp_path / "a", 2), _ranks(tmp_path / "b", 2)
    np.testing.assert_array_equal(a[0]["params"], b[0]["params"])
    np.testing.assert_array_equal(a[0]["params"], a[1]["params"])
    assert not np.array_equal(a[0]["probe"], a[1]["probe"])  # each rank drew its own masks
    np.testing.assert_array_equal(a[1]["probe"], b[1]["probe"])


@pytest.mark.parametrize("how", ["raise", "kill"])
def test_a_failing_rank_ends_the_whole_job_within_seconds(tmp_path, how):
    done, seconds = run_mpi([WORKER, "failure", tmp_path, how], timeout=60)
    assert done.returncode != 0
    assert seconds < 30, f"the job took {seconds:.0f}s to end"
    text = done.stdout + done.stderr
    if how == "raise":
        assert "rank 1 of 2" in text and "injected failure at step 10" in text, text
    else:
        assert "rank 1" in text, text  # mpirun names the rank that died
    assert "Traceback" in text or "signal" in text


def test_a_checkpoint_from_two_ranks_resumes_on_three_and_on_one(tmp_path):
    first = tmp_path / "two-then-three"
    _checked(run_mpi([WORKER, "checkpoint", first, "1"], ranks=2)[0])
    _checked(run_mpi([WORKER, "checkpoint", first, "2"], ranks=3)[0])
    three = _ranks(first, 3)
    model, _ = _reference("adam", 360, 12, 2)
    expected = flat_parameters(model)
    for r in (1, 2):
        np.testing.assert_array_equal(three[0]["params"], three[r]["params"])
    assert relative_difference(three[0]["params"], expected) <= 1e-9
    # and on a single process, without MPI
    second = tmp_path / "two-then-one"
    _checked(run_mpi([WORKER, "checkpoint", second, "1"], ranks=2)[0])
    model, opt, loss = build("adam")
    trainer = Trainer(model, loss, opt, callbacks=[ModelCheckpoint(second)], distributed=False)
    trainer.load_checkpoint(second / "last.safetensors")
    trainer.fit(loader(dataset(360), 12), epochs=2, verbose=0)
    assert relative_difference(flat_parameters(model), expected) <= 1e-9


def test_nabla_train_distributed_writes_one_run_folder(tmp_path):
    out = tmp_path / "run"
    done, _ = run_mpi(
        [
            sys.executable,
            "-m",
            "nabla",
            "train",
            "--distributed",
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--lr-batch-size",
            "16",
            "--out",
            str(out),
        ],
        timeout=180,
    )
    _checked(done)
    assert done.stdout.count("epoch 2/2") == 1  # only rank 0 prints
    assert "2 ranks of 16" in done.stdout and "lr 0.01 x 32/16 = 0.02" in done.stdout
    results = json.loads((out / "results.json").read_text())
    assert results["ranks"] == 2 and results["evaluations"]["test"]["accuracy"] > 0.85
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [x["step"] for x in lines if x["event"] == "step"]
    assert steps == list(range(1, len(steps) + 1))  # one writer: no line twice
    assert (out / "checkpoints" / "last.safetensors").exists() and (out / "report.html").exists()


def test_mpirun_without_distributed_is_refused(tmp_path):
    out = tmp_path / "r"
    args = ["train", "--epochs", "1", "--out", str(out)]
    done, _ = run_mpi([sys.executable, "-m", "nabla", *args], timeout=60)
    assert done.returncode == 2 and "add --distributed" in done.stderr, done.stderr
    assert not out.exists()
