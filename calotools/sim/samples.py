"""Making simulated samples: cells → clusters → LCW → ntuple files, with sidecars.

A sample is a file of topo-clusters in the MLTree format made from a
single-particle gun: ``pi0``, ``pipm`` (half π+, half π−) or ``gamma``. Each
file gets a JSON sidecar (``pi0.root`` → ``pi0.json``) with the configuration
and the calotools version that made it. Files are written batch by batch, so
memory stays flat however many events are asked for, under a temporary name,
so an interrupted run leaves complete files or none. The sidecar, which records
the file's size and SHA-256, is written before the file is renamed into place;
asking again for a file reuses it only if the sidecar has the same
configuration *and* the file is the one it describes, so a stale sidecar or a
truncated file is made again, never reused. An existing ``.root`` file without
a sidecar (not made by calotools: real data, perhaps) is never replaced.

`make_default` makes the default data set of the notebooks: LCW tables fitted
on an independent calibration sample, then ``pi0.root`` and ``pipm.root``.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from calotools import atomic
from calotools.errors import InvalidValueError, OutputPathError
from calotools.ntuple import Clusters, ClusterWriter
from calotools.sim.calibration import LCWCalibration
from calotools.sim.clustering import ClusteringConfig
from calotools.sim.config import PARTICLES, SimulationConfig
from calotools.sim.pileup import PileupLibrary, overlay_window
from calotools.sim.reconstruction import reconstruct
from calotools.sim.simulation import simulate_batch
from calotools.sim.workers import default_workers, ordered_map
from calotools.version import __version__

__all__ = [
    "CALIBRATION_SEED_OFFSET",
    "DEFAULT_EVENTS",
    "SAMPLES",
    "DefaultDataSet",
    "check_output",
    "default_folder",
    "default_workers",
    "make_default",
    "make_lcw_tables",
    "make_sample",
    "quick_mode",
    "sample_configs",
]

logger = logging.getLogger(__name__)

#: The particles of each sample. ``pipm`` mixes both charges in equal numbers.
SAMPLES: Mapping[str, tuple[str, ...]] = {
    "pi0": ("pi0",),
    "pipm": ("pi+", "pi-"),
    "gamma": ("gamma",),
}

#: Events per sample of the default data set, in full and in quick mode.
DEFAULT_EVENTS = {"full": 100_000, "quick": 4_000}
#: Events per sample of the LCW calibration sample.
CALIBRATION_EVENTS = {"full": 30_000, "quick": 4_000}
#: The calibration sample is simulated with ``seed + CALIBRATION_SEED_OFFSET``
#: so that it is independent of the samples it calibrates (docs/physics.md §5).
CALIBRATION_SEED_OFFSET = 10_000

LCW_TABLES = "lcw_tables.npz"


def quick_mode() -> bool:
    """Whether ``CALOTOOLS_QUICK`` asks for the quick mode (small data, few epochs)."""
    return os.environ.get("CALOTOOLS_QUICK", "").strip().lower() not in {"", "0", "false", "no"}


def default_folder(base: str | os.PathLike = "data", *, quick: bool | None = None) -> Path:
    """Where the default data set lives: ``data/``, or ``data/quick/`` in quick mode.

    Quick data has its own folder so that a quick run never replaces full data.
    ``CALOTOOLS_DATA`` overrides ``base``.
    """
    base = Path(os.environ.get("CALOTOOLS_DATA", base))
    return base / "quick" if (quick_mode() if quick is None else quick) else base


def sample_configs(
    sample: str, n_events: int, *, seed: int = 0, **simulation: Any
) -> list[SimulationConfig]:
    """The simulation configurations of ``sample``: one per particle.

    The ``pipm`` sample has ⌈n/2⌉ π+ and ⌊n/2⌋ π− events; their random
    streams differ by particle, so one seed serves both.
    """
    if sample not in SAMPLES:
        msg = f"unknown sample {sample!r}; the samples are: {', '.join(SAMPLES)}"
        raise InvalidValueError(msg)
    particles = SAMPLES[sample]
    counts = [
        n_events // len(particles) + (i < n_events % len(particles)) for i in range(len(particles))
    ]
    return [
        SimulationConfig(particle=particle, n_events=count, seed=seed, **simulation)
        for particle, count in zip(particles, counts, strict=True)
        if count > 0
    ]


def _tasks(configs: Sequence[SimulationConfig]) -> Iterator[tuple[int, int, int]]:
    """(particle index, start, stop) in alternation, so every chunk of a file mixes particles."""
    starts = [0] * len(configs)
    while any(start < config.n_events for start, config in zip(starts, configs, strict=True)):
        for index, config in enumerate(configs):
            if starts[index] < config.n_events:
                stop = min(starts[index] + config.batch_size, config.n_events)
                yield index, starts[index], stop
                starts[index] = stop


@dataclass(frozen=True)
class _Job:
    """What every batch of a sample shares; sent once to each worker process."""

    configs: tuple[SimulationConfig, ...]
    clustering: ClusteringConfig
    lcw: Path | None
    keep_cells: bool
    #: In-time pile-up: ⟨μ⟩ and the minimum-bias library overlaid (None: none).
    mu: float = 0.0
    library: Path | None = None


_job: _Job | None = None
_calibration: LCWCalibration | None = None
_library: PileupLibrary | None = None


def _start_worker(job: _Job) -> None:
    global _job, _calibration, _library  # noqa: PLW0603 - per-process state of a worker
    _job = job
    _calibration = LCWCalibration.load(job.lcw) if job.lcw else None
    _library = PileupLibrary.load(job.library) if job.library else None


def _worker_job() -> _Job:
    """The job `_start_worker` gave this process."""
    if _job is None:
        msg = "_start_worker has not run in this process"
        raise RuntimeError(msg)
    return _job


def _run(task: tuple[int, int, int]) -> tuple[Clusters, pd.DataFrame | None, int]:
    """Simulate, reconstruct and calibrate one batch (in a worker or in-process)."""
    job = _worker_job()
    index, start, stop = task
    config = job.configs[index]
    batch = simulate_batch(config, start, stop)
    if _library is not None:
        # Keyed by the particle too: π+ and π− events share event numbers.
        particle = (list(PARTICLES).index(config.particle),)
        batch = overlay_window(batch, _library, job.mu, seed=config.seed, stream=particle)
    result = reconstruct(batch, job.clustering)
    clusters = result.clusters
    if _library is not None:
        # The batch row of each cluster's event (event numbers are sorted in a batch).
        numbers = result.clusters.scalars["eventNumber"].to_numpy()
        event = np.searchsorted(batch.event_number, numbers)
        actual = batch.extra["actual_mu"][event]
        clusters.scalars["averageInteractionsPerCrossing"] = np.full(len(event), job.mu, "f4")
        clusters.scalars["actualInteractionsPerCrossing"] = actual.astype(np.float32)
    # Event numbers unique across the particles of a mixed sample.
    clusters.scalars["eventNumber"] = (
        clusters.scalars["eventNumber"].to_numpy() * len(job.configs) + index
    )
    if _calibration is not None:
        calibrated = _calibration.apply(clusters.scalars, result.cells)
        for column in calibrated.columns:
            clusters.scalars[column] = calibrated[column].to_numpy()
    return clusters, result.cells if job.keep_cells else None, stop - start


def _reconstructed(
    job: _Job, progress: bool, label: str, workers: int
) -> Iterator[tuple[Clusters, pd.DataFrame | None]]:
    """Batches of a sample in order; with several workers, computed in parallel.

    Every batch is seeded by its event numbers, so the output does not depend
    on ``workers``.
    """
    from tqdm.auto import tqdm

    total = sum(config.n_events for config in job.configs)
    results = ordered_map(_run, _tasks(job.configs), start=_start_worker, job=job, workers=workers)
    with tqdm(total=total, desc=label, unit="event", disable=not progress, mininterval=1) as bar:
        for clusters, cells, n in results:
            bar.update(n)
            yield clusters, cells


def _sidecar(path: Path) -> Path:
    return path.with_suffix(".json")


def _write_json(path: Path, content: Mapping[str, Any]) -> None:
    atomic.write_text(path, json.dumps(content, indent=2, sort_keys=True) + "\n")


def _file_facts(path: Path) -> dict[str, Any]:
    """What identifies a file's contents: its size and SHA-256."""
    return {"size": path.stat().st_size, "sha256": atomic.sha256(path)}


