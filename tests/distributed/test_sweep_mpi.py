"""``nabla sweep --executor mpi``: the same sweep as the local process pool, on MPI workers.

The runs are deterministic, so a sweep whose runs went to an mpi4py.futures pool (started by
``mpirun -np 3 python -m mpi4py.futures``, or spawned from one process) must write the same
summary.json, summary.md and curves.png as the default executor in this process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mpi_harness import _is_open_mpi, run_mpi, skip_reason

from nabla import cli, sweep
from nabla.distributed import DistributedError
from nabla.train import config

needs_mpi = pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))
GRID, SEEDS = "lr=0.01,0.001", 2
ARGS = ["sweep", "--grid", GRID, "--epochs", "1", "--seeds", str(SEEDS)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The sweep with the default executor (1 worker: in this process)."""
    out = tmp_path_factory.mktemp("process")
    sweep.run_sweep({"epochs": 1}, [sweep.parse_grid(GRID)], seeds=SEEDS, out=out, verbose=False)
    return out


def _summary(out: Path) -> dict:
    # the run folders are named after the sweep folder: compare them relative to it
    return json.loads((out / "summary.json").read_text().replace(str(out), "OUT"))


def _assert_same_sweep(out: Path, reference: Path) -> None:
    got, expected = _summary(out), _summary(reference)
    assert [r["label"] for r in got["configurations"]] == ["lr=0.01", "lr=0.001"]
    for row, ref in zip(got["configurations"], expected["configurations"], strict=True):
        assert len(row["runs"]) == SEEDS
        for key in ("dev_accuracy", "dev_loss"):
            assert row[key] == pytest.approx(ref[key], rel=1e-12, abs=1e-12), (row["label"], key)
    assert got == expected  # also the choice, its test metrics and the run folders
    assert (out / "summary.md").read_text() == (reference / "summary.md").read_text()
    assert (out / "curves.png").read_bytes() == (reference / "curves.png").read_bytes()
    for run in got["configurations"][0]["runs"]:
        assert (Path(run.replace("OUT", str(out))) / "results.json").exists()


def _checked(done) -> str:
    assert done.returncode == 0, f"failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


@needs_mpi
def test_mpirun_pool_of_two_worker_ranks_matches_the_process_executor(tmp_path, reference):
    command = [sys.executable, "-m", "mpi4py.futures", "-m", "nabla", *ARGS]
    done, _ = run_mpi([*command, "--out", tmp_path, "--executor", "mpi"], ranks=3, timeout=60)
    assert "MPI: 2 worker rank(s)" in _checked(done)  # rank 0 sweeps, ranks 1 and 2 train
    _assert_same_sweep(tmp_path, reference)


@needs_mpi
def test_one_process_spawns_its_mpi_workers(tmp_path, reference):
    env = dict(
        os.environ,
        OMPI_ALLOW_RUN_AS_ROOT="1",
        OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
        OMPI_MCA_rmaps_base_oversubscribe="1",
        OMP_NUM_THREADS="1",
    )
    command = [sys.executable, "-m", "nabla", *ARGS, "--out", tmp_path, "--executor", "mpi"]
    done = subprocess.run(
        [*map(str, command), "--workers", "2"], capture_output=True, text=True, env=env, timeout=60
    )
    assert "MPI: 2 spawned worker process(es)" in _checked(done)
    _assert_same_sweep(tmp_path, reference)


@needs_mpi
def test_a_failed_spawn_is_an_error_not_a_hang(tmp_path):
    # MPI_Comm_spawn fails in mpi4py's own thread; without the check every task would wait forever
    if not _is_open_mpi():
        pytest.skip("needs Open MPI's slot accounting (other MPIs may start 1000 processes)")
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    env.pop("OMPI_MCA_rmaps_base_oversubscribe", None)
    command = [sys.executable, "-m", "nabla", *ARGS, "--out", str(tmp_path)]
    done = subprocess.run(
        [*command, "--executor", "mpi", "--workers", "1000"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "could not spawn its workers" in done.stderr
    assert not list(tmp_path.glob("*/seed-*"))


def test_mpi_executor_without_mpi4py_says_how_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # what `import mpi4py` sees when it is absent
    with pytest.raises(DistributedError, match=r"pip install 'nabla\[distributed\]'"):
        sweep.run_sweep({"epochs": 1}, [sweep.parse_grid(GRID)], out=tmp_path, executor="mpi")
    assert cli.main([*ARGS, "--out", str(tmp_path), "--executor", "mpi", "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "--executor mpi needs mpi4py" in error and "apt-get install openmpi-bin" in error
    assert not list(tmp_path.glob("*/seed-*"))  # refused before any run started


def test_unknown_executor_is_refused(tmp_path, capsys):
    with pytest.raises(config.ConfigError, match=r"one of process, mpi, got 'slurm'"):
        sweep.run_sweep({"epochs": 1}, [sweep.parse_grid(GRID)], out=tmp_path, executor="slurm")
    with pytest.raises(SystemExit) as exit_:
        cli.main([*ARGS, "--executor", "slurm"])
    assert exit_.value.code == 2
    assert "invalid choice: 'slurm'" in capsys.readouterr().err


def test_sweep_started_by_plain_mpirun_is_refused(monkeypatch, tmp_path):
    # every process of `mpirun -np 2 nabla sweep` would run the whole sweep into the same folder
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    for executor in sweep.EXECUTORS:
        with pytest.raises(config.ConfigError, match=r"python -m mpi4py\.futures"):
            sweep.run_sweep({}, [sweep.parse_grid(GRID)], out=tmp_path, executor=executor)
    assert not any(tmp_path.iterdir())
