"""``python -m ganlib``: the same as the ``ganlib`` command."""

import sys

from .cli import main

sys.exit(main())
