"""Where ``nabla.compile`` listens while it traces a step.

Define-and-run needs to see the program once: every operation, every backward, every optimizer
call, every module called, every write that happens outside an operation. The places that do
those things tell the active recorder, when there is one::

    if Trace.recorder is not None:
        Trace.recorder.op(...)

Outside a trace ``recorder`` is None and the check is one attribute read. The recorder itself
(what it keeps and how it turns that into a plan) lives in :mod:`nabla.compile`; this module only
holds the slot, so that the lower layers (autograd, nn, optim) need not import it.
"""

from __future__ import annotations


class Trace:
    # The object that records the step being traced (nabla.compile's Recorder), or None.
    recorder = None
