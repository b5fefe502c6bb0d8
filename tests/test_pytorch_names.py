"""PyTorch's spellings: ``dim=`` beside ``axis=``, ``keepdim=`` beside ``keepdims=``, the optimizer
names ``RMSprop`` and ``Adagrad`` with PyTorch's defaults, and a PyTorch training script that runs
on nabla with only its import lines changed."""

from __future__ import annotations

import inspect
import textwrap

import numpy as np
import pytest
import torch

import nabla as nb
from nabla import optim
from nabla.nn import functional as F


@pytest.fixture(autouse=True)
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops on a shared machine: one thread is the fastest
    yield
    torch.set_num_threads(previous)


def data(shape=(3, 4, 5), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


# --- dim= and keepdim= ----------------------------------------------------------------------------

# nabla's call with PyTorch's names, and what torch computes for it (values only where torch
# returns (values, indices); var/std with torch's correction spelled out, as nabla's default ddof
# is NumPy's 0).
REDUCTIONS = {
    "sum": (lambda x, **kw: x.sum(**kw), lambda t, **kw: t.sum(**kw)),
    "mean": (lambda x, **kw: x.mean(**kw), lambda t, **kw: t.mean(**kw)),
    "max": (lambda x, **kw: x.max(**kw), lambda t, **kw: t.amax(**kw)),
    "min": (lambda x, **kw: x.min(**kw), lambda t, **kw: t.amin(**kw)),
    "var": (lambda x, **kw: x.var(ddof=1, **kw), lambda t, **kw: t.var(correction=1, **kw)),
    "std": (lambda x, **kw: x.std(ddof=1, **kw), lambda t, **kw: t.std(correction=1, **kw)),
    "logsumexp": (lambda x, **kw: x.logsumexp(**kw), lambda t, **kw: t.logsumexp(**kw)),
    "argmax": (lambda x, **kw: x.argmax(**kw), lambda t, **kw: t.argmax(**kw)),
    "argmin": (lambda x, **kw: x.argmin(**kw), lambda t, **kw: t.argmin(**kw)),
}


@pytest.mark.parametrize("name", REDUCTIONS)
@pytest.mark.parametrize("dim", [1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_reductions_take_dim_and_keepdim_as_torch_does(name, dim, keepdim):
    ours, theirs = REDUCTIONS[name]
    a = data()
    got = ours(nb.tensor(a, dtype="float64"), dim=dim, keepdim=keepdim)
    expected = theirs(torch.from_numpy(a), dim=dim, keepdim=keepdim).numpy()
    assert got.shape == expected.shape
    np.testing.assert_allclose(got.data, expected, rtol=1e-12)
    # the same as NumPy's spelling
    same = ours(nb.tensor(a, dtype="float64"), axis=dim, keepdims=keepdim)
    np.testing.assert_array_equal(got.data, same.data)


def test_var_and_std_take_torchs_correction_for_ddof():
    a = data()
    x, t = nb.tensor(a, dtype="float64"), torch.from_numpy(a)
    for correction in (0, 1):
        np.testing.assert_allclose(
            x.var(dim=1, correction=correction).data, t.var(dim=1, correction=correction).numpy()
        )
        np.testing.assert_allclose(
            nb.std(x, dim=0, correction=correction).data,
            torch.std(t, dim=0, correction=correction).numpy(),
        )


def test_the_module_functions_take_dim_too():
    a = data()
    x, t = nb.tensor(a, dtype="float64"), torch.from_numpy(a)
    np.testing.assert_allclose(nb.sum(x, dim=(0, 2)).data, torch.sum(t, dim=(0, 2)).numpy())
    np.testing.assert_allclose(
        nb.mean(x, dim=0, keepdim=True).data, torch.mean(t, dim=0, keepdim=True).numpy()
    )
    positive = x > 0
    np.testing.assert_array_equal(positive.any(dim=1).data, (t > 0).any(dim=1).numpy())
    np.testing.assert_array_equal(positive.all(dim=-1).data, (t > 0).all(dim=-1).numpy())


def test_gradients_flow_through_the_pytorch_spelling():
    a = data()
    x = nb.tensor(a, dtype="float64", requires_grad=True)
    t = torch.tensor(a, requires_grad=True)
    (x.logsumexp(dim=1, keepdim=True) * x.mean(dim=-1, keepdim=True)).sum().backward()
    (t.logsumexp(dim=1, keepdim=True) * t.mean(dim=-1, keepdim=True)).sum().backward()
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("fn", ["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_functional_softmax_and_log_softmax_take_dim(fn, dim):
    a = data()
    got = getattr(F, fn)(nb.tensor(a, dtype="float64"), dim=dim)
    expected = getattr(torch.nn.functional, fn)(torch.from_numpy(a), dim=dim).numpy()
    np.testing.assert_allclose(got.data, expected, rtol=1e-12, atol=1e-15)
    method = getattr(nb.tensor(a, dtype="float64"), fn)(dim=dim)
    np.testing.assert_array_equal(method.data, got.data)


def test_joining_and_reshaping_take_dim():
    a, b = data((2, 3)), data((2, 3), seed=1)
    x, y, t, u = nb.tensor(a), nb.tensor(b), torch.from_numpy(a), torch.from_numpy(b)
    for ours, theirs in [
        (nb.cat([x, y], dim=1), torch.cat([t, u], dim=1)),
        (nb.concatenate([x, y], dim=-1), torch.concatenate([t, u], dim=-1)),
        (nb.stack([x, y], dim=1), torch.stack([t, u], dim=1)),
        (x.unsqueeze(dim=1), t.unsqueeze(dim=1)),
        (nb.unsqueeze(x, dim=0).squeeze(dim=0), t.unsqueeze(0).squeeze(dim=0)),
    ]:
        assert ours.shape == tuple(theirs.shape)
        np.testing.assert_allclose(ours.data, theirs.numpy(), rtol=1e-6)


CONFLICTS = [
    ("sum", lambda x: x.sum(axis=0, dim=1)),
    ("sum", lambda x: x.sum(0, dim=1)),  # axis given by position
    ("mean", lambda x: x.mean(axis=1, keepdims=True, keepdim=False)),
    ("mean", lambda x: x.mean(1, True, keepdim=False)),
    ("softmax", lambda x: F.softmax(x, axis=0, dim=1)),
    ("log_softmax", lambda x: x.log_softmax(-1, dim=0)),
    ("concatenate", lambda x: nb.cat([x, x], axis=0, dim=1)),
    ("argmax", lambda x: x.argmax(axis=0, dim=-1)),
    ("var", lambda x: x.var(ddof=0, correction=1)),
]


@pytest.mark.parametrize(
    ("name", "call"), CONFLICTS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFLICTS)]
)
def test_two_different_spellings_of_one_argument_are_a_type_error(name, call):
    x = nb.tensor(data((2, 3)))
    with pytest.raises(
        TypeError, match=rf"{name}\(\).*(axis|keepdims|ddof).*(dim|keepdim|correction)"
    ):
        call(x)


def test_two_equal_spellings_are_accepted():
    x = nb.tensor(data((2, 3)))
    np.testing.assert_array_equal(
        x.sum(axis=1, dim=1, keepdims=True, keepdim=True).data, x.sum(axis=1, keepdims=True).data
    )
    np.testing.assert_array_equal(F.softmax(x, -1, dim=-1).data, F.softmax(x).data)


def test_the_signatures_show_both_spellings():
    params = inspect.signature(nb.sum).parameters
    assert list(params)[:3] == ["x", "axis", "keepdims"]
    assert params["dim"].kind is inspect.Parameter.KEYWORD_ONLY
    assert params["keepdim"].kind is inspect.Parameter.KEYWORD_ONLY
    assert "keepdim" not in inspect.signature(F.softmax).parameters
    with pytest.raises(TypeError, match="keepdim"):
        F.softmax(nb.tensor(data((2, 3))), dim=1, keepdim=True)  # softmax keeps every axis


# --- optimizer names ----------------------------------------------------------------------------


def one_model_each(seed: int = 0):
    rng = np.random.default_rng(seed)
    w0, b0 = rng.standard_normal((3, 4)), rng.standard_normal(3)
    ours = [
        nb.tensor(w0, dtype="float64", requires_grad=True),
        nb.tensor(b0, dtype="float64", requires_grad=True),
    ]
    theirs = [torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)]
    return ours, theirs


def run_both(make_ours, make_theirs, steps: int = 5):
    (w, b), (tw, tb) = one_model_each()
    x = data((8, 4), seed=2)
    opt, topt = make_ours([w, b]), make_theirs([tw, tb])
    xn, xt = nb.tensor(x, dtype="float64"), torch.from_numpy(x)
    for _ in range(steps):
        opt.zero_grad()
        ((xn @ w.T + b) ** 2).mean().backward()
        opt.step()
        topt.zero_grad()
        ((xt @ tw.T + tb) ** 2).mean().backward()
        topt.step()
    np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(b.data, tb.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_rmsprop_by_pytorch_name_has_pytorch_defaults():
    assert issubclass(optim.RMSprop, optim.RMSProp) and "RMSprop" in optim.__all__
    run_both(lambda p: optim.RMSprop(p, lr=0.01), lambda p: torch.optim.RMSprop(p, lr=0.01))
    run_both(
        lambda p: optim.RMSprop(p, 0.01, alpha=0.9, momentum=0.5, centered=True),
        lambda p: torch.optim.RMSprop(p, 0.01, alpha=0.9, momentum=0.5, centered=True),
    )
    w = nb.zeros(2, requires_grad=True)
    assert optim.RMSProp([w], alpha=0.8).param_groups[0]["beta"] == 0.8  # PyTorch's name
    with pytest.raises(TypeError, match=r"alpha.*beta"):
        optim.RMSProp([w], alpha=0.8, beta=0.9)


def test_adagrad_by_pytorch_name():
    assert optim.Adagrad is optim.AdaGrad and "Adagrad" in optim.__all__
    run_both(lambda p: optim.Adagrad(p, lr=0.1), lambda p: torch.optim.Adagrad(p, lr=0.1))


def test_the_learning_rate_may_come_second_by_position():
    run_both(lambda p: optim.Adam(p, 0.01), lambda p: torch.optim.Adam(p, 0.01))
    run_both(
        lambda p: optim.SGD(p, 0.1, momentum=0.9), lambda p: torch.optim.SGD(p, 0.1, momentum=0.9)
    )


# --- a PyTorch script, ported by its imports ------------------------------------------------------

PYTORCH_SCRIPT = textwrap.dedent(
    """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torch.optim as optim


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 16)
            self.fc2 = nn.Linear(16 + 1, 3)

        def forward(self, x):
            h = F.relu(self.fc1(x))
            norm = (x * x).sum(dim=1, keepdim=True).sqrt()
            h = torch.cat([h, norm], dim=1)
            return F.log_softmax(self.fc2(h), dim=1)


    def run(make_optimizer, steps=25):
        model = Net()
        model.load_state_dict({k: torch.tensor(v) for k, v in INITIAL.items()})
        optimizer = make_optimizer(model.parameters())
        x, y = torch.tensor(X), torch.tensor(Y)
        x = (x - x.mean(dim=0, keepdim=True)) / x.std(dim=0, keepdim=True, correction=1)
        losses = []
        for _ in range(steps):
            optimizer.zero_grad()
            loss = F.nll_loss(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        with torch.no_grad():
            accuracy = (model(x).argmax(dim=1) == y).float().mean().item()
        return losses, accuracy


    results = {
        "rmsprop": run(lambda p: optim.RMSprop(p, lr=0.01)),
        "adam": run(lambda p: optim.Adam(p, lr=0.02)),
        "adagrad": run(lambda p: optim.Adagrad(p, lr=0.1)),
    }
    """
)

PORTED_IMPORTS = {
    "import torch\n": "import nabla as torch\n",
    "import torch.nn as nn\n": "import nabla.nn as nn\n",
    "import torch.nn.functional as F\n": "import nabla.nn.functional as F\n",
    "import torch.optim as optim\n": "import nabla.optim as optim\n",
}


def port(source: str) -> str:
    """The script with its import lines, and nothing else, pointed at nabla."""
    for line, ported in PORTED_IMPORTS.items():
        assert source.count(line) == 1, line
        source = source.replace(line, ported)
    return source


def test_a_pytorch_training_script_runs_with_only_its_imports_changed():
    rng = np.random.default_rng(0)
    inputs = {
        "INITIAL": {
            "fc1.weight": rng.uniform(-0.5, 0.5, (16, 4)).astype(np.float32),
            "fc1.bias": rng.uniform(-0.5, 0.5, 16).astype(np.float32),
            "fc2.weight": rng.uniform(-0.25, 0.25, (3, 17)).astype(np.float32),
            "fc2.bias": rng.uniform(-0.25, 0.25, 3).astype(np.float32),
        },
        "X": rng.standard_normal((64, 4)).astype(np.float32) * 3 + 1,
        "Y": rng.integers(0, 3, 64),
    }
    theirs, ours = dict(inputs), dict(inputs)
    exec(PYTORCH_SCRIPT, theirs)
    exec(port(PYTORCH_SCRIPT), ours)
    assert ours["torch"] is nb
    for name, (losses, accuracy) in theirs["results"].items():
        ported_losses, ported_accuracy = ours["results"][name]
        assert losses[-1] < 0.9 * losses[0], name  # it trains
        np.testing.assert_allclose(ported_losses, losses, rtol=2e-4, err_msg=name)
        assert ported_accuracy == pytest.approx(accuracy, abs=1.5 / 64), name
