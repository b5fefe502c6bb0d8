import numpy as np
import pytest
import torch

import nabla as nb
from nabla import models, nn, optim
from nabla.data import ArrayDataset, DataLoader, datasets
from nabla.train import Trainer, TrainingDivergedError, callbacks


def digits_trainer(cbs=(), lr=1e-2, **kwargs):
    nb.manual_seed(0)
    train, test = datasets.digits(flatten=True)
    model = models.mlp([64, 64, 10])
    opt = optim.Adam(model.parameters(), lr=lr)
    trainer = Trainer(
        model,
        nn.CrossEntropyLoss(),
        opt,
        metrics=["accuracy", "top3_accuracy"],
        callbacks=cbs,
        **kwargs,
    )
    return trainer, DataLoader(train, batch_size=32, shuffle=True), DataLoader(test, batch_size=100)


def test_fit_learns_digits_and_records_history(capsys):
    trainer, train, test = digits_trainer()
    history = trainer.fit(train, epochs=3, dev=test, verbose=1)
    assert len(history) == 3 and trainer.epoch == 3 and trainer.step == 3 * len(train)
    assert history["dev_accuracy"][-1] > 0.9 and history["loss"][0] > history["loss"][-1]
    assert set(history.history) >= {"loss", "accuracy", "top3_accuracy", "dev_loss", "lr", "time"}
    assert len(history.steps["loss"]) == trainer.step
    assert np.all(np.isfinite(history.steps["grad_norm"]))
    ratios = np.array(history.steps["update_ratio"])
    assert np.isfinite(ratios[::10]).all() and np.isnan(ratios[1:10]).all()
    out = capsys.readouterr().out.splitlines()  # not a terminal: one summary line per epoch
    assert len(out) == 3 and out[0].startswith("epoch 1/3") and "dev_accuracy" in out[0]


def test_evaluate_matches_a_direct_computation():
    trainer, train, test = digits_trainer()
    trainer.fit(train, epochs=1, verbose=0)
    result = trainer.evaluate(test)
    logits = trainer.predict(test)
    y = test.dataset.y
    t_loss = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y))
    assert result["loss"] == pytest.approx(t_loss.item(), rel=1e-5)
    assert result["accuracy"] == pytest.approx(np.mean(logits.argmax(1) == y))
    assert trainer.model.training  # evaluate puts the mode back


def test_update_ratio_is_the_relative_parameter_change():
    trainer, train, _ = digits_trainer(stats_every=1)
    before = np.concatenate([p.data.ravel() for p in trainer.model.parameters()])
    loader = DataLoader(train.dataset, batch_size=len(train.dataset))
    trainer.fit(loader, epochs=1, verbose=0)
    after = np.concatenate([p.data.ravel() for p in trainer.model.parameters()])
    expected = np.linalg.norm(after - before) / np.linalg.norm(before)
    assert trainer.history.steps["update_ratio"][0] == pytest.approx(expected, rel=1e-4)


def test_clip_grad_norm_reports_the_norm_before_clipping():
    trainer, train, _ = digits_trainer(clip_grad_norm=1e-3)
    trainer.fit(DataLoader(train.dataset, batch_size=2000), epochs=1, verbose=0)
    assert trainer.history.steps["grad_norm"][0] > 1e-3
    assert trainer.optimizer.grad_norm() == pytest.approx(1e-3, rel=1e-3)  # the step saw these


def test_a_nan_loss_stops_with_epoch_step_and_checkpoint(tmp_path):
    trainer, train, _ = digits_trainer([callbacks.ModelCheckpoint(tmp_path)], lr=1e6)
    x = train.dataset.x.copy()
    x[-40:] = np.inf  # the last batches of each epoch poison the forward pass
    bad = DataLoader(ArrayDataset(x, train.dataset.y), batch_size=500)
    with pytest.raises(
        TrainingDivergedError, match=r"epoch 1, step 3 \(batch 3 of the epoch\).*none was written"
    ):
        trainer.fit(bad, epochs=2, verbose=0)
    trainer2, _, _ = digits_trainer([callbacks.ModelCheckpoint(tmp_path)])
    good = DataLoader(train.dataset, batch_size=500)
    trainer2.fit(good, epochs=1, verbose=0)
    with pytest.raises(TrainingDivergedError, match=r"epoch 2, step 6.*last\.safetensors"):
        trainer2.fit(bad, epochs=2, verbose=0)


def test_weights_too_large_for_the_update_ratio_do_not_raise_numpy_warnings():
    # Adam's first step moves each of the 650 weights of a linear model by ~lr = 1e18: the loss
    # stays finite (log-sum-exp), but sum(w^2) ~ 6e38 overflows float32 in the update ratio's dot
    # product; that diagnostic must turn inf/nan, not raise (warnings are errors under pytest)
    nb.manual_seed(0)
    train, _ = datasets.digits(flatten=True)
    model = models.mlp([64, 10])
    trainer = Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e18))
    trainer.fit(DataLoader(train, batch_size=500), epochs=1, verbose=0)
    ratios = np.array(trainer.history.steps["update_ratio"], dtype=float)
    assert not np.isfinite(ratios).all()


def test_bad_arguments_are_explained():
    model = nn.Linear(2, 2)
    opt = optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(TypeError, match="loss must be callable"):
        Trainer(model, "mse", opt)
    with pytest.raises(ValueError, match="unknown metric"):
        Trainer(model, nn.MSELoss(), opt, metrics=["acc"])
    with pytest.raises(TypeError, match="Callback"):
        Trainer(model, nn.MSELoss(), opt, callbacks=[print])
    trainer = Trainer(model, nn.MSELoss(), opt)
    with pytest.raises(TypeError, match="DataLoader"):
        trainer.fit(42, epochs=1)
