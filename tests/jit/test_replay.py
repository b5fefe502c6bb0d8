"""A compiled step replays exactly what eager mode computes: bit-identical losses, parameters,
optimizer state and random draws, over many steps and through every kind of operation."""

from __future__ import annotations

import numpy as np
import pytest
from jit_twins import batches, eager, mlp_setup, same_bits, same_state, training_step

import nabla as nb
from nabla import models, nn, optim
from nabla.lab.functions import FUNCTIONS


def run(step, data, steps):
    return [step(*data[i % len(data)]) for i in range(steps)]


def eager_then_compiled(setup, data, steps):
    """Train ``setup()`` eagerly, then a fresh ``setup()`` compiled (one after the other: both
    draw from the default generator); assert the same losses and state, bit for bit. Returns
    the compiled step and the compiled run's (model, optimizer)."""
    model_a, opt_a, step_a = setup()
    losses_a = run(eager(step_a), data, steps)
    model_b, opt_b, step_b = setup()
    compiled = nb.compile(step_b)
    losses_b = run(compiled, data, steps)
    assert all(same_bits(a, b) for a, b in zip(losses_a, losses_b))
    assert same_state(model_a, opt_a, model_b, opt_b) == []
    return compiled, (model_a, model_b)


def test_mlp_with_dropout_adam_and_cosine_schedule_is_bit_identical_over_100_steps():
    data = batches(7)
    # Each run starts from manual_seed(0) and draws its dropout masks from the default
    # generator, so the two runs go one after the other.
    model_a, opt_a, step_a = mlp_setup()
    losses_a = run(eager(step_a), data, 100)
    generator_after_eager = nb.random.default_generator().bit_generator.state
    model_b, opt_b, step_b = mlp_setup()
    compiled = nb.compile(step_b)
    losses_b = run(compiled, data, 100)
    assert compiled.replays == 99 and len(compiled.plans) == 1
    assert all(same_bits(a, b) for a, b in zip(losses_a, losses_b))
    assert same_state(model_a, opt_a, model_b, opt_b) == []
    assert opt_a.lr == opt_b.lr and opt_a.iterations == opt_b.iterations == 100
    # the same draws in the same order: the generator is where the eager run left it
    assert nb.random.default_generator().bit_generator.state == generator_after_eager


def test_the_lr_follows_the_schedule_at_every_replay():
    data = batches(3)
    _, opt, step = mlp_setup()
    compiled = nb.compile(step)
    lrs = []
    for i in range(10):
        compiled(*data[i % 3])
        lrs.append(opt.lr)
    assert lrs == [opt.param_groups[0]["lr"](t) for t in range(10)]


def test_an_evaluation_step_is_bit_identical_and_does_not_touch_the_parameters():
    data = batches(4)
    model, _opt, step = mlp_setup()
    run(eager(step), data, 5)
    model.eval()

    def evaluate(x, y):
        with nb.no_grad():
            logits = model(x)
            return nn.functional.cross_entropy(logits, y), logits

    before = [p.data.copy() for p in model.parameters()]
    compiled = nb.compile(evaluate)
    for x, y in data + data:
        (loss_c, logits_c), (loss_e, logits_e) = compiled(x, y), eager(evaluate)(x, y)
        assert same_bits(loss_c, loss_e) and same_bits(logits_c, logits_e)
    assert compiled.replays == 7
    assert all(np.array_equal(a, p.data) for a, p in zip(before, model.parameters()))


def _tanh_net_setup():
    """Operations without a lowering (tanh, sigmoid, layer norm, mse) and SGD with Nesterov
    momentum and weight decay: the plan runs their own forward and backward."""
    nb.manual_seed(3)
    model = nn.Sequential(
        nn.Linear(6, 8), nn.Tanh(), nn.LayerNorm(8), nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 2)
    )
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    return model, opt, training_step(model, opt, nn.functional.mse_loss)


def test_operations_without_a_lowering_replay_through_their_own_code():
    rng = np.random.default_rng(0)
    data = [
        (
            rng.standard_normal((5, 6)).astype(np.float32),
            rng.standard_normal((5, 2)).astype(np.float32),
        )
        for _ in range(3)
    ]
    model_a, opt_a, step_a = _tanh_net_setup()
    model_b, opt_b, step_b = _tanh_net_setup()
    compiled = nb.compile(step_b)
    a, b = run(eager(step_a), data, 50), run(compiled, data, 50)
    assert compiled.replays == 49
    assert all(same_bits(x, y) for x, y in zip(a, b))
    assert same_state(model_a, opt_a, model_b, opt_b) == []
    assert "runs its own code (allocates): " in str(compiled.plan)


