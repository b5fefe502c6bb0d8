"""Every guard of a plan: a call that does not match retraces (the reason is kept), and past
``max_plans``, or where the trace saw something it cannot replay, the step runs eagerly with a
one-time warning naming why."""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
from jit_twins import batches, eager, mlp_setup, same_bits

import nabla as nb
from nabla import kernels, nn, optim


def compiled_mlp(**kw):
    model, opt, step = mlp_setup(dropout=0.0, **kw)
    return model, opt, nb.compile(step)


def test_a_smaller_last_batch_traces_a_second_plan_and_both_are_kept():
    data = batches(2, batch=16) + batches(1, batch=5, seed=4)
    model, _opt, step = compiled_mlp()
    for x, y in data * 3:
        step(x, y)
    assert len(step.plans) == 2
    assert step.retraces == ["argument 0 has shape (5, 20), the plan was traced for (16, 20)"]
    assert step.replays == 9 - 2
    # and the numbers are eager's
    model_e, _opt_e, step_e = mlp_setup(dropout=0.0)
    for x, y in data * 3:
        eager(step_e)(x, y)
    assert all(same_bits(a, b) for a, b in zip(model.parameters(), model_e.parameters()))


@pytest.mark.parametrize(
    "change, reason",
    [
        (
            lambda x, y: (x.astype(np.float64), y),
            "argument 0 has dtype float64, the plan was traced for float32",
        ),
        (
            lambda x, y: (x, y.astype(np.int32)),
            "argument 1 has dtype int32, the plan was traced for int64",
        ),
        (lambda x, y: (x, y[:8]), "argument 1 has shape (8,), the plan was traced for (16,)"),
        (lambda x, y: (nb.tensor(x), y), None),  # a Tensor of the same shape and dtype: same plan
        (lambda x, y: (x, y, 3), "the step got 3 arguments, the plan was traced with 2"),
    ],
)
def test_arguments_are_guarded_by_shape_and_dtype(change, reason):
    ((x, y),) = batches(1)
    _, _, step = compiled_mlp()
    step(x, y)
    try:
        step(*change(x, y))
    except Exception:
        pass
    assert step.retraces == ([] if reason is None else [reason])


def test_a_value_argument_is_guarded_by_equality():
    calls = []

    def scaled(x, factor):
        calls.append(factor)
        return x * factor

    step = nb.compile(scaled)
    x = np.ones(3, np.float32)
    assert step(x, 2.0).tolist() == [2.0] * 3
    assert step(x, 2.0).tolist() == [2.0] * 3  # replayed: the Python body did not run
    assert step(x, 3.0).tolist() == [3.0] * 3
    assert calls == [2.0, 3.0]
    assert step.retraces == ["argument 1 is 3.0, the plan was traced with 2.0"]
    step(x, 3)  # an int where the plans have floats: not the same constant
    assert step.retraces[-1] == "argument 1 is 3, the plan was traced with 3.0"  # the latest plan


def test_the_training_flag_of_every_traced_module_is_guarded():
    ((x, y),) = batches(1)
    model, _, step = compiled_mlp()
    step(x, y)
    model[1].eval()  # a ReLU that Sequential fuses into linear_relu: never called, still guarded
    step(x, y)
    assert step.retraces == ["ReLU is in eval mode, the plan was traced in the other"]


def test_grad_mode_is_guarded():
    ((x, _y),) = batches(1)
    model, _, _ = compiled_mlp()
    forward = nb.compile(lambda x: model(x))
    forward(x)
    with nb.no_grad():
        out = forward(x)
    assert forward.retraces == ["grad mode is off, the plan was traced with it on"]
    assert not out.requires_grad


def test_switching_the_kernels_is_guarded():
    ((x, y),) = batches(1)
    _, _, step = compiled_mlp()
    with kernels.reference(kernels.compiled()):  # the other path
        step(x, y)
    step(x, y)
    assert len(step.retraces) == 1
    assert re.fullmatch("the compiled kernels were switched (on|off)", step.retraces[0])


def test_replaced_parameter_data_and_requires_grad_are_guarded():
    ((x, y),) = batches(1)
    model, _, step = compiled_mlp()
    step(x, y)
    model[0].weight.requires_grad_(False)
    step(x, y)
    assert step.retraces[-1] == "p0 (0.weight): requires_grad changed to False"
    model[0].bias.data = model[0].bias.data.copy()
    step(x, y)
    assert step.retraces[-1] == "p1 (0.bias): its data was replaced (load_state_dict, .data = ...)"


def test_a_new_parameter_group_is_guarded():
    ((x, y),) = batches(1)
    _, opt, step = compiled_mlp()
    step(x, y)
    opt.add_param_group({"params": [nb.tensor([1.0], requires_grad=True)]})
    step(x, y)
    assert step.retraces == ["Adam's parameter groups changed"]


