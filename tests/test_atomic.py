"""Files and folders are written whole or not at all, by every writer."""

from __future__ import annotations

import os

import numpy as np
import pytest

from calotools import artifacts, atomic, data, ntuple
from calotools.testing import random_clusters


def test_a_file_appears_only_when_its_block_completes(tmp_path):
    target = tmp_path / "table.csv"
    with atomic.atomic_write(target) as tmp:
        tmp.write_text("a,b\n")
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".table.csv.")
        assert tmp.suffix == ".csv"
        assert not target.exists()
    assert target.read_text() == "a,b\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = atomic.write_text(tmp_path / "notes.txt", "old")

    def interrupted() -> None:
        with atomic.atomic_write(target) as tmp:
            tmp.write_text("half of the new")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_temporary_names_are_per_process(tmp_path):
    assert str(os.getpid()) in atomic.temporary_path(tmp_path / "x.root").name


def test_a_folder_replaces_the_old_one_whole_or_not_at_all(tmp_path):
    folder = tmp_path / "model"
    with atomic.atomic_folder(folder) as partial:
        (partial / "a.json").write_text("1")

    def failing() -> None:
        with atomic.atomic_folder(folder) as partial:
            (partial / "a.json").write_text("2")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        failing()
    assert (folder / "a.json").read_text() == "1"
    with atomic.atomic_folder(folder) as partial:
        (partial / "b.json").write_text("3")
    assert sorted(p.name for p in folder.iterdir()) == ["b.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize(
    "write",
    [
        lambda path: ntuple.write_clusters(path.with_suffix(".root"), random_clusters(20)),
        lambda path: artifacts.write_json(path.with_suffix(".json"), {"a": np.float32(1.5)}),
        lambda path: data.Split(
            {"test": data.Selection((data.SampleFile(path, "pi0", 0, 3),), [0, 0], [1, 2])}
        ).save(path.with_suffix(".npz")),
    ],
    ids=["ntuple", "json", "split"],
)
def test_every_writer_leaves_only_its_file(tmp_path, write):
    written = write(tmp_path / "out")
    assert [p.name for p in tmp_path.iterdir()] == [written.name]
