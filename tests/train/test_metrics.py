import numpy as np
import pytest
import torch

from nabla.train import metrics


def batches(rng, n=103, c=7, size=16):
    out, y = rng.normal(size=(n, c)).astype(np.float32), rng.integers(0, c, n)
    return out, y, [(out[i : i + size], y[i : i + size]) for i in range(0, n, size)]


def test_accuracy_accumulates_over_uneven_batches():
    out, y, parts = batches(np.random.default_rng(0))
    m = metrics.get("accuracy")
    for o, t in parts:
        m.update(o, t)
    assert m.result() == pytest.approx(np.mean(out.argmax(1) == y))


def test_accuracy_accepts_probability_targets_and_binary_logits():
    m = metrics.get("accuracy")
    m.update(np.array([[2.0, 0.0], [0.0, 1.0]]), np.array([[0.7, 0.3], [0.6, 0.4]]))  # mixup-like
    assert m.result() == 0.5
    b = metrics.get("accuracy")
    b.update(np.array([[1.5], [-0.2], [0.3]]), np.array([1.0, 0.0, 0.0]))
    assert b.result() == pytest.approx(2 / 3)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_top_k_matches_torch_topk(k):
    out, y, parts = batches(np.random.default_rng(1))
    m = metrics.get(f"top{k}_accuracy")
    for o, t in parts:
        m.update(o, t)
    top = torch.topk(torch.from_numpy(out), k, dim=1).indices.numpy()
    assert m.name == f"top{k}_accuracy"
    assert m.result() == pytest.approx(np.mean((top == y[:, None]).any(1)))


def test_mse_and_mae_match_torch():
    rng = np.random.default_rng(2)
    out, target = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    mse, mae = metrics.get("mse"), metrics.get("mae")
    for i in range(0, 50, 16):
        mse.update(out[i : i + 16], target[i : i + 16])
        mae.update(out[i : i + 16], target[i : i + 16])
    t_out, t_target = torch.from_numpy(out), torch.from_numpy(target)
    assert mse.result() == pytest.approx(torch.nn.functional.mse_loss(t_out, t_target).item())
    assert mae.result() == pytest.approx(torch.nn.functional.l1_loss(t_out, t_target).item())


def test_bad_names_and_shapes_are_explained():
    with pytest.raises(ValueError, match="choose one of accuracy"):
        metrics.get("acuracy")
    with pytest.raises(ValueError, match=r"targets of shape \(4,\)"):
        metrics.get("accuracy").update(np.zeros((4, 3)), np.zeros(5))
    with pytest.raises(ValueError, match="differ"):
        metrics.get("mse").update(np.zeros((4, 3)), np.zeros((4, 2)))
