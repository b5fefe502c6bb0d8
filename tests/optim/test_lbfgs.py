"""L-BFGS: step-for-step parity with torch.optim.LBFGS, convergence, errors and resuming."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nabla as nb
from nabla import models, optim
from nabla.nn import functional as F
from nabla.optim.lbfgs import strong_wolfe


def mlp_pair(seed: int):
    """nabla's mlp([5, 8, 3]) in float64 and the same network in torch, with equal weights."""
    nb.manual_seed(seed)
    model = models.mlp([5, 8, 3]).double()
    twin = torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)
    ).double()
    twin.load_state_dict(
        {k: torch.from_numpy(v.numpy().copy()) for k, v in model.state_dict().items()}
    )
    return model, twin


def flat(params) -> np.ndarray:
    return np.concatenate(
        [np.asarray(p.detach() if isinstance(p, torch.Tensor) else p.data).ravel() for p in params]
    )


def classifier_closures(model, twin, opt, twin_opt, seed: int, n: int = 256):
    """Full-batch cross-entropy closures for both frameworks, on the same seeded data (256
    samples with random labels: not separable, so the weights stay bounded)."""
    rng = np.random.default_rng(seed)
    X, y = rng.standard_normal((n, 5)), rng.integers(0, 3, n)
    Xn, yn = nb.tensor(X, dtype="float64"), nb.tensor(y)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(Xn), yn)
        loss.backward()
        return loss

    def twin_closure():
        twin_opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(twin(Xt), yt)
        loss.backward()
        return loss

    return closure, twin_closure