def test_past_max_plans_the_step_runs_eagerly_with_one_warning():
    _model, _opt, step = mlp_setup(dropout=0.0)
    compiled = nb.compile(step, max_plans=2)
    for batch in (4, 5):
        compiled(*batches(1, batch=batch)[0])
    with pytest.warns(
        RuntimeWarning,
        match=r"runs eagerly: argument 0 has shape \(6, 20\), the plan was traced for \(5, 20\), "
        r"and 2 plans are kept already",
    ):
        compiled(*batches(1, batch=6)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        loss = compiled(*batches(1, batch=4)[0])
    assert compiled.plan is None and compiled.eager_reason.startswith(
        "argument 0 has shape (6, 20)"
    )
    assert loss.grad_fn is not None  # eager: the graph is there (freed by backward, but recorded)


def _step_with(body):
    nb.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    return nb.compile(lambda x: body(model, opt, x)), model


def _writes_in_place(model, opt, x):
    loss = model(x).sum()
    opt.zero_grad()
    loss.backward()
    with nb.no_grad():
        model.weight -= 0.1 * model.weight.grad[0, 0]
    return loss


def _closure(model, opt, x):
    def closure():
        opt.zero_grad()
        loss = model(x).sum()
        loss.backward()
        return loss

    return opt.step(closure)


@pytest.mark.parametrize(
    "body, reason",
    [
        (_writes_in_place, "it writes into a tensor in place (-=)"),
        (_closure, "optimizer.step(closure) re-evaluates the model inside the step"),
        (
            lambda m, o, x: m(x).sum().item(),
            "it returns a float, which a replay could not recompute (return tensors: e.g. the "
            "loss, not loss.item())",
        ),
        (
            lambda m, o, x: {"loss": m(x).sum()},
            "it returns a dict, which a replay could not recompute (return tensors: e.g. the "
            "loss, not loss.item())",
        ),
    ],
)
def test_what_a_plan_cannot_replay_runs_eagerly_with_a_warning_naming_it(body, reason):
    step, model = _step_with(body)
    x = np.ones((4, 3), np.float32)
    with pytest.warns(RuntimeWarning, match=re.escape(f"runs eagerly: {reason}")):
        first = step(x)
    weights = model.weight.data.copy()
    second = step(x)  # eager again: the body runs, so its effects happen
    assert step.plan is None and step.eager_reason == reason
    assert type(first) is type(second)
    if body is not _writes_in_place and body is not _closure:
        return
    assert not np.array_equal(weights, model.weight.data)


def test_a_backward_through_operations_recorded_before_the_step_runs_eagerly():
    w = nb.tensor([2.0], requires_grad=True)
    outside = w * 3  # recorded before the trace

    def step(x):
        loss = (outside * x).sum()
        loss.backward(retain_graph=True)
        return loss

    compiled = nb.compile(step)
    with pytest.warns(RuntimeWarning, match="backward reaches operations computed before the step"):
        compiled(np.ones(1, np.float32))


def test_an_argument_that_requires_grad_runs_eagerly():
    step = nb.compile(lambda x: (x * 2).sum())
    with pytest.warns(
        RuntimeWarning, match=re.escape("argument 0 requires grad (make it a parameter)")
    ):
        step(nb.tensor([1.0], requires_grad=True))


def test_bad_uses_of_compile_are_refused_clearly():
    with pytest.raises(TypeError, match=r"^nb\.compile needs a callable step, got int$"):
        nb.compile(3)
    with pytest.raises(ValueError, match=r"^nb\.compile: max_plans must be at least 1, got 0$"):
        nb.compile(lambda: None, max_plans=0)
    step = nb.compile(lambda x: x * 2)
    with pytest.raises(TypeError, match="a compiled step takes positional arguments only"):
        step(x=np.ones(2))
    inner = nb.compile(lambda x: x * 2)
    outer = nb.compile(lambda x: inner(x))
    with pytest.raises(RuntimeError, match="a compiled step cannot be traced inside another trace"):
        outer(np.ones(2, np.float32))
    assert nb.autograd.trace.Trace.recorder is None  # left clean after the error


def test_lbfgs_inside_a_step_runs_eagerly_with_a_warning_naming_it():
    nb.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = optim.LBFGS(model.parameters(), lr=0.5, max_iter=3)
    x = np.ones((4, 3), np.float32)

    def closure():
        opt.zero_grad()
        loss = (model(nb.Tensor._make(x)) ** 2).mean()
        loss.backward()
        return loss

    step = nb.compile(lambda: opt.step(closure))
    with pytest.warns(
        RuntimeWarning, match=r"runs eagerly: LBFGS\.step runs a data-dependent line search$"
    ):
        step()
    assert step.eager_reason == "LBFGS.step runs a data-dependent line search"