def _rosenbrock_setup():
    point = nb.tensor([-1.2, 1.0], dtype="float64", requires_grad=True)
    opt = optim.Adam([point], lr=1e-2)
    f = FUNCTIONS["rosenbrock"]

    def step():
        loss = f(point)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return point, step


def test_rosenbrock_with_adam_follows_the_eager_trajectory_exactly():
    point_a, step_a = _rosenbrock_setup()
    point_b, step_b = _rosenbrock_setup()
    compiled = nb.compile(step_b)
    for _ in range(300):
        assert same_bits(step_a(), compiled())
    assert same_bits(point_a, point_b)
    assert compiled.replays == 299


def _shared_setup(zero_grad: bool):
    """A weight used twice and a value with two consumers: gradients summed, as eager sums them."""
    nb.manual_seed(5)
    layer = nn.Linear(4, 4)
    head = nn.Linear(4, 1)
    opt = optim.SGD([*layer.parameters(), *head.parameters()], lr=0.05, momentum=0.5)

    def step(x):
        h = layer(x).relu()
        h2 = layer(h)  # the same weight again: its gradient has two contributions
        loss = (head(h2) ** 2).mean() + (h * h2).sum() * 0.01  # h and h2 read twice
        if zero_grad:
            opt.zero_grad()
        loss.backward()
        opt.step()
        return loss

    return layer, head, step


@pytest.mark.parametrize("zero_grad", [True, False], ids=["zero_grad", "accumulating"])
def test_shared_weights_and_values_with_two_consumers_sum_their_gradients_as_eager(zero_grad):
    rng = np.random.default_rng(2)
    data = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(4)]
    layer_a, head_a, step_a = _shared_setup(zero_grad)
    layer_b, head_b, step_b = _shared_setup(zero_grad)
    compiled = nb.compile(step_b)
    for i in range(12):
        assert same_bits(eager(step_a)(data[i % 4]), compiled(data[i % 4]))
    for a, b in zip(
        [*layer_a.parameters(), *head_a.parameters()], [*layer_b.parameters(), *head_b.parameters()]
    ):
        assert same_bits(a, b) and same_bits(a.grad, b.grad)
    assert compiled.replays == 11


def test_a_replay_returns_fresh_tensors_without_a_graph():
    data = batches(2)
    _, _, step = mlp_setup(dropout=0.0)
    compiled = nb.compile(step)
    first = compiled(*data[0])
    second, third = compiled(*data[1]), compiled(*data[0])
    assert second is not third and not np.shares_memory(second.data, third.data)
    assert third.grad_fn is None and not third.requires_grad
    assert float(second) != float(third)  # the second did not change when the third ran
    assert first.shape == second.shape == ()


def test_manual_seed_between_calls_reaches_the_replayed_dropout():
    data = batches(2)
    for runner in ("eager", "compiled"):
        _, _, step = mlp_setup(dropout=0.5)
        fn = nb.compile(step) if runner == "compiled" else eager(step)
        fn(*data[0])
        fn(*data[1])
        nb.manual_seed(11)
        out = fn(*data[0])
        if runner == "eager":
            expected = out
    assert same_bits(out, expected)


def test_a_dropout_generator_of_its_own_is_drawn_from_in_eager_order():
    def setup():
        nb.manual_seed(0)
        gen = np.random.default_rng(9)
        model = nn.Sequential(nn.Linear(20, 16), nn.Dropout(0.4, generator=gen), nn.Linear(16, 5))
        opt = optim.SGD(model.parameters(), lr=0.1)
        return gen, training_step(model, opt)

    data = batches(3)
    gen_a, step_a = setup()
    gen_b, step_b = setup()
    compiled = nb.compile(step_b)
    for i in range(9):
        assert same_bits(eager(step_a)(*data[i % 3]), compiled(*data[i % 3]))
    assert gen_a.bit_generator.state == gen_b.bit_generator.state


def test_models_mlp_trains_compiled_to_the_same_accuracy_as_eager():
    """A longer run on separable data: the compiled run is the eager run, so it learns too."""
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((5, 20)).astype(np.float32) * 3
    y = rng.integers(0, 5, 400)
    x = (centers[y] + rng.standard_normal((400, 20))).astype(np.float32)
    model, _opt, step = mlp_setup(dropout=0.1)
    compiled = nb.compile(step)
    for _epoch in range(5):
        for i in range(0, 400, 40):
            compiled(x[i : i + 40], y[i : i + 40])
    model.eval()
    accuracy = (model(nb.tensor(x)).data.argmax(1) == y).mean()
    assert accuracy > 0.95


