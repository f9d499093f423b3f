"""The public face of the package."""

from __future__ import annotations

import subprocess
import sys

import calotools


def test_import_is_light():
    """`import calotools` does not import TensorFlow (submodules load on first use)."""
    code = "import calotools, sys; print('tensorflow' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_submodules_load_on_first_access():
    """calotools.geometry works after a bare `import calotools`."""
    assert calotools.geometry.layer("EMB2").image_shape == (16, 16)
    assert "ntuple" in dir(calotools)
