"""The optimizer lab: see why an optimizer behaves as it does, and check the lecture's claims.

- :mod:`nabla.lab.functions`: two-dimensional test functions (Beale, Rosenbrock, ...) written with
  nabla ops, with their known minima;
- :mod:`nabla.lab.trajectories`: the real optimizer classes on those functions, contour plots, GIF
  animations and a table (``nabla lab trajectories``);
- :mod:`nabla.lab.landscape`: loss landscapes after Li et al. 2018 (``nabla lab landscape``);
- :mod:`nabla.lab.lr_range`: the learning-rate range test (``nabla lab lr-range``);
- :mod:`nabla.lab.capacity`: train vs dev error against model size and regularization
  (``nabla lab capacity``);
- :mod:`nabla.lab.experiments`: ``nabla experiment NAME``, each reproducing a published claim and
  ending with ``claim: ... | ours: ... | PASS/FAIL``.

Everything drives the same models, optimizers and trainer as ``nabla train``; nothing here is a
separate re-implementation. Submodules are imported on demand (matplotlib is slow to import).
"""