def _lenet_bn_setup(momentum):
    """LeNet with batch norm after each convolution, SGD with Nesterov momentum."""
    nb.manual_seed(4)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2),
        nn.BatchNorm2d(6, momentum=momentum),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5),
        nn.BatchNorm2d(16, momentum=momentum),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(400, 84),
        nn.ReLU(),
        nn.Linear(84, 10),
    )
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    return model, opt, training_step(model, opt)


@pytest.mark.parametrize("momentum", [0.1, None], ids=["momentum 0.1", "cumulative"])
def test_lenet_with_batch_norm_and_nesterov_is_bit_identical_over_100_steps(momentum):
    rng = np.random.default_rng(6)
    data = [
        (rng.random((8, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, 8)) for _ in range(4)
    ]
    # running statistics and the batch counters included (state_dict holds them)
    _, (model_a, model_b) = eager_then_compiled(lambda: _lenet_bn_setup(momentum), data, 100)
    assert int(model_b[1].num_batches_tracked.data) == 100
    # and evaluation with the running statistics, compiled, is eager's too
    model_a.eval()
    model_b.eval()
    evaluate = nb.compile(lambda x: model_b(x))
    for x, _ in data:
        evaluate(x)
        assert same_bits(evaluate(x), model_a(nb.Tensor._make(x)))


def test_a_resnet_block_with_fused_batch_norm_residual_relu_is_bit_identical():
    def setup():
        nb.manual_seed(8)
        model = models.resnet(depth=8, width=8)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return model, opt, training_step(model, opt)

    rng = np.random.default_rng(7)
    data = [
        (rng.random((4, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, 4)) for _ in range(2)
    ]
    eager_then_compiled(setup, data, 6)


def test_dropout_after_a_convolution_keeps_eager_memory_layouts():
    """A convolution's output is an (N, C, H, W) view of a (C, H, W, N) array, so dropout's
    input is not C-contiguous: the plan then runs dropout's own code, whose results have the
    layouts later sums depend on."""

    def setup():
        nb.manual_seed(2)
        model = nn.Sequential(
            nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Dropout(0.25), nn.Flatten(), nn.Linear(4 * 6 * 6, 3)
        )
        opt = optim.Adam(model.parameters(), lr=1e-2)
        return model, opt, training_step(model, opt)

    rng = np.random.default_rng(3)
    data = [(rng.random((5, 1, 8, 8), dtype=np.float32), rng.integers(0, 3, 5)) for _ in range(3)]
    compiled, _ = eager_then_compiled(setup, data, 20)
    assert "_DropoutFunction" in str(compiled.plan).split("def replay")[0]  # not lowered


def test_module_zero_grad_and_gradient_clipping_inside_the_step_are_replayed():
    """Python calls that write the gradients between backward and the update: replayed as
    calls (skipping them would let gradients accumulate, or go unclipped)."""

    def setup():
        nb.manual_seed(1)
        model = models.mlp([20, 16, 5])
        opt = optim.SGD(model.parameters(), lr=0.5, momentum=0.9)

        def step(x, y):
            loss = nn.functional.cross_entropy(model(x), y)
            model.zero_grad()  # fills the existing .grad arrays with zeros
            loss.backward()
            opt.clip_grad_norm_(0.05)
            opt.clip_grad_value_(0.01)
            opt.step()
            return loss

        return model, opt, step

    data = batches(3)
    compiled, _ = eager_then_compiled(setup, data, 12)
    source = compiled.plan.source
    for call in (
        "module0.zero_grad()",
        "opt0.clip_grad_norm_(0.05, 2.0)",
        "opt0.clip_grad_value_(0.01)",
    ):
        assert call in source, call


@pytest.mark.parametrize("given", ["array", "tensor", "list"])
def test_a_backward_with_an_explicit_gradient_replays_that_gradient(given):
    """backward(grad) on a non-scalar output: the plan seeds backward with the given gradient,
    not with ones."""

    def setup():
        nb.manual_seed(3)
        layer = nn.Linear(4, 3)
        opt = optim.SGD(layer.parameters(), lr=0.1)
        weights = np.array([[1.0, -2.0, 0.5]] * 2, np.float32)
        seed = {"array": weights, "tensor": nb.tensor(weights), "list": weights.tolist()}[given]

        def step(x):
            out = layer(x)
            opt.zero_grad()
            out.backward(seed)
            opt.step()
            return out

        return layer, opt, step

    x = np.arange(8, dtype=np.float32).reshape(2, 4) / 8
    layer_a, _, step_a = setup()
    layer_b, _, step_b = setup()
    compiled = nb.compile(step_b)
    for _ in range(4):
        assert same_bits(eager(step_a)(x), compiled(x))
    assert same_bits(layer_a.weight, layer_b.weight) and same_bits(layer_a.bias, layer_b.bias)
    assert compiled.replays == 3
