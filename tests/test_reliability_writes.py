"""Writes that cannot destroy data, and data that is never reused when it is not what it claims.

Each test builds the state a fault leaves (a crash between the sidecar and the
rename, a truncated copy, a process killed outright) with the real simulation
and real files, then checks what the next run does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sample_factory import write_samples

from calotools import atomic, ntuple
from calotools.errors import CalibrationFileError, OutputPathError
from calotools.sim import samples

N = 300
SIMULATE = [sys.executable, "-m", "calotools", "simulate", "--sample"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A π0 sample and its sidecar, made once."""
    folder = tmp_path_factory.mktemp("made")
    path = samples.make_sample("pi0", folder / "pi0.root", n_events=N, progress=False, workers=1)
    return path


def _copy(made, folder):
    target = folder / made.name
    shutil.copy(made, target)
    shutil.copy(made.with_suffix(".json"), target.with_suffix(".json"))
    return target


def _remade(path) -> bool:
    before = path.stat().st_mtime_ns
    time.sleep(0.01)
    samples.make_sample("pi0", path, n_events=N, progress=False, workers=1)
    return path.stat().st_mtime_ns != before


def test_the_sidecar_records_the_file(made):
    """The sidecar says which file it describes: size and SHA-256."""
    facts = json.loads(made.with_suffix(".json").read_text())["file"]
    assert facts["size"] == made.stat().st_size
    assert len(facts["sha256"]) == 64


def test_an_intact_sample_is_reused(made, tmp_path):
    """The same configuration and the file the sidecar describes: reused, not remade."""
    assert not _remade(_copy(made, tmp_path))


def test_a_truncated_file_with_an_intact_sidecar_is_made_again(made, tmp_path):
    """A file cut short (a full disk, a broken copy) is not reused."""
    path = _copy(made, tmp_path)
    with path.open("r+b") as stream:
        stream.truncate(path.stat().st_size // 2)
    assert _remade(path)
    assert len(ntuple.read_clusters(path)) == len(ntuple.read_clusters(made))


def test_a_stale_sidecar_beside_other_data_is_not_reused(made, tmp_path):
    """A crash between writing the sidecar and renaming the file leaves a sidecar of other data.

    The state is made exactly: the sidecar of this configuration beside the
    file of another (the old file the rename would have replaced).
    """
    path = _copy(made, tmp_path)
    samples.make_sample(
        "pi0", tmp_path / "other.root", n_events=N, seed=7, progress=False, workers=1
    )
    shutil.copy(tmp_path / "other.root", path)
    assert _remade(path)
    assert ntuple.read_clusters(path).scalars.equals(ntuple.read_clusters(made).scalars)


def test_a_sidecar_of_an_older_calotools_is_not_trusted(made, tmp_path):
    """A sidecar without the file's checksum (calotools 0.2) cannot vouch for the file."""
    path = _copy(made, tmp_path)
    sidecar = path.with_suffix(".json")
    content = json.loads(sidecar.read_text())
    del content["file"]
    sidecar.write_text(json.dumps(content))
    assert _remade(path)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("x.json", "must end in .root"),
        ("folder", "is a folder"),
        ("real.root", "not made by calotools"),
        ("notes.txt/pi0.root", "not a writable folder"),
    ],
)
def test_bad_outputs_are_refused_before_any_work(tmp_path, name, message):
    """`simulate --out` a JSON name, a folder or someone's ROOT file: refused at once, nothing lost."""
    (tmp_path / "folder").mkdir()
    (tmp_path / "real.root").write_bytes(b"someone's data")
    (tmp_path / "x.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("a file where a folder is expected")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    start = time.monotonic()
    with pytest.raises(OutputPathError, match=message):
        samples.make_sample("pi0", tmp_path / name, n_events=100_000, progress=False, workers=1)
    assert time.monotonic() - start < 10  # refused before 100k events were simulated
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused_before_any_work(tmp_path):
    """A folder that cannot be written is named at once, not after the simulation."""
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputPathError, match="cannot write"):
            samples.make_sample("pi0", folder / "pi0.root", n_events=N, progress=False)
    finally:
        folder.chmod(0o700)


def test_the_command_line_names_a_bad_output_in_one_line(tmp_path):
    """`calotools simulate --out x.json` prints one line and exits with 2."""
    result = subprocess.run(
        [*SIMULATE, "pi0", "--n", "10", "--out", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert "must end in .root" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_lcw_tables_that_are_text_are_named(tmp_path):
    """`--lcw` at a text file: an error naming the file and the format expected, no pickle advice."""
    path = tmp_path / "tables.npz"
    path.write_text("not tables\n")
    with pytest.raises(CalibrationFileError, match=r"tables.npz is not an LCW calibration") as err:
        samples.make_sample("pi0", tmp_path / "pi0.root", n_events=N, lcw=path, progress=False)
    assert "pickle" not in str(err.value)


def _stat(pid: int | str) -> list[str]:
    """State, parent pid, … of a process, from /proc (the fields after its name)."""
    return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def _descendants(pid: int) -> set[int]:
    children = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(entry.name)[1]) == pid:
                    children.add(int(entry.name))
            except OSError:
                continue
    return children


def _alive(pid: int) -> bool:
    try:
        return _stat(pid)[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_kill_9_leaves_no_worker_and_the_next_run_no_temporary(tmp_path):
    """`kill -9` of simulate: its workers end with it, and the next run removes its temporary."""
    out = tmp_path / "pipm.root"
    command = [sys.executable, "-m", "calotools", "simulate", "--sample", "pipm"]
    command += ["--n", "500000", "--workers", "2", "--out", str(out)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        workers: set[int] = set()
        while len(workers) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
            workers = _descendants(process.pid)
        assert len(workers) >= 2, "the workers did not start within 60 s"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    temporaries = [p for p in tmp_path.iterdir() if p.name.startswith(".pipm.root.")]
    assert temporaries, "the killed run left its temporary (the state to clean up)"
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "worker processes outlived their parent"

    samples.make_sample("pipm", out, n_events=N, progress=False, workers=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipm.json", "pipm.root"]


def test_a_live_process_keeps_its_temporary(tmp_path):
    """A temporary of a running process (or another machine) is a write in progress: kept."""
    path = tmp_path / "pi0.root"
    mine = atomic.temporary_path(path)
    mine.write_bytes(b"")
    other_host = tmp_path / ".pi0.root.elsewhere.1.tmp.root"
    other_host.write_bytes(b"")
    parent = path.with_name(f".pi0.root.{mine.name.split('.')[3]}.{os.getppid()}.tmp.root")
    parent.write_bytes(b"")
    assert atomic.remove_stale_temporaries(path) == []
    assert mine.exists()
    assert other_host.exists()
    assert parent.exists()


def test_train_overwrite_leaves_a_data_folder_intact(tmp_path):
    """`train --out DATA --overwrite` on a data folder refuses and deletes nothing."""
    from calotools import training

    files = write_samples(tmp_path / "data", n_pi0=50, n_pipm=50)
    before = sorted(p.name for p in (tmp_path / "data").iterdir())
    with pytest.raises(OutputPathError, match="left intact"):
        training.train("bdt", tmp_path / "data", tmp_path / "data", overwrite=True)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == before
    assert all(path.exists() for path in files.values())