def relative_gap(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize(
    "settings, steps",
    [
        ({"max_iter": 1}, 120),
        ({"max_iter": 2, "history_size": 3}, 100),  # the history is full after 3 iterations
        # 20 fixed-size steps at a time: beyond ~300 of them, rounding differences of one ulp (in
        # the matmuls and BLAS dot products) grow chaotically on this non-convex loss
        ({}, 15),
    ],
)
def test_matches_torch_without_line_search(settings, steps):
    model, twin = mlp_pair(0)
    opt, twin_opt = (
        optim.LBFGS(model.parameters(), **settings),
        torch.optim.LBFGS(twin.parameters(), **settings),
    )
    closure, twin_closure = classifier_closures(model, twin, opt, twin_opt, seed=1)
    for _ in range(steps):
        loss, twin_loss = float(opt.step(closure)), twin_opt.step(twin_closure).item()
        assert loss == pytest.approx(twin_loss, rel=1e-6)
        assert relative_gap(flat(model.parameters()), flat(twin.parameters())) <= 1e-6
    twin_state = twin_opt.state[next(iter(twin.parameters()))]
    assert opt.state_dict()["lbfgs"]["func_evals"] == twin_state["func_evals"]
    assert opt.state_dict()["lbfgs"]["n_iter"] == twin_state["n_iter"]


@pytest.mark.parametrize("history_size", [100, 3])
def test_matches_torch_with_strong_wolfe(history_size):
    model, twin = mlp_pair(0)
    settings = {"max_iter": 5, "history_size": history_size}
    opt = optim.LBFGS(model.parameters(), line_search="strong_wolfe", **settings)
    twin_opt = torch.optim.LBFGS(twin.parameters(), line_search_fn="strong_wolfe", **settings)
    closure, twin_closure = classifier_closures(model, twin, opt, twin_opt, seed=1)
    for _ in range(10):
        loss, twin_loss = float(opt.step(closure)), twin_opt.step(twin_closure).item()
        assert loss == pytest.approx(twin_loss, rel=1e-6)
        assert relative_gap(flat(model.parameters()), flat(twin.parameters())) <= 1e-6
    twin_state = twin_opt.state[next(iter(twin.parameters()))]
    assert opt.state_dict()["lbfgs"]["func_evals"] == twin_state["func_evals"]


def rosenbrock_and_gradient(x: np.ndarray):
    """Rosenbrock's function 100 (x1 - x0^2)^2 + (1 - x0)^2 and its gradient."""
    r = x[1] - x[0] ** 2
    f = float(100 * r**2 + (1 - x[0]) ** 2)
    return f, np.array([-400 * x[0] * r - 2 * (1 - x[0]), 200 * r])


@pytest.mark.parametrize("t0", [1e-3, 0.1, 1.0, 30.0])
@pytest.mark.parametrize("max_evals", [0, 2, 25])
def test_line_search_matches_torch(t0, max_evals):
    torch_search = getattr(pytest.importorskip("torch.optim.lbfgs"), "_strong_wolfe", None)
    if torch_search is None:
        pytest.skip("torch.optim.lbfgs no longer has _strong_wolfe")
    # The search sees only f and the slope g^T d along the line, so a line through Rosenbrock's
    # function with a one-element d tests all of it, and every slope is one product: exact in
    # both frameworks (longer dot products round differently in NumPy's and torch's BLAS, and
    # the cubic step can amplify that when its two points nearly coincide).
    rng = np.random.default_rng(0)
    for _ in range(8):
        x = rng.uniform(-2, 2, 2)
        v = -rosenbrock_and_gradient(x)[1] * rng.uniform(0.2, 2.0, 2)  # a descent direction

        def along(u, x=x, v=v):
            f, g = rosenbrock_and_gradient(x + u[0] * v)
            return f, np.array([g @ v])

        d = np.array([rng.uniform(0.5, 2.0)]) / np.abs(v).max()
        f, g = along(np.zeros(1))

        def obj_func(_, t, d_torch, along=along, d=d):
            f_t, g_t = along(float(t) * d)
            return f_t, torch.from_numpy(g_t)

        t, f_t, g_t, calls = strong_wolfe(
            lambda t, along=along, d=d: along(t * d), t0, d, f, g, float(g @ d), max_evals=max_evals
        )
        expected = torch_search(
            obj_func,
            None,
            t0,
            torch.from_numpy(d),
            f,
            torch.from_numpy(g),
            torch.tensor(float(g @ d), dtype=torch.float64),
            max_ls=max_evals,
        )
        # equal up to an ulp: torch divides a float by a tensor as reciprocal-then-multiply
        assert calls == expected[3]
        assert t == pytest.approx(float(expected[2]), rel=1e-13)
        assert f_t == pytest.approx(float(expected[0]), rel=1e-13)
        np.testing.assert_allclose(g_t, expected[1].numpy(), rtol=1e-12)


def count_calls(opt_step, closure):
    calls = 0

    def counted():
        nonlocal calls
        calls += 1
        return closure()

    opt_step(counted)
    return calls


def test_solves_rosenbrock_with_strong_wolfe():
    settings = {
        "max_iter": 500,
        "max_eval": 1000,
        "tolerance_grad": 1e-12,
        "tolerance_change": 1e-15,
    }
    x = nb.tensor([-1.5, 2.0], dtype="float64", requires_grad=True)
    opt = optim.LBFGS([x], line_search="strong_wolfe", **settings)
    xt = torch.tensor([-1.5, 2.0], dtype=torch.float64, requires_grad=True)
    twin_opt = torch.optim.LBFGS([xt], line_search_fn="strong_wolfe", **settings)

    def closure():
        opt.zero_grad()
        loss = (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
        loss.backward()
        return loss

    def twin_closure():
        twin_opt.zero_grad()
        loss = (1 - xt[0]) ** 2 + 100 * (xt[1] - xt[0] ** 2) ** 2
        loss.backward()
        return loss

    calls, twin_calls = count_calls(opt.step, closure), count_calls(twin_opt.step, twin_closure)
    print(f"closure calls: nabla {calls}, torch {twin_calls}")
    np.testing.assert_allclose(x.data, [1.0, 1.0], atol=1e-6)
    assert calls <= 1.2 * twin_calls
    assert opt.state_dict()["lbfgs"]["func_evals"] == calls


@pytest.mark.parametrize("line_search", [None, "strong_wolfe"])
def test_solves_logistic_regression(line_search):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 5))
    labels = (X @ rng.standard_normal(5) + rng.standard_normal(200) > 0).astype(np.float64)
    settings = {"max_iter": 200, "max_eval": 400, "tolerance_grad": 1e-9, "tolerance_change": 1e-12}
    w = nb.zeros(5, dtype="float64", requires_grad=True)
    b = nb.zeros(1, dtype="float64", requires_grad=True)
    opt = optim.LBFGS([w, b], line_search=line_search, **settings)
    wt = torch.zeros(5, dtype=torch.float64, requires_grad=True)
    bt = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    twin_opt = torch.optim.LBFGS([wt, bt], line_search_fn=line_search, **settings)
    Xn, yn = nb.tensor(X, dtype="float64"), nb.tensor(labels, dtype="float64")
    Xt, yt = torch.from_numpy(X), torch.from_numpy(labels)

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(Xn @ w + b, yn)
        loss.backward()
        return loss

    def twin_closure():
        twin_opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(Xt @ wt + bt, yt)
        loss.backward()
        return loss

    calls, twin_calls = count_calls(opt.step, closure), count_calls(twin_opt.step, twin_closure)
    print(f"closure calls: nabla {calls}, torch {twin_calls}")
    closure()
    assert np.linalg.norm(np.concatenate([w.grad, b.grad])) < 1e-6
    assert calls <= 1.2 * twin_calls


