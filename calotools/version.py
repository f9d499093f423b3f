"""The version of calotools, for the modules that record it in what they write.

Its own module, so that low modules can stamp files with it without importing
the package's ``__init__``. setuptools-scm writes ``_version.py`` on install.
"""

from __future__ import annotations

try:
    from calotools._version import __version__
except ImportError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
