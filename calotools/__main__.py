"""``python -m calotools``: the same as the ``calotools`` command."""

import sys

from calotools.cli import main

sys.exit(main())
