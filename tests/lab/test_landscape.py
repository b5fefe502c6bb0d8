"""Loss landscapes: filter-wise normalization, interpolation and slices on a real nabla model, and
``nabla lab landscape`` end to end on a run folder written by ``nabla train``."""

import json

import numpy as np
import pytest

import nabla as nb
from nabla import nn
from nabla.cli import main
from nabla.lab import landscape as ls
from nabla.lab.experiments import skip_connections


@pytest.fixture
def small():
    """A conv + BN + linear model, 40 samples of 8x8 images and an evaluator."""
    nb.manual_seed(3)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(4 * 8 * 8, 5),
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 5, 40)
    model.train()
    model(nb.tensor(x))  # move BN's running statistics away from their defaults
    return model, ls.LossEvaluator(model, x, y, batch_size=16), x, y


def reference_loss(model, x, y):
    """Cross-entropy of all samples at once, computed with NumPy from the logits."""
    model.eval()
    with nb.no_grad():
        logits = model(nb.tensor(x)).data.astype(np.float64)
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean()


def test_filter_normalization_gives_each_filter_the_norm_of_the_weights_filter(small):
    model = small[0]
    theta = ls.get_weights(model)
    d = ls.random_direction(theta, np.random.default_rng(1))
    assert d.keys() == theta.keys()
    for name, w in theta.items():
        if w.ndim <= 1:  # biases, BN weight and bias
            assert np.all(d[name] == 0), name
        else:
            axes = tuple(range(1, w.ndim))
            want = np.sqrt((w.astype(np.float64) ** 2).sum(axis=axes))
            got = np.sqrt((d[name].astype(np.float64) ** 2).sum(axis=axes))
            np.testing.assert_allclose(got, want, rtol=1e-5)
            assert d[name].shape == w.shape and d[name].dtype == w.dtype
    # the direction stays random: not a multiple of the weights
    w, v = theta["0.weight"].ravel(), d["0.weight"].ravel()
    assert abs(w @ v) / (np.linalg.norm(w) * np.linalg.norm(v)) < 0.9


def test_the_evaluator_is_the_mean_loss_over_all_batches(small):
    model, evaluate, x, y = small
    loss, accuracy = evaluate()
    assert loss == pytest.approx(reference_loss(model, x, y), rel=1e-5)
    with nb.no_grad():
        predicted = model(nb.tensor(x)).data.argmax(1)
    assert accuracy == pytest.approx(np.mean(predicted == y))


def test_interpolation_endpoints_are_the_losses_of_both_weights(small):
    model, evaluate, x, y = small
    theta_b = ls.get_weights(model)
    theta_a = ls.random_direction(theta_b, np.random.default_rng(2), normalize=False)
    alphas = ls.interpolation_alphas(9)
    assert alphas[0] == -0.5 and alphas[-1] == 1.5 and 0.0 in alphas and 1.0 in alphas
    curve = ls.interpolate(model, evaluate, theta_a, theta_b, alphas)
    at = {a: i for i, a in enumerate(alphas)}
    assert curve.loss[at[1.0]] == evaluate()[0]  # the model holds theta_b again
    ls.set_weights(model, theta_a)
    assert curve.loss[at[0.0]] == evaluate()[0]
    ls.set_weights(
        model, {k: 0.5 * a + 0.5 * b for (k, a), b in zip(theta_a.items(), theta_b.values())}
    )
    assert curve.loss[at[0.5]] == pytest.approx(reference_loss(model, x, y), rel=1e-4)


def test_a_slice_restores_parameters_buffers_and_mode(small):
    model, evaluate, _, _ = small
    model.train()
    model[1].eval()  # a frozen batch norm inside a training model keeps its own mode
    before = {k: v.data.copy() for k, v in model.state_dict().items()}
    params = [p.data for p in model.parameters()]
    theta = ls.get_weights(model)
    delta, eta = (ls.random_direction(theta, np.random.default_rng(s)) for s in (4, 5))
    ls.slice_2d(model, evaluate, theta, delta, eta, [-1.0, 0.5], [0.25, 1.0])
    ls.slice_1d(model, evaluate, theta, delta, [-1.0, 1.0])
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k].data) for k in before)
    assert all(a is p.data for a, p in zip(params, model.parameters()))  # restored in place
    assert model.training and model[0].training and not model[1].training


def test_the_2d_slice_at_the_origin_is_the_models_loss(small):
    model, evaluate, _, _ = small
    theta = ls.get_weights(model)
    rng = np.random.default_rng(6)
    delta, eta = ls.random_direction(theta, rng), ls.random_direction(theta, rng)
    grid = ls.symmetric_grid(1.0, 5)
    assert grid[2] == 0.0
    surface = ls.slice_2d(model, evaluate, theta, delta, eta, grid, grid)
    assert surface.loss.shape == (5, 5)
    assert surface.loss[2, 2] == evaluate()[0]
    # off the origin the loss moves, and along each axis it is the 1-D slice
    assert not np.allclose(surface.loss, surface.loss[2, 2])
    np.testing.assert_array_equal(
        ls.slice_1d(model, evaluate, theta, delta, grid).loss, surface.loss[:, 2]
    )


