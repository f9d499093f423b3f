"""Keras through calotools.backend: TensorFlow's start-up lines follow TF_CPP_MIN_LOG_LEVEL."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from calotools import backend

# What TensorFlow 2.21 prints when it loads on a CPU-only machine (abridged).
STARTUP = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796161051.836514    9687 port.cc:153] oneDNN custom operations are on.\n"
    "I0000 00:00:1796161051.837580    9687 cudart_stub.cc:31] Could not find cuda drivers on your"
    " machine, GPU will not be used.\n"
    "I0000 00:00:1796161051.900000    9687 cpu_feature_guard.cc:227] This TensorFlow binary is"
    " optimized to use available CPU instructions in performance-critical operations.\n"
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow.\n"
    "W0000 00:00:1796161052.000000    9687 some_op.cc:10] a warning\n"
    "E0000 00:00:1796161054.554755    9687 cuda_platform.cc:52] failed call to cuInit: INTERNAL:"
    " CUDA error: Failed call to cuInit: UNKNOWN ERROR (303)\n"
    "E0000 00:00:1796161054.600000    9687 other.cc:1] a real error\n"
    "F0000 00:00:1796161054.700000    9687 other.cc:2] fatal\n"
)


def severities(text: str) -> list[str]:
    return re.findall(r"^([IWEF])0000 ", text, flags=re.MULTILINE)


def test_level_0_keeps_everything():
    assert backend.kept_startup_lines(STARTUP, 0) == STARTUP


def test_level_2_keeps_errors_and_fatal_only():
    """INFO, WARNING, absl's own notice and an INFO's continuation line go; errors stay."""
    kept = backend.kept_startup_lines(STARTUP, 2)
    assert severities(kept) == ["E", "F"]
    assert "a real error" in kept
    assert "absl::InitializeLog" not in kept
    assert "To enable" not in kept


def test_failed_cuinit_counts_as_info_only_when_tensorflow_said_there_is_no_driver():
    """Without a driver cuInit must fail (INFO level); with one, its failure is an error."""
    assert "cuInit" not in backend.kept_startup_lines(STARTUP, 1)
    with_driver = STARTUP.replace("Could not find cuda drivers on your machine", "found a GPU")
    assert "cuInit" in backend.kept_startup_lines(with_driver, 2)


def test_level_3_keeps_fatal_only():
    assert severities(backend.kept_startup_lines(STARTUP, 3)) == ["F"]


def test_output_that_is_no_log_line_is_kept():
    """Whatever else a library printed meanwhile comes back unchanged."""
    text = "something else\n" + STARTUP + "E0000 00:00:1.0 1 x.cc:1] e\nnot a log line\n"
    kept = backend.kept_startup_lines(text, 2)
    assert kept.startswith("something else\n")
    assert kept.endswith("not a log line\n")


def _import_stderr(code: str, level: str) -> str:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": level}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return result.stderr


@pytest.mark.slow
def test_loading_keras_prints_no_startup_chatter_at_level_2():
    """The real TensorFlow, imported through calotools, prints no INFO or WARNING lines."""
    code = (
        "from calotools import backend\n"
        "keras = backend.keras()\n"
        "keras.ops.add(1.0, 1.0)\n"
        "import sys; print('python stderr still works', file=sys.stderr)\n"
    )
    stderr = _import_stderr(code, "2")
    assert not re.search(r"^[IW]\d{4} ", stderr, flags=re.MULTILINE), stderr
    assert "absl::InitializeLog" not in stderr
    assert "python stderr still works" in stderr


@pytest.mark.slow
def test_at_level_0_the_lines_are_those_of_a_plain_import():
    """Nothing is lost: with every level shown, the same log lines as without calotools."""
    plain = "import tensorflow as tf, keras\ntf.config.list_physical_devices()\n"
    through_calotools = "from calotools import backend\nbackend.keras()\n"

    def where(stderr: str) -> list[str]:  # severity and source line, not the time stamps
        return re.findall(r"^([IWEF])\d{4} [\d:.]+\s+\d+ (\S+:\d+)\]", stderr, re.MULTILINE)

    expected = where(_import_stderr(plain, "0"))
    if not expected:
        pytest.skip("this TensorFlow prints no start-up log lines")
    assert where(_import_stderr(through_calotools, "0")) == expected


def test_a_bad_log_level_is_named(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "quiet")
    with pytest.raises(ValueError, match="TF_CPP_MIN_LOG_LEVEL must be 0, 1, 2 or 3, got 'quiet'"):
        backend._log_level()