def quadratic_closure(opt, w):
    def closure():
        opt.zero_grad()
        loss = ((w - 1.0) ** 2).sum()
        loss.backward()
        return loss

    return closure


def test_step_needs_a_closure():
    w = nb.tensor([3.0, -1.0], dtype="float64", requires_grad=True)
    with pytest.raises(TypeError, match="closure"):
        optim.LBFGS([w]).step()


def test_one_parameter_group_only():
    w, v = (nb.tensor([1.0], requires_grad=True) for _ in range(2))
    with pytest.raises(ValueError, match="one parameter group"):
        optim.LBFGS([{"params": [w]}, {"params": [v]}])
    opt = optim.LBFGS([w])
    with pytest.raises(ValueError, match="one parameter group"):
        opt.add_param_group({"params": [v]})


@pytest.mark.parametrize(
    "settings",
    [
        {"line_search": "armijo"},
        {"max_iter": 0},
        {"history_size": 0},
        {"tolerance_grad": -1.0},
        {"lr": -1.0},
    ],
)
def test_rejects_bad_settings(settings):
    with pytest.raises(ValueError):
        optim.LBFGS([nb.tensor([1.0], requires_grad=True)], **settings)


def test_line_search_fn_is_torchs_name():
    w = nb.tensor([3.0, -1.0], dtype="float64", requires_grad=True)
    opt = optim.LBFGS([w], line_search_fn="strong_wolfe")
    assert opt.param_groups[0]["line_search"] == "strong_wolfe"
    opt.step(quadratic_closure(opt, w))
    np.testing.assert_allclose(w.data, [1.0, 1.0])


@pytest.mark.parametrize("line_search", [None, "strong_wolfe"])
def test_state_dict_resumes_identically(line_search):
    settings = {"max_iter": 3, "history_size": 3, "line_search": line_search}
    model, _ = mlp_pair(0)
    opt = optim.LBFGS(model.named_parameters(), **settings)
    closure, _ = classifier_closures(model, None, opt, None, seed=1)
    for _ in range(4):
        opt.step(closure)
    saved = opt.state_dict()
    resumed, _ = mlp_pair(5)  # other weights: everything comes from the checkpoints
    resumed.load_state_dict(model.state_dict())
    resumed_opt = optim.LBFGS(resumed.named_parameters(), **settings)
    resumed_opt.load_state_dict(saved)
    resumed_closure, _ = classifier_closures(resumed, None, resumed_opt, None, seed=1)
    for _ in range(4):
        assert float(opt.step(closure)) == float(resumed_opt.step(resumed_closure))
    np.testing.assert_array_equal(flat(model.parameters()), flat(resumed.parameters()))
    assert opt.state_dict()["lbfgs"] == resumed_opt.state_dict()["lbfgs"]