def test_nonconvexity_is_zero_on_a_bowl_and_one_on_a_saddle():
    grid = ls.symmetric_grid(1.0, 11)
    a, b = np.meshgrid(grid, grid, indexing="ij")
    assert np.all(ls.nonconvexity(a**2 + 3 * b**2 + a * b, grid[1]) == 0)
    r = ls.nonconvexity(a**2 - 0.5 * b**2, grid[1] - grid[0])
    np.testing.assert_allclose(r, 0.5)  # |λ_min / λ_max| = 1 / 2
    assert np.all(ls.nonconvexity(-(a**2) - b**2, grid[1] - grid[0]) == 1)


def test_bad_grids_are_refused():
    with pytest.raises(ValueError, match="odd"):
        ls.symmetric_grid(1.0, 4)
    with pytest.raises(ValueError, match="span"):
        ls.symmetric_grid(0.0, 5)
    with pytest.raises(ValueError, match="4k"):
        ls.interpolation_alphas(10)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A run folder of `nabla train` (1 epoch) and the initial parameters and the model that
    run.train created, recorded as they were made."""
    from nabla.train import run as runs

    created = {}

    class Recording(runs.Run):
        def __init__(self, cfg, directory, *args):
            super().__init__(cfg, directory, *args)
            created.setdefault("init", {k: p.data.copy() for k, p in self.model.named_parameters()})
            created["model"] = self.model

    folder = tmp_path_factory.mktemp("landscape") / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runs, "Run", Recording)
        args = [
            "train",
            "--epochs",
            "1",
            "--hidden",
            "16",
            "--seed",
            "5",
            "--out",
            str(folder),
            "--quiet",
        ]
        assert main(args) == 0
    return folder, created


def test_initial_weights_are_rebuilt_bit_for_bit(trained_run):
    """run_weights rebuilds the weights that run.train started from and loads the trained ones
    from the checkpoint."""
    folder, created = trained_run
    rebuilt, theta_init, theta = ls.run_weights(folder)
    assert theta_init.keys() == created["init"].keys()
    for k, w in created["init"].items():
        assert np.array_equal(theta_init[k], w) and theta_init[k].dtype == w.dtype, k
    trained = dict(created["model"].named_parameters())
    assert all(np.array_equal(theta[k], trained[k].data) for k in theta)
    assert not all(np.array_equal(theta[k], theta_init[k]) for k in theta)
    assert all(np.array_equal(theta[k], p.data) for k, p in rebuilt.model.named_parameters())


def test_the_command_end_to_end(trained_run, tmp_path, capsys):
    folder = trained_run[0]
    out = tmp_path / "landscape"
    args = [
        "lab",
        "landscape",
        str(folder),
        "--points",
        "5",
        "--samples",
        "64",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    for name in ("interpolation", "slice-1d", "contour", "surface", "nonconvexity"):
        assert (out / f"{name}.png").stat().st_size > 1000, name
    facts = json.loads((out / "landscape.json").read_text())
    arrays = nb.load(out / "landscape.safetensors")
    assert arrays["slice_2d.loss"].shape == (5, 5) and arrays["interpolation.loss"].shape == (17,)
    assert facts["samples"] == 64 and facts["loss_trained"] < facts["loss_init"]
    assert facts["slice_2d_centre"] == facts["loss_trained"]  # both are θ_trained exactly
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5
    # on the whole training split the trained loss is what `nabla evaluate --split train` says
    out_all = tmp_path / "all"
    args = [
        "lab",
        "landscape",
        str(folder),
        "--points",
        "3",
        "--samples",
        "100000",
        "--out",
        str(out_all),
        "--quiet",
    ]
    assert main(args) == 0
    whole = json.loads((out_all / "landscape.json").read_text())
    from nabla.train.run import evaluate

    assert whole["loss_trained"] == pytest.approx(evaluate(folder, "train")["loss"], rel=1e-5)
    assert main(["lab", "landscape", str(folder), "--points", "4", "--quiet"]) == 2
    assert "odd" in capsys.readouterr().err
    assert main(["lab", "landscape", str(tmp_path / "nothing"), "--quiet"]) == 2
    assert not (folder / "landscape").exists()  # --out was respected


def test_the_experiments_networks_differ_only_in_the_shortcut():
    nb.manual_seed(0)
    plain = skip_connections.deep_mlp(8, 6, 4, 3, skip=False)
    nb.manual_seed(0)
    residual = skip_connections.deep_mlp(8, 6, 4, 3, skip=True)
    a, b = plain.state_dict(), residual.state_dict()
    assert a.keys() == b.keys() and all(np.array_equal(a[k].data, b[k].data) for k in a)
    assert sum(isinstance(m, nn.Linear) for m in plain.modules()) == 8
    x = nb.randn(5, 4)
    assert not np.allclose(plain(x).data, residual(x).data)
    grid = ls.symmetric_grid(1.0, 5)
    f = np.add.outer(grid**2, grid**2)
    f[2, 2] = -1.0  # one pit
    assert skip_connections.local_minima(f) == 1
    with pytest.raises(ValueError, match="even"):
        skip_connections.deep_mlp(7, 6, 4, 3, skip=True)
