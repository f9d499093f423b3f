"""``python -m calotools``: the same as the ``calotools`` command."""

import sys

from calotools.cli import main

if __name__ == "__main__":  # not when a doctest collector imports this module
    sys.exit(main())
