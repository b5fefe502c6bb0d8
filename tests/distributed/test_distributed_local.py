"""nabla.distributed in one process, without MPI: sharding, the single-rank fallbacks, the CLI
and config checks, and SyncBatchNorm = BatchNorm on one rank."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import nabla as nb
from nabla import distributed as dist
from nabla import nn
from nabla.cli import main
from nabla.data import ArrayDataset, DataLoader
from nabla.train import Trainer, build, config, run


def _ids(loader) -> list[list[int]]:
    return [y.data.tolist() for _, y in loader]


@pytest.mark.parametrize("samples", [12, 10, 7, 2])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_shards_split_each_epoch_of_the_same_permutation(samples, world):
    data = ArrayDataset(np.zeros((samples, 1)), np.arange(samples))
    whole = DataLoader(data, batch_size=1, shuffle=True, seed=5)
    shards = [
        DataLoader(data, batch_size=3, shuffle=True, seed=5, shard=(r, world)) for r in range(world)
    ]
    exact = [DataLoader(data, batch_size=3, shard=(r, world), pad=False) for r in range(world)]
    for _epoch in range(2):  # each iteration of a loader is the next epoch
        order = np.concatenate(_ids(whole))
        padded = [np.concatenate(_ids(loader)) for loader in shards]
        assert {len(p) for p in padded} == {-(-samples // world)}  # equal: the same steps per rank
        assert [len(p) for p in padded] == [loader.samples_per_epoch() for loader in shards]
        assert set(np.concatenate(padded)) == set(range(samples))  # the whole epoch
        if samples % world == 0:  # no padding: disjoint, and interleaved exactly as one loader
            np.testing.assert_array_equal(np.sort(np.concatenate(padded)), np.arange(samples))
            np.testing.assert_array_equal(np.stack(padded, axis=1).reshape(-1), order)
        parts = [
            np.concatenate(_ids(loader)) if len(loader) else np.zeros(0, int) for loader in exact
        ]
        np.testing.assert_array_equal(np.sort(np.concatenate(parts)), np.arange(samples))
        assert max(map(len, parts)) - min(map(len, parts)) <= 1


def test_rank_batches_together_are_the_single_process_batches():
    data = ArrayDataset(np.zeros((48, 1)), np.arange(48))
    single = _ids(DataLoader(data, batch_size=12, shuffle=True, seed=1))
    ranks = [
        _ids(DataLoader(data, batch_size=4, shuffle=True, seed=1, shard=(r, 3))) for r in range(3)
    ]
    for i, batch in enumerate(single):
        assert sorted(batch) == sorted(x for r in range(3) for x in ranks[r][i])


@pytest.mark.parametrize("shard", [(2, 2), (-1, 2), (0, 0), (0,), "0,1", (0.0, 1)])
def test_a_bad_shard_is_refused(shard):
    with pytest.raises(ValueError, match="shard must be"):
        DataLoader(ArrayDataset(np.zeros((4, 1)), np.arange(4)), shard=shard)


def test_without_init_everything_is_one_rank(monkeypatch):
    assert not dist.is_initialized() or dist.world_size() == 1
    assert (dist.rank(), dist.world_size(), dist.is_main(), dist.active()) == (0, 1, True, False)
    model = nn.Linear(3, 2)
    opt = nb.optim.SGD(model.parameters(), lr=0.1)
    model(nb.randn(4, 3)).sum().backward()
    before = opt.gradient_vectors()[0].copy()
    assert dist.allreduce_gradients(opt) == 0
    np.testing.assert_array_equal(opt.gradient_vectors()[0], before)
    assert dist.allreduce_metrics({"loss": 0.5, "note": "x"}, weight=3) == {
        "loss": 0.5,
        "note": "x",
    }
    assert dist.broadcast_text("runs/a") == "runs/a"
    dist.broadcast_parameters(model)
    dist.abort("not running: nothing happens")


def test_launcher_environment_is_detected(monkeypatch):
    for name in dist._LAUNCHER_SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert (dist.launched_size(), dist.under_mpirun()) == (1, False)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert (dist.launched_size(), dist.under_mpirun()) == (4, True)
    model = nn.Linear(2, 2)
    assert Trainer(model, nn.MSELoss(), nb.optim.SGD(model.parameters(), lr=0.1)).distributed
    assert not Trainer(
        model, nn.MSELoss(), nb.optim.SGD(model.parameters(), lr=0.1), distributed=False
    ).distributed


def test_cli_under_mpirun_without_distributed_is_refused(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "run")]) == 2
    assert "add --distributed" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_missing_mpi4py_gives_the_install_commands(monkeypatch):
    monkeypatch.setattr(dist, "_MPI", None)
    monkeypatch.setattr(dist, "_comm", None)
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(
        dist.DistributedError, match=r"openmpi-bin libopenmpi-dev.*nabla\[distributed\]"
    ):
        dist.init()


def test_importing_nabla_does_not_import_mpi():
    code = "import sys, nabla, nabla.distributed, nabla.train; print('mpi4py' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_linear_scaling_rule_in_the_config():
    cfg = config.resolve({"lr": 0.1, "batch_size": 256, "lr_batch_size": 64})
    assert build.peak_lr(cfg) == pytest.approx(0.4)
    assert "lr 0.1 x 256/64 = 0.4" in run.describe(cfg)
    assert build.peak_lr(config.resolve({"lr": 0.1, "batch_size": 256})) == 0.1
    schedule = build.build_schedule(
        config.resolve({"lr": 0.1, "batch_size": 256, "lr_batch_size": 64, "schedule": "constant"}),
        10,
    )
    assert schedule(0) == pytest.approx(0.4)


def test_global_batch_must_split_evenly_over_the_ranks():
    cfg = config.resolve({"batch_size": 32})
    data = build.load_data(cfg)
    with pytest.raises(config.ConfigError, match="multiple of the 3 ranks"):
        build.build_loaders(cfg, data, shard=(0, 3))
    train, _, _ = build.build_loaders(cfg, data, shard=(1, 4))
    assert train.batch_size == 8 and train.shard == (1, 4)


@pytest.mark.parametrize("shape", [(8, 5), (6, 5, 3), (4, 5, 3, 3)])
def test_sync_batchnorm_on_one_rank_is_batchnorm(shape):
    x = np.random.default_rng(0).standard_normal(shape)
    plain = (nn.BatchNorm1d if len(shape) < 4 else nn.BatchNorm2d)(5, dtype="float64")
    sync = nn.SyncBatchNorm(5, dtype="float64")
    outputs = []
    for layer in (plain, sync):
        layer.weight.data[:] = np.arange(1.0, 6.0)
        xt = nb.tensor(x, dtype="float64", requires_grad=True)
        y = layer(xt)
        (y * y).sum().backward()
        outputs.append((y.data, xt.grad, layer.weight.grad, layer.running_var.data.copy()))
    for a, b in zip(*outputs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_convert_swaps_batchnorms_in_place_keeping_order_and_state():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2))
    model[1].running_mean.data[:] = 7.0
    weight = model[1].weight
    converted = nn.SyncBatchNorm.convert(model)
    assert converted is model
    assert [type(m).__name__ for m in model] == ["Linear", "SyncBatchNorm", "ReLU", "Linear"]
    assert model[1].weight is weight and float(model[1].running_mean.data[0]) == 7.0
    assert list(model.state_dict()) == list(
        nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).state_dict()
    )
    with pytest.raises(
        ValueError, match=r"SyncBatchNorm\(4\): expected input \(N, 4, \.\.\.\), got shape \(4,\)"
    ):
        model[1](nb.randn(4))


def test_replacing_a_child_module_keeps_its_place():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    setattr(model, "1", nn.Tanh())
    assert [type(m).__name__ for m in model] == ["Linear", "Tanh", "Linear"]


def test_loading_a_checkpoint_makes_the_next_fit_synchronize_the_ranks_again(monkeypatch):
    # the restored parameters and random streams are rank 0's: the next fit must broadcast and
    # split them anew, or every rank would draw rank 0's dropout masks
    from nabla.train.parallel import DataParallel

    model = nn.Sequential(nn.Linear(2, 2))
    trainer = Trainer(model, nn.MSELoss(), nb.optim.SGD(model.parameters(), lr=0.1))
    calls = []
    monkeypatch.setattr(dist, "init", lambda: 1)
    monkeypatch.setattr(dist, "broadcast_parameters", lambda m: calls.append("broadcast"))
    monkeypatch.setattr(dist, "split_random_streams", lambda m: calls.append("split"))
    trainer.parallel = DataParallel()
    trainer.parallel.start(model, [])
    trainer.parallel.start(model, [])  # once per training, not per fit
    assert calls == ["broadcast", "split"]
    trainer.load_state_dict(trainer.state_dict())
    trainer.parallel.start(model, [])
    assert calls == ["broadcast", "split", "broadcast", "split"]
