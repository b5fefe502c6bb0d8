"""``python -m nabla`` is the ``nabla`` command (needed where a launcher takes a module, such as
``python -m mpi4py.futures -m nabla sweep ...``)."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while Python loads nabla: nothing had started
    sys.exit(130)

sys.exit(main())
