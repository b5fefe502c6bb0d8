"""``python -m nabla`` is the ``nabla`` command (needed where a launcher takes a module, such as
``python -m mpi4py.futures -m nabla sweep ...``)."""

import sys

from .cli import main

sys.exit(main())
