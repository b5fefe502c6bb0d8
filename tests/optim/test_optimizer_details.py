"""Details of the optimizers that the algorithm tests leave open.

test_parity.py and test_conventions.py hold the updates to PyTorch and to the formulas; this file
pins the rest: the default hyperparameters (PyTorch's, read from torch.optim's signatures), the
exact boundaries of every argument check (the boundary value passes, the first invalid one is
refused with a message naming the optimizer, the setting and the value), the error paths of
building an optimizer and loading a state_dict, gradient clipping at its edges, the statistics
helpers and the printed form.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
import torch

import nabla as nb
from nabla import optim
from nabla.optim.lbfgs import _Point, cubic_minimizer

# --- defaults: PyTorch's ---------------------------------------------------------------------------


def torch_defaults(cls) -> dict:
    return {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def one_param(values=(1.0, -2.0), dtype="float64"):
    return [nb.tensor(list(values), dtype=dtype, requires_grad=True)]


# (ours, theirs, {our setting: a function of torch's defaults giving its value})
DEFAULTS = [
    (optim.Adam, torch.optim.Adam, {
        "lr": lambda d: d["lr"], "beta1": lambda d: d["betas"][0],
        "beta2": lambda d: d["betas"][1], "eps": lambda d: d["eps"],
        "weight_decay": lambda d: d["weight_decay"], "amsgrad": lambda d: d["amsgrad"],
        "decoupled_weight_decay": lambda d: d["decoupled_weight_decay"],
    }),
    (optim.AdamW, torch.optim.AdamW, {
        "lr": lambda d: d["lr"], "beta1": lambda d: d["betas"][0],
        "beta2": lambda d: d["betas"][1], "eps": lambda d: d["eps"],
        "weight_decay": lambda d: d["weight_decay"], "amsgrad": lambda d: d["amsgrad"],
    }),
    (optim.Adagrad, torch.optim.Adagrad, {
        "lr": lambda d: d["lr"], "eps": lambda d: d["eps"],
        "weight_decay": lambda d: d["weight_decay"],
        "initial_accumulator_value": lambda d: d["initial_accumulator_value"],
    }),
    (optim.RMSprop, torch.optim.RMSprop, {
        "lr": lambda d: d["lr"], "beta": lambda d: d["alpha"], "eps": lambda d: d["eps"],
        "weight_decay": lambda d: d["weight_decay"], "momentum": lambda d: d["momentum"],
        "centered": lambda d: d["centered"],
    }),
    (optim.SGD, torch.optim.SGD, {
        "momentum": lambda d: d["momentum"], "dampening": lambda d: d["dampening"],
        "weight_decay": lambda d: d["weight_decay"], "nesterov": lambda d: d["nesterov"],
    }),
    (optim.LBFGS, torch.optim.LBFGS, {
        "lr": lambda d: d["lr"], "max_iter": lambda d: d["max_iter"],
        "max_eval": lambda d: d["max_eval"], "tolerance_grad": lambda d: d["tolerance_grad"],
        "tolerance_change": lambda d: d["tolerance_change"],
        "history_size": lambda d: d["history_size"], "line_search": lambda d: d["line_search_fn"],
    }),
]  # fmt: skip


@pytest.mark.parametrize(
    "ours, theirs, expected", DEFAULTS, ids=lambda x: getattr(x, "__name__", "")
)
def test_defaults_are_pytorchs(ours, theirs, expected):
    group = ours(one_param()).param_groups[0]
    their_defaults = torch_defaults(theirs)
    for name, value in expected.items():
        assert group[name] == value(their_defaults), name


def test_sgd_default_lr_is_keras_001_not_torchs():
    """SGD's lr defaults to 0.01, Keras' value (PyTorch's 1e-3 arrived only when torch made lr
    optional); the difference is stated in docs/optimizers.md, and this pins it."""
    assert optim.SGD(one_param()).param_groups[0]["lr"] == 0.01
    assert torch_defaults(torch.optim.SGD)["lr"] == 1e-3


def test_rmsprop_keeps_the_lectures_decay_rate():
    assert optim.RMSProp(one_param()).param_groups[0]["beta"] == 0.9
    assert optim.RMSprop(one_param()).param_groups[0]["beta"] == 0.99


def test_lbfgs_max_eval_defaults_to_max_iter_times_five_quarters():
    """PyTorch's max_eval = max_iter * 5 // 4: with a line search that keeps failing, the
    closure calls stop there (the same count as torch.optim.LBFGS)."""

    def count_calls(make, max_iter, **kwargs):
        calls = []
        w = make()
        opt = (optim.LBFGS if isinstance(w, nb.Tensor) else torch.optim.LBFGS)(
            [w], max_iter=max_iter, line_search_fn="strong_wolfe", **kwargs
        )

        def closure():
            calls.append(1)
            opt.zero_grad()
            loss = ((w - 1.0) ** 4).sum() + (w**2).sum() * 0.1
            loss.backward()
            return loss

        opt.step(closure)
        return len(calls)

    for max_iter in (1, 4, 9):
        ours = count_calls(lambda: nb.tensor([5.0, -3.0], dtype="float64", requires_grad=True),
                           max_iter)  # fmt: skip
        theirs = count_calls(lambda: torch.tensor([5.0, -3.0], dtype=torch.float64,
                                                  requires_grad=True), max_iter)  # fmt: skip
        assert ours == theirs


# --- argument checks: each boundary on both sides -----------------------------------------------

# (class, valid settings, invalid settings, the message the invalid ones raise)
BOUNDARIES = [
    (optim.SGD, {"lr": 0.0}, {"lr": -1e-12}, r"SGD: lr must be >= 0, got -1e-12"),
    (optim.SGD, {"weight_decay": 0.0}, {"weight_decay": -0.5},
     r"SGD: weight_decay must be >= 0, got -0.5"),
    (optim.Adam, {"eps": 0.0}, {"eps": -1e-9}, r"Adam: eps must be >= 0, got -1e-09"),
    (optim.SGD, {"decoupled_weight_decay": np.bool_(True)}, {"decoupled_weight_decay": 1},
     r"SGD: decoupled_weight_decay must be True or False, got 1"),
    (optim.AdaGrad, {"eps_inside_sqrt": True}, {"eps_inside_sqrt": "yes"},
     r"AdaGrad: eps_inside_sqrt must be True or False, got 'yes'"),
    (optim.SGD, {"momentum": 0.0}, {"momentum": -0.1}, r"SGD: momentum must be in \[0, 1\), got -0.1"),
    (optim.SGD, {"momentum": 0.999}, {"momentum": 1.0}, r"SGD: momentum must be in \[0, 1\), got 1.0"),
    (optim.SGD, {"momentum": lambda t: 0.0 if t == 0 else 0.9, "nesterov": True},
     {"momentum": 0.0, "nesterov": True}, r"SGD: nesterov=True needs momentum > 0"),
    (optim.SGD, {"dampening": 0.0}, {"dampening": -0.1},
     r"SGD: dampening must be in \[0, 1\], got -0.1"),
    (optim.SGD, {"dampening": 1.0}, {"dampening": 1.5},
     r"SGD: dampening must be in \[0, 1\], got 1.5"),
    (optim.SGD, {"momentum": 0.9, "nesterov": True, "dampening": 0.0},
     {"momentum": 0.9, "nesterov": True, "dampening": 0.1},
     r"SGD: nesterov=True needs dampening = 0 \(as in PyTorch\)"),
    (optim.SGD, {"momentum": 0.9, "nesterov": True},
     {"momentum": 0.9, "nesterov": True, "dampening": lambda t: 0.0},
     r"SGD: nesterov=True needs dampening = 0"),
    (optim.Adam, {"beta1": 0.0}, {"beta1": -0.1}, r"Adam: beta1 must be in \[0, 1\), got -0.1"),
    (optim.Adam, {"beta2": 0.0}, {"beta2": 1.0}, r"Adam: beta2 must be in \[0, 1\), got 1.0"),
    (optim.AdamW, {"beta1": 0.5}, {"beta1": 1.0}, r"AdamW: beta1 must be in \[0, 1\), got 1.0"),
    (optim.Adam, {"bias_correction": "none"}, {"bias_correction": "None"},
     r"Adam: bias_correction must be one of \('explicit', 'folded', 'none'\), got 'None'"),
    (optim.AdamW, {"decoupled_weight_decay": True}, {"decoupled_weight_decay": False},
     r"AdamW: decoupled_weight_decay=False is Adam with L2; use Adam\(weight_decay=...\)"),
    (optim.AdaGrad, {"initial_accumulator_value": 0.0}, {"initial_accumulator_value": -0.1},
     r"AdaGrad: initial_accumulator_value must be a number >= 0, got -0.1"),
    (optim.AdaGrad, {"initial_accumulator_value": 0.5},
     {"initial_accumulator_value": lambda t: 0.1},
     r"AdaGrad: initial_accumulator_value must be a number >= 0, got <function"),
    (optim.RMSProp, {"beta": 0.0}, {"beta": -0.1}, r"RMSProp: beta must be in \[0, 1\), got -0.1"),
    (optim.RMSprop, {"momentum": 0.0}, {"momentum": 1.0},
     r"RMSprop: momentum must be in \[0, 1\), got 1.0"),
    (optim.LBFGS, {"max_iter": 1}, {"max_iter": 0},
     r"LBFGS: max_iter must be an integer >= 1, got 0"),
    (optim.LBFGS, {"max_iter": np.int64(3)}, {"max_iter": 3.0},
     r"LBFGS: max_iter must be an integer >= 1, got 3.0"),
    (optim.LBFGS, {"history_size": 1}, {"history_size": 0},
     r"LBFGS: history_size must be an integer >= 1, got 0"),
    (optim.LBFGS, {"max_eval": 1}, {"max_eval": 0},
     r"LBFGS: max_eval must be None or an integer >= 1, got 0"),
    (optim.LBFGS, {"max_eval": np.int32(2)}, {"max_eval": 2.0},
     r"LBFGS: max_eval must be None or an integer >= 1, got 2.0"),
    (optim.LBFGS, {"tolerance_grad": 0.0}, {"tolerance_grad": -1e-9},
     r"LBFGS: tolerance_grad must be >= 0, got -1e-09"),
    (optim.LBFGS, {"tolerance_change": 0.0}, {"tolerance_change": -1e-9},
     r"LBFGS: tolerance_change must be >= 0, got -1e-09"),
    (optim.LBFGS, {"line_search": "strong_wolfe"}, {"line_search": "wolfe"},
     r"LBFGS: line_search must be one of \(None, 'strong_wolfe'\), got 'wolfe'"),
]  # fmt: skip


@pytest.mark.parametrize("cls, valid, invalid, match", BOUNDARIES)
def test_argument_boundaries(cls, valid, invalid, match):
    cls(one_param(), **valid)
    with pytest.raises(ValueError, match=match):
        cls(one_param(), **invalid)


def test_pytorch_names_of_settings():
    """``alpha`` is PyTorch's name for RMSProp's beta and ``line_search_fn`` for L-BFGS'
    line_search; given under both names, the values must agree."""
    assert optim.RMSProp(one_param(), alpha=0.5).param_groups[0]["beta"] == 0.5
    assert optim.RMSProp(one_param(), alpha=0.5, beta=0.5).param_groups[0]["beta"] == 0.5
    with pytest.raises(TypeError, match=r"RMSProp: alpha=0.5 \(PyTorch's name for beta\) and "
                                        r"beta=0.7 disagree; give one of them"):  # fmt: skip
        optim.RMSProp(one_param(), alpha=0.5, beta=0.7)
    opt = optim.LBFGS(one_param(), line_search="strong_wolfe", line_search_fn="strong_wolfe")
    assert opt.param_groups[0]["line_search"] == "strong_wolfe"
    with pytest.raises(ValueError, match=r"LBFGS: give line_search or line_search_fn, not both"):
        optim.LBFGS(one_param(), line_search="x", line_search_fn="strong_wolfe")


def test_building_errors_name_the_optimizer_and_the_parameter():
    w = one_param()[0]
    with pytest.raises(TypeError, match=r"^Adam: unknown hyperparameters \['betas', 'foo'\]$"):
        optim.Adam([w], betas=(0.9, 0.99), foo=1)
    with pytest.raises(TypeError, match=r"^SGD: unknown hyperparameters \['beta'\]$"):
        optim.SGD([{"params": [w], "beta": 0.5}])
    with pytest.raises(ValueError, match=r"^Adagrad|^AdaGrad got an empty parameter list$"):
        optim.Adagrad([])
    with pytest.raises(ValueError, match=r"^RMSprop got an empty parameter list$"):
        optim.RMSprop([])
    opt = optim.SGD([w], lr=0.1)
    with pytest.raises(ValueError, match=r"a parameter group needs a 'params' entry"):
        opt.add_param_group({"lr": 0.1})
    with pytest.raises(TypeError, match=r"optimizer parameters must be Tensors, got ndarray"):
        optim.SGD([np.zeros(2)])
    with pytest.raises(TypeError, match=r"parameter 0\.1 has dtype int64; only float tensors"):
        optim.SGD([nb.tensor([1.0], requires_grad=True), nb.tensor([1, 2])])
    with pytest.raises(TypeError, match=r"parameter layer\.w has dtype int64"):
        optim.SGD([("layer.w", nb.tensor([1, 2]))])
    with pytest.raises(ValueError, match=r"parameter 1\.0 is not a leaf tensor"):
        opt.add_param_group({"params": [one_param()[0] * 2]})
    with pytest.raises(ValueError, match=r"LBFGS supports exactly one parameter group"):
        optim.LBFGS([{"params": one_param()}, {"params": one_param()}])


def test_a_single_tensor_is_a_group_of_one():
    w, b = one_param()[0], one_param()[0]
    opt = optim.SGD([w], lr=0.5)
    opt.add_param_group({"params": b, "lr": 0.25})
    assert opt.param_groups[1]["params"] == [b] and opt.param_groups[1]["lr"] == 0.25
    assert opt.state_dict()["param_groups"][1]["params"] == ["1.0"]
    b.grad[...] = 1.0
    w.grad[...] = 1.0
    opt.step()
    np.testing.assert_array_equal(b.data, [0.75, -2.25])
    np.testing.assert_array_equal(w.data, [0.5, -2.5])


# --- the step ------------------------------------------------------------------------------------


def test_step_calls_the_closure_with_gradients_on_and_returns_its_loss():
    w = one_param()[0]
    opt = optim.SGD([w], lr=0.5)
    seen = []

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        seen.append(loss.requires_grad)
        loss.backward()
        return loss

    with nb.no_grad():
        loss = opt.step(closure)
    assert seen == [True]
    assert float(loss.data) == 5.0
    np.testing.assert_array_equal(w.data, [0.0, 0.0])  # w - 0.5 * 2w
    assert opt.step() is None


def test_lr_is_the_first_groups_rate_of_the_last_step():
    w, b = one_param()[0], one_param()[0]
    opt = optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=lambda t: 0.1 * (t + 1))
    assert opt.lr == 0.1
    opt.step()
    assert opt.lr == 0.1
    opt.step()
    assert opt.lr == pytest.approx(0.2)


def test_decoupled_weight_decay_of_sgd_is_one_multiplication():
    """theta <- (1 - lr wd) theta - lr g (decoupled); theta - lr (g + wd theta) (coupled)."""
    for compiled in (True, False):
        with nb.kernels.reference(not compiled):
            w = nb.tensor([1.0, -2.0], dtype="float64", requires_grad=True)
            opt = optim.SGD([w], lr=0.5, weight_decay=0.1, decoupled_weight_decay=True)
            w.grad[...] = [1.0, 1.0]
            opt.step()
            np.testing.assert_allclose(w.data, [0.95 - 0.5, -1.9 - 0.5], rtol=1e-15)
            v = nb.tensor([1.0, -2.0], dtype="float64", requires_grad=True)
            opt = optim.SGD([v], lr=0.5, weight_decay=0.1)
            v.grad[...] = [1.0, 1.0]
            opt.step()
            np.testing.assert_allclose(v.data, [1.0 - 0.5 * 1.1, -2.0 - 0.5 * 0.8], rtol=1e-15)


# --- statistics and clipping ------------------------------------------------------------------------


def two_groups():
    w = nb.tensor([3.0, -4.0], dtype="float64", requires_grad=True)
    b = nb.tensor([12.0], dtype="float64", requires_grad=True)
    opt = optim.SGD([{"params": [w]}, {"params": [b]}], lr=0.1)
    w.grad[...] = [3.0, -4.0]
    b.grad[...] = [12.0]
    return opt, w, b


def test_grad_norm_and_the_flat_vectors():
    opt, w, b = two_groups()
    assert opt.grad_norm() == 13.0
    thetas, grads = opt.parameter_vectors(), opt.gradient_vectors()
    assert [t.tolist() for t in thetas] == [[3.0, -4.0], [12.0]]
    assert [g.tolist() for g in grads] == [[3.0, -4.0], [12.0]]
    assert np.shares_memory(thetas[0], w.data) and np.shares_memory(grads[1], b.grad)


def test_clip_grad_norm_at_its_edges():
    opt, w, b = two_groups()
    assert opt.clip_grad_norm_(13.0) == 13.0  # exactly at the limit: left as it is
    np.testing.assert_array_equal(w.grad, [3.0, -4.0])
    assert opt.clip_grad_norm_(20.0, norm_type=math.inf) == 12.0
    assert opt.clip_grad_norm_(19.0, norm_type=1) == 19.0
    np.testing.assert_array_equal(b.grad, [12.0])
    total = opt.clip_grad_norm_(6.0, norm_type=math.inf)
    assert total == 12.0
    np.testing.assert_allclose(b.grad, [6.0], rtol=1e-6)
    for bad in (0, -1.0):
        with pytest.raises(ValueError, match=rf"clip_grad_norm_: norm_type must be > 0 \(or inf\), "
                                             rf"got {bad}"):  # fmt: skip
            opt.clip_grad_norm_(1.0, norm_type=bad)
    # parameters with no elements: the norm of nothing is 0, whatever the norm
    empty = optim.SGD([nb.tensor(np.zeros(0), requires_grad=True)])
    assert empty.clip_grad_norm_(1.0, norm_type=math.inf) == 0.0
    assert empty.clip_grad_norm_(1.0) == 0.0


def test_zero_grad_without_none_keeps_the_views():
    opt, w, b = two_groups()
    grad = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is grad and not grad.any() and not b.grad.any()
    assert opt.grad_norm() == 0.0


# --- the printed form ------------------------------------------------------------------------------


def test_repr_lists_each_groups_settings():
    w, b = one_param()[0], one_param()[0]
    opt = optim.SGD([{"params": [w]}, {"params": [b], "lr": 0.5}], lr=0.1, momentum=0.9)
    lines = repr(opt).split("\n")
    settings = [f"    {k}: {v}" for k, v in optim.SGD.defaults.items()]
    first = [s.replace("lr: 0.01", "lr: 0.1").replace("momentum: 0.0", "momentum: 0.9")
             for s in settings]  # fmt: skip
    second = [s.replace("lr: 0.1", "lr: 0.5") for s in first]
    assert lines == ["SGD (", "Parameter Group 0", *first, "Parameter Group 1", *second, ")"]
    assert repr(optim.AdamW(one_param())).startswith("AdamW (\nParameter Group 0\n    lr: 0.001")


# --- loading a state_dict: the messages name what differs -----------------------------------------


def saved_with(params):
    opt = optim.Adam(params)
    return opt.state_dict()


def test_a_group_with_other_parameters_names_the_difference():
    a, b = nb.tensor([1.0], requires_grad=True), nb.tensor([2.0], requires_grad=True)
    c = nb.tensor([3.0], requires_grad=True)
    opt = optim.Adam([("a", a), ("b", b)])
    cases = {
        "order": ([("b", b), ("a", a)], r"(?m)different parameters: the same names in a "
                                        r"different order$"),
        "missing": ([("a", a)], r"(?m)different parameters: missing \['b'\]$"),
        "unexpected": ([("a", a), ("b", b), ("c", c)],
                       r"(?m)different parameters: unexpected \['c'\]$"),
        "both": ([("a", a), ("c", c)],
                 r"(?m)different parameters: missing \['b'\]; unexpected \['c'\]$"),
    }  # fmt: skip
    for params, match in cases.values():
        with pytest.raises(ValueError, match=match):
            opt.load_state_dict(saved_with(params))


# --- L-BFGS' line search helper --------------------------------------------------------------------


def test_cubic_minimizer_of_a_cubic_and_its_fallbacks():
    """f(t) = (t - 1)^2 (t + 2) has its local minimum at t = 1; two points with values and
    slopes determine the cubic, so the minimizer is exact, whichever point comes first."""

    def point(t):
        return _Point(t, (t - 1) ** 2 * (t + 2), None, 3 * t * t - 3)

    assert cubic_minimizer(point(0.0), point(2.0)) == pytest.approx(1.0, rel=1e-12)
    assert cubic_minimizer(point(2.0), point(0.5)) == pytest.approx(1.0, rel=1e-12)
    assert cubic_minimizer(point(0.0), point(2.0), bounds=(1.5, 3.0)) == 1.5  # clipped
    assert cubic_minimizer(point(0.0), point(2.0), bounds=(-1.0, 0.5)) == 0.5
    # rising at both ends more steeply than the values rise: no real minimizer, the midpoint
    a, b = _Point(0.0, 0.0, None, 3.0), _Point(1.0, 2.0, None, 3.0)
    assert cubic_minimizer(a, b) == 0.5
    assert cubic_minimizer(a, b, bounds=(2.0, 3.0)) == 2.5


def line_functions():
    """1-D functions f(t) with slopes, for the line search along d = [1]: quartics with a
    narrow or a wide valley (the zoom phase narrows the bracket many times), waves whose slope
    turns, and a function unbounded below (the bracketing phase runs out of calls)."""
    rng = np.random.default_rng(5)
    for _ in range(30):
        a, b, s = rng.uniform(0.05, 5.0), rng.uniform(-1.0, 1.0), rng.uniform(0.5, 50.0)
        yield lambda t, a=a, b=b, s=s: (s * (t - a) ** 4 + b * t - s * a**4,
                                        4 * s * (t - a) ** 3 + b)  # fmt: skip
    for _ in range(30):
        w, c = rng.uniform(0.5, 20.0), rng.uniform(0.1, 3.0)
        yield lambda t, w=w, c=c: (math.sin(w * t) * c / w - t + t * t,
                                   math.cos(w * t) * c - 1 + 2 * t)  # fmt: skip
    for _ in range(40):  # double wells: the search may stop in either well
        a, b, s = rng.uniform(0.3, 3.0), rng.uniform(0.05, 2.0), rng.uniform(0.1, 10.0)
        yield lambda t, a=a, b=b, s=s: (
            s * ((t - a) ** 2 - a * a) ** 2 - b * t,
            4 * s * ((t - a) ** 2 - a * a) * (t - a) - b,
        )
    yield lambda t: (-(t + t**3), -(1 + 3 * t * t))  # (an exact quadratic: see the notes)


@pytest.mark.parametrize("t0", [1e-2, 0.3, 1.0, 3.0, 7.0])
def test_line_search_matches_torch_on_one_dimensional_functions(t0):
    """Every branch of the bracketing and zoom phases, against torch.optim.lbfgs._strong_wolfe
    with its defaults (c1 = 1e-4, c2 = 0.9, tolerance 1e-9, 25 calls after the first)."""
    from nabla.optim.lbfgs import strong_wolfe

    torch_search = getattr(pytest.importorskip("torch.optim.lbfgs"), "_strong_wolfe", None)
    if torch_search is None:
        pytest.skip("torch.optim.lbfgs no longer has _strong_wolfe")
    d = np.array([1.0])
    for fun in line_functions():
        f0, g0 = fun(0.0)
        if g0 >= 0:
            continue  # not a descent direction

        def phi(t, fun=fun):
            f_t, g_t = fun(float(t))
            return f_t, np.array([g_t])

        def obj_func(_, t, d_torch, fun=fun):
            f_t, g_t = fun(float(t))
            return f_t, torch.tensor([g_t], dtype=torch.float64)

        ours = strong_wolfe(phi, t0, d, f0, np.array([g0]), g0)
        theirs = torch_search(obj_func, None, t0, torch.tensor(d), f0,
                              torch.tensor([g0], dtype=torch.float64),
                              torch.tensor(g0, dtype=torch.float64))  # fmt: skip
        assert ours[3] == theirs[3]
        assert ours[0] == pytest.approx(float(theirs[2]), rel=1e-10, abs=1e-300)
        assert ours[1] == pytest.approx(float(theirs[0]), rel=1e-10, abs=1e-12)


# --- loading: the listings in the messages ----------------------------------------------------------


def test_messages_list_names_quoted_or_not_and_cut_after_eight():
    w = nb.tensor([1.0], dtype="float64", requires_grad=True)
    opt = optim.SGD([("w", w)], momentum=0.9)
    saved = opt.state_dict()
    saved["state"] = {f"p{i}": {} for i in range(10)}
    with pytest.raises(ValueError, match=r"does not have: 'p0', 'p1', 'p2', 'p3', 'p4', 'p5', "
                                         r"'p6', 'p7', \.\.\. \(10 in all\) \(its parameters: "
                                         r"'w'\)"):  # fmt: skip
        opt.load_state_dict(saved)
    saved["state"] = {f"p{i}": {} for i in range(8)}  # eight: all shown
    with pytest.raises(ValueError, match=r"does not have: 'p0', .*, 'p7' \(its parameters: 'w'\)"):
        opt.load_state_dict(saved)
    saved["state"] = {"w": {"step": 1, "velocty": np.zeros(1)}}  # SGD's only buffer is optional
    with pytest.raises(ValueError, match=r"(?m)state of w: unknown buffer 'velocty' \(SGD keeps "
                                         r"possibly 'velocity' with these settings"):  # fmt: skip
        opt.load_state_dict(saved)
    rms = optim.RMSProp([("w", w)])
    saved = rms.state_dict()
    saved["state"] = {"w": {"step": 1, "square_avg": np.zeros(1), "sq": np.zeros(1)}}
    with pytest.raises(ValueError, match=r"RMSProp keeps 'square_avg' and possibly "
                                         r"'momentum_buffer' with these settings"):  # fmt: skip
        rms.load_state_dict(saved)
    adam = optim.Adam([("w", w)])
    saved = adam.state_dict()
    saved["state"] = {"w": {"step": 2, "exp_avg": np.zeros(1)}}
    with pytest.raises(ValueError, match=r"(?m)state of w: missing buffer 'exp_avg_sq'"):
        adam.load_state_dict(saved)


def lbfgs_after_steps():
    w = nb.tensor([3.0, -1.0], dtype="float64", requires_grad=True)
    opt = optim.LBFGS([w], max_iter=3)

    def closure():
        opt.zero_grad()
        loss = ((w - 1.0) ** 4).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return opt


def test_lbfgs_buffers_follow_its_history():
    opt = lbfgs_after_steps()
    pairs = len(opt.state_dict()["lbfgs"]["rho"])
    assert pairs >= 1
    history = {f"{v}.{i}": True for i in range(pairs) for v in "sy"}
    assert opt.buffers(opt.param_groups[0]) == {"d": True, "prev_flat_grad": True, **history}


@pytest.mark.parametrize(
    "change, match",
    [
        (
            lambda s: s.update(lbfgs="x"),
            r"lbfgs must be a dict of \['func_evals', 'gamma', "
            r"'n_iter', 'prev_loss', 'rho', 't'\]",
        ),
        (lambda s: s["lbfgs"].update(extra=1), r"lbfgs: missing \[\], unknown \['extra'\]"),
        (lambda s: s["lbfgs"].pop("gamma"), r"lbfgs: missing \['gamma'\], unknown \[\]"),
        (
            lambda s: s["lbfgs"].pop("rho"),
            r"missing \['rho'\], unknown \[\] \(it holds \[[^]]*\]\)\Z",
        ),
        (
            lambda s: s["lbfgs"].update(rho=[1.0, "x"]),
            r"lbfgs: rho must be a list of numbers \(1 / y_i\^T s_i\), got \[1.0, 'x'\]",
        ),
        (lambda s: s.pop("lbfgs"), r"missing entries \['lbfgs'\]"),
        (lambda s: s["state"]["0.0"].pop("d"), r"state of 0.0: missing buffer 'd'"),
    ],
    ids=["not-a-dict", "unknown", "missing", "no-rho", "rho", "no-entry", "no-d"],
)
def test_lbfgs_state_problems_are_named(change, match):
    opt = lbfgs_after_steps()
    saved = opt.state_dict()
    change(saved)
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(saved)


def test_lbfgs_refuses_a_state_dict_that_is_not_a_dict_and_a_rho_that_is_not_a_list():
    opt = lbfgs_after_steps()
    with pytest.raises(ValueError, match=r"a state_dict is a dict, got a list"):
        opt.load_state_dict([1, 2])
    saved = opt.state_dict()
    saved["lbfgs"]["rho"] = "ab"
    saved["state"]["0.0"] = {k: v for k, v in saved["state"]["0.0"].items() if "." not in k}
    with pytest.raises(ValueError, match=r"rho must be a list of numbers") as error:
        opt.load_state_dict(saved)
    assert "buffer" not in str(error.value)  # a string's length is no count of pairs


@pytest.mark.parametrize(
    "make, drop",
    [
        (lambda w: optim.AdaGrad([w]), "sum_squares"),
        (lambda w: optim.RMSProp([w]), "square_avg"),
        (lambda w: optim.RMSProp([w], centered=True), "grad_avg"),
    ],
)
def test_a_required_buffer_missing_after_steps_is_refused(make, drop):
    w = nb.tensor([1.0, 2.0], dtype="float64", requires_grad=True)
    opt = make(w)
    w.grad[...] = 1.0
    opt.step()
    saved = opt.state_dict()
    del saved["state"]["0.0"][drop]
    with pytest.raises(ValueError, match=rf"state of 0.0: missing buffer '{drop}'"):
        opt.load_state_dict(saved)


def test_lbfgs_previous_gradient_is_required_and_reference_is_refused():
    opt = lbfgs_after_steps()
    saved = opt.state_dict()
    del saved["state"]["0.0"]["prev_flat_grad"]
    with pytest.raises(ValueError, match=r"state of 0.0: missing buffer 'prev_flat_grad'"):
        opt.load_state_dict(saved)
    with pytest.raises(TypeError, match=r"LBFGS updates only through step\(closure\)"):
        opt.reference(np.zeros(2), np.zeros(2), None, {}, 1)


def test_cubic_minimizer_at_a_double_root():
    """d1^2 = g_a g_b: the cubic's stationary points coincide (a saddle) and eq. 3.59 still
    gives a point (torch's _cubic_interpolate agrees), not the midpoint fallback."""
    a, b = _Point(0.0, 0.0, None, -1.0), _Point(1.0, -1.0, None, -4.0)
    assert cubic_minimizer(a, b) == pytest.approx(1 / 3, rel=1e-15)
    interpolate = getattr(pytest.importorskip("torch.optim.lbfgs"), "_cubic_interpolate", None)
    if interpolate is not None:
        x = [torch.tensor(v, dtype=torch.float64) for v in (0.0, 0.0, -1.0, 1.0, -1.0, -4.0)]
        assert float(interpolate(*x)) == pytest.approx(1 / 3, rel=1e-15)


@pytest.mark.parametrize("max_eval", [1, 2])
def test_lbfgs_line_search_within_max_eval_matches_torch(max_eval):
    """A first trial that overshoots, with max_eval leaving the search no call after it (it
    keeps t = 0 and the gradient there) or one, as torch.optim.LBFGS does."""

    def run(w, opt_cls):
        opt = opt_cls([w], lr=10.0, max_iter=3, max_eval=max_eval, line_search_fn="strong_wolfe")
        calls = []

        def closure():
            calls.append(1)
            opt.zero_grad()
            loss = (100 * (w - 1.0) ** 2).sum()
            loss.backward()
            return loss

        for _ in range(3):
            opt.step(closure)
        return np.array(w.detach().numpy() if isinstance(w, torch.Tensor) else w.data), len(calls)

    ours = run(nb.tensor([3.0], dtype="float64", requires_grad=True), optim.LBFGS)
    theirs = run(torch.tensor([3.0], dtype=torch.float64, requires_grad=True), torch.optim.LBFGS)
    assert ours[1] == theirs[1]
    np.testing.assert_allclose(ours[0], theirs[0], rtol=1e-12)


class Plain(optim.Optimizer):
    """A minimal optimizer without state buffers: theta <- theta - lr g."""

    defaults = {"lr": 0.1}

    def reference(self, theta, g, state, h, t):
        theta -= g * h["lr"]

    def kernel(self, theta, g, state, h, t, weight_decay, decay):
        self.reference_step(theta, g, state, h, t, weight_decay, decay)


def test_an_optimizer_without_buffers_says_so():
    w = nb.tensor([1.0], dtype="float64", requires_grad=True)
    opt = Plain([w])
    w.grad[...] = 1.0
    opt.step()
    assert w.data.tolist() == [0.9]
    saved = opt.state_dict()
    saved["state"]["0.0"]["x"] = np.zeros(1)
    with pytest.raises(ValueError, match=r"unknown buffer 'x' \(Plain keeps no buffers with these"):
        opt.load_state_dict(saved)


def test_strong_wolfe_on_a_concave_quadratic_line_steps_on_instead_of_dividing_by_zero():
    """Along d the loss -(w + w^2) is a concave quadratic: the interpolating cubic has no
    minimizer (its denominator is 0), and the search takes the bracket's midpoint, as the
    docstring of ``cubic_minimizer`` says (this raised ZeroDivisionError)."""
    w = nb.tensor([0.0], dtype="float64", requires_grad=True)
    opt = optim.LBFGS([w], max_iter=3, line_search="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = -(w + w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    assert np.isfinite(w.data).all() and w.item() > 1.0  # moved downhill, finitely
