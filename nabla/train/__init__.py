"""Training: the :class:`Trainer` loop, metrics, callbacks, checkpoints and resume.

>>> import nabla as nb
>>> from nabla import nn, optim, models
>>> from nabla.data import DataLoader, datasets
>>> from nabla.train import Trainer
>>> _ = nb.manual_seed(0)
>>> train, test = datasets.digits(flatten=True)
>>> model = models.mlp([64, 64, 10])
>>> trainer = Trainer(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=1e-2),
...                   metrics=["accuracy"])
>>> history = trainer.fit(DataLoader(train, batch_size=32, shuffle=True), epochs=5, verbose=0)
>>> trainer.evaluate(DataLoader(test, batch_size=256))["accuracy"] > 0.9
True
"""

from . import callbacks, checkpoint, metrics, snapshots
from .history import History
from .trainer import Trainer, TrainingDivergedError

__all__ = [
    "History",
    "Trainer",
    "TrainingDivergedError",
    "callbacks",
    "checkpoint",
    "metrics",
    "snapshots",
]