def _reusable(path: Path, configuration: Mapping[str, Any]) -> bool:
    """Whether ``path`` is the file its sidecar describes, made with ``configuration``."""
    sidecar = _sidecar(path)
    if not (path.is_file() and sidecar.is_file()):
        return False
    try:
        recorded = json.loads(sidecar.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        logger.info("%s: its sidecar %s is unreadable; making it again", path, sidecar)
        return False
    if not isinstance(recorded, dict) or recorded.get("configuration") != _jsonable(configuration):
        return False
    # A crash between the sidecar and the rename, a truncated copy, an edit:
    # the configuration matches but the file is not the one it describes.
    facts = recorded.get("file")
    if not isinstance(facts, dict) or facts.get("size") != path.stat().st_size:
        logger.info("%s: not the file its sidecar describes (size); making it again", path)
        return False
    if facts.get("sha256") != atomic.sha256(path):
        logger.info("%s: not the file its sidecar describes (SHA-256); making it again", path)
        return False
    return True


def check_output(path: str | os.PathLike, *, suffix: str = ".root") -> Path:
    """Check, before any work, that a sample can be written to ``path``.

    Refuses, with `calotools.errors.OutputPathError`: a name without ``suffix``
    (``x.json`` would be its own sidecar), an existing folder, an existing file
    that calotools did not make (no sidecar: real data is never replaced), and
    a folder that cannot be written.
    """
    path = Path(path)
    if path.is_dir():
        msg = f"{path} is a folder; give the sample file to write, e.g. {path / ('pi0' + suffix)}"
        raise OutputPathError(msg)
    if path.suffix != suffix:
        msg = f"{path}: a sample file must end in {suffix} (its sidecar is {path.stem}.json)"
        raise OutputPathError(msg)
    if path.exists() and not _sidecar(path).is_file():
        msg = (
            f"{path} exists and was not made by calotools (it has no sidecar "
            f"{_sidecar(path).name}); it is left as it is: remove it or choose another name"
        )
        raise OutputPathError(msg)
    atomic.check_writable(path)
    return path


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _describe(path: Path, configuration: Mapping[str, Any], *, data: Path, **facts: Any) -> None:
    """Write the sidecar of ``path`` from the complete file ``data`` (its temporary)."""
    _write_json(
        _sidecar(path),
        {
            "configuration": _jsonable(configuration),
            "calotools_version": __version__,
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "file": _file_facts(data),
            **facts,
        },
    )


def _check_count(name: str, value: int) -> None:
    if value < 1:
        msg = f"{name} must be at least 1, got {value}"
        raise InvalidValueError(msg)


def make_sample(
    sample: str,
    path: str | os.PathLike,
    *,
    n_events: int,
    seed: int = 0,
    lcw: str | os.PathLike | None = None,
    clustering: ClusteringConfig | None = None,
    simulation: Mapping[str, Any] | None = None,
    progress: bool = True,
    workers: int | None = None,
    mu: float = 0.0,
    library: str | os.PathLike | None = None,
) -> Path:
    """Simulate, reconstruct, calibrate and write one sample.

    Parameters
    ----------
    sample
        ``"pi0"``, ``"pipm"`` or ``"gamma"``.
    path
        Output ROOT file; its sidecar is ``path`` with the suffix ``.json``.
    n_events
        Number of generated particles (each gives zero or more clusters).
    seed
        Seed of the simulation.
    lcw
        LCW tables (`calotools.sim.calibration.LCWCalibration.save`) to fill the
        ``cluster_EM_PROBABILITY`` … ``cluster_E_LCCalib`` branches; without
        them those branches are left out.
    clustering
        Topo-clustering settings (default: ATLAS 4-2-0).
    simulation
        Further `calotools.sim.config.SimulationConfig` fields, e.g.
        ``{"e_min": 1.0, "noise_scale": 2.0}``.
    progress
        Show a progress bar.
    workers
        Processes that simulate and reconstruct batches in parallel (default:
        one per CPU core); the output is the same for any number.
    mu, library
        In-time pile-up: Poisson(``mu``) minimum-bias events of the library
        (`calotools.sim.pileup.PileupLibrary.save`) overlaid on each window
        (`calotools.sim.pileup.overlay_window`, ``docs/pileup.md``). The hard
        scatter is the same at every ``mu``, so files of one seed pair up event
        by event; with a library the file has the branches
        ``averageInteractionsPerCrossing``, ``actualInteractionsPerCrossing``
        and ``cluster_ENG_CALIB_FRAC_PILEUP`` (also at ``mu = 0``).
    """
    path = Path(path)
    _check_count("n_events", n_events)
    library_path = Path(library) if library is not None else None
    if not (isinstance(mu, (int, float)) and math.isfinite(mu) and mu >= 0):
        msg = f"mu (the mean number of pile-up interactions) must be a number >= 0; got {mu!r}"
        raise InvalidValueError(msg)
    if mu > 0 and library_path is None:
        msg = f"mu = {mu} needs a pile-up library to overlay (library=...: PileupLibrary.save)"
        raise InvalidValueError(msg)
    if library_path is not None and not library_path.is_file():
        msg = (
            f"library: {library_path} is not a file; make a pile-up library with "
            "calotools.sim.event_samples.make_pileup_library (or PileupLibrary.save)"
        )
        raise InvalidValueError(msg)
    clustering = clustering or ClusteringConfig()
    configs = sample_configs(sample, n_events, seed=seed, **dict(simulation or {}))
    lcw_path = Path(lcw) if lcw is not None else None
    configuration = {
        "sample": sample,
        "n_events": n_events,
        "simulation": [config.to_dict() for config in configs],
        "clustering": clustering.to_dict(),
        "lcw_sha256": atomic.sha256(lcw_path) if lcw_path else None,
    }
    if library_path is not None:
        # Only with pile-up: files made before it existed stay reusable.
        configuration["pileup"] = {"mu": float(mu), "library_sha256": atomic.sha256(library_path)}
    if _reusable(path, configuration):
        logger.info("%s: reusing (made with the same configuration)", path)
        return path
    check_output(path)
    if lcw_path is not None:
        LCWCalibration.load(lcw_path)  # a bad file fails here, before any work
    if library_path is not None:
        PileupLibrary.load(library_path)  # likewise
    job = _Job(tuple(configs), clustering, lcw_path, False, float(mu), library_path)
    n_clusters = 0
    writer = ClusterWriter(path)
    try:
        for clusters, _ in _reconstructed(job, progress, path.name, workers or default_workers()):
            writer.write(clusters)
            n_clusters += len(clusters)
        complete = writer.finish()
        # The sidecar first: a crash before the rename leaves a sidecar that
        # describes no file here, which `_reusable` sees; never the reverse.
        _describe(
            path,
            configuration,
            data=complete,
            n_clusters=n_clusters,
            lcw_tables=str(lcw_path) if lcw_path else None,
        )
        writer.commit()
    except BaseException:
        writer.abort()
        raise
    logger.info("%s: %d events, %d clusters", path, n_events, n_clusters)
    return path


def _calibration_inputs(
    sample: str,
    n_events: int,
    seed: int,
    clustering: ClusteringConfig,
    progress: bool,
    workers: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clusters and cells of a calibration sample, cluster rows numbered across batches."""
    cluster_parts, cell_parts, offset = [], [], 0
    job = _Job(tuple(sample_configs(sample, n_events, seed=seed)), clustering, None, True)
    for clusters, cells in _reconstructed(job, progress, f"LCW {sample}", workers):
        if cells is None:  # the job keeps the cells
            msg = f"LCW {sample}: a batch came back without its cells"
            raise RuntimeError(msg)
        cell_parts.append(cells.assign(cluster=cells["cluster"].to_numpy() + offset))
        cluster_parts.append(clusters.scalars)
        offset += len(clusters)
    return (
        pd.concat(cluster_parts, ignore_index=True),
        pd.concat(cell_parts, ignore_index=True),
    )


def make_lcw_tables(
    path: str | os.PathLike,
    *,
    n_events: int,
    seed: int = 0,
    clustering: ClusteringConfig | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> Path:
    """Fit the LCW tables on independent π0 and π± calibration samples and save them."""
    path = Path(path)
    _check_count("n_events", n_events)
    clustering = clustering or ClusteringConfig()
    calibration_seed = seed + CALIBRATION_SEED_OFFSET
    configuration = {
        "n_events": n_events,
        "seed": calibration_seed,
        "simulation": [
            config.to_dict()
            for sample in ("pi0", "pipm")
            for config in sample_configs(sample, n_events, seed=calibration_seed)
        ],
        "clustering": clustering.to_dict(),
    }
    if _reusable(path, configuration):
        logger.info("%s: reusing (made with the same configuration)", path)
        return path
    check_output(path, suffix=".npz")
    inputs = {
        sample: _calibration_inputs(
            sample, n_events, calibration_seed, clustering, progress, workers or default_workers()
        )
        for sample in ("pi0", "pipm")
    }
    tables = LCWCalibration.fit(pi0=inputs["pi0"], pipm=inputs["pipm"])
    with atomic.atomic_write(path) as complete:
        tables.save(complete)
        _describe(path, configuration, data=complete)  # before the rename, as in make_sample
    logger.info("%s: LCW tables from %d π0 and %d π± calibration events", path, n_events, n_events)
    return path


@dataclass(frozen=True)
class DefaultDataSet:
    """Where the default data set lives."""

    folder: Path

    @property
    def pi0(self) -> Path:
        return self.folder / "pi0.root"

    @property
    def pipm(self) -> Path:
        return self.folder / "pipm.root"

    @property
    def lcw_tables(self) -> Path:
        return self.folder / LCW_TABLES


def make_default(
    folder: str | os.PathLike | None = None,
    *,
    n_events: int | None = None,
    n_calibration: int | None = None,
    seed: int = 0,
    quick: bool | None = None,
    progress: bool = True,
    workers: int | None = None,
) -> DefaultDataSet:
    """Make (or reuse) the default data set: LCW tables, ``pi0.root``, ``pipm.root``.

    Parameters
    ----------
    folder
        Where to write; default `default_folder` (``data/`` or ``data/quick/``).
    n_events, n_calibration
        Events per sample and per calibration sample; default from
        `DEFAULT_EVENTS` and `CALIBRATION_EVENTS`, smaller in quick mode.
    seed
        Seed of the samples; the calibration sample uses
        ``seed + CALIBRATION_SEED_OFFSET``.
    quick
        Quick mode; default: the ``CALOTOOLS_QUICK`` environment variable.
    progress, workers
        As for `make_sample`.
    """
    for name, count in (("n_events", n_events), ("n_calibration", n_calibration)):
        if count is not None:  # refused before the calibration sample takes minutes
            _check_count(name, count)
    quick = quick_mode() if quick is None else quick
    mode = "quick" if quick else "full"
    data = DefaultDataSet(Path(folder) if folder is not None else default_folder(quick=quick))
    data.folder.mkdir(parents=True, exist_ok=True)
    make_lcw_tables(
        data.lcw_tables,
        n_events=CALIBRATION_EVENTS[mode] if n_calibration is None else n_calibration,
        seed=seed,
        progress=progress,
        workers=workers,
    )
    for sample, path in (("pi0", data.pi0), ("pipm", data.pipm)):
        make_sample(
            sample,
            path,
            n_events=DEFAULT_EVENTS[mode] if n_events is None else n_events,
            seed=seed,
            lcw=data.lcw_tables,
            progress=progress,
            workers=workers,
        )
    return data
