"""Files of collision events: Pythia → whole-barrel cells → topo-clusters → LCW → ntuple.

``docs/events.md``. `make_event_sample` writes one ROOT file with two trees:

- ``ClusterTree``: the topo-clusters in the same format as the single-particle
  samples (`calotools.ntuple`), so every loader, model and notebook reads them
  unchanged, with the truth of `calotools.sim.barrel.cluster_truth` and the
  event's ``averageInteractionsPerCrossing`` (⟨μ⟩), ``actualInteractionsPerCrossing``
  and ``mcEventWeight`` as extra branches;
- ``EventTree``: one entry per event with the generator's truth (p̂T, the
  leading truth jet, the weight), the truth jets (anti-kt R = 0.4 on the
  stable particles: ``truthJetPt``, …) and the stable truth particles in
  |η| < `TRUTH_PARTICLE_ETA_MAX` (MLTree's ``truthPartE``, ``truthPartPdgId``, …).

Jets of the clusters are the analysis' to build, at whatever scale it
calibrates them to (EM, LCW, a network's): `calotools.jets.cluster_jets`.

Every task is one generator chunk (`calotools.sim.generator.generate_chunk`),
seeded by (seed, sample, chunk), simulated in batches; worker processes
compute chunks in parallel and the file is the same for any number of them.
With ⟨μ⟩ > 0 a library of minimum-bias events is simulated first (or reused:
it is kept next to the file) and overlaid (`calotools.sim.pileup`).

Examples
--------
>>> path = make_event_sample("jz2w", tmp / "jz2w.root", n_events=4, progress=False)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import awkward as ak
import numpy as np

from calotools import atomic
from calotools.errors import InvalidValueError
from calotools.ntuple import Clusters, ClusterWriter
from calotools.sim import generator
from calotools.sim.barrel import EventDeposits, cluster_truth, digitise, simulate_deposits
from calotools.sim.calibration import LCWCalibration
from calotools.sim.clustering import ClusteringConfig
from calotools.sim.config import SimulationConfig
from calotools.sim.pileup import PileupLibrary, overlay
from calotools.sim.reconstruction import reconstruct
from calotools.sim.samples import _describe, _reusable, check_output
from calotools.sim.workers import default_workers, ordered_map

__all__ = [
    "DEFAULT_EVENTS",
    "EVENT_BATCH",
    "EVENT_TREE",
    "LIBRARY_EVENTS",
    "PILEUP_SEED_OFFSET",
    "TRUTH_PARTICLE_ETA_MAX",
    "library_path_for",
    "make_event_sample",
    "make_pileup_library",
    "pair_path",
]

logger = logging.getLogger(__name__)

#: Events of `make_event_sample` asked for by ``calotools simulate`` without ``--n``.
DEFAULT_EVENTS = {"full": 2000, "quick": 50}
# Version of what the files hold: a file of another version is made again.
_FORMAT = 2
#: Name of the event-level tree.
EVENT_TREE = "EventTree"
#: Events simulated together: a batch's cells take 6 × 80,000 × 8 bytes per event.
EVENT_BATCH = 16
#: Minimum-bias events in the pile-up library, in full and in quick mode: at
#: ⟨μ⟩ = 40 each event draws 40 of them (ATLAS too reuses presampled pile-up).
LIBRARY_EVENTS = {"full": 1000, "quick": 100}
#: The library is generated with ``seed + PILEUP_SEED_OFFSET``, so that it is
#: independent of the hard scatter (``docs/events.md``).
PILEUP_SEED_OFFSET = 20_000
#: Truth particles written to the event tree: those the barrel can see.
TRUTH_PARTICLE_ETA_MAX = 1.5


@dataclass(frozen=True)
class _EventJob:
    """What every chunk shares; sent once to each worker process."""

    generator: generator.GeneratorConfig
    simulation: SimulationConfig
    clustering: ClusteringConfig
    seed: int
    mu: float
    library: Path | None
    lcw: Path | None
    pairs: bool


_job: _EventJob | None = None
_library: PileupLibrary | None = None
_pileup_sigma: np.ndarray | None = None
_calibration: LCWCalibration | None = None


def _start(job: _EventJob) -> None:
    global _job, _library, _pileup_sigma, _calibration  # noqa: PLW0603 - per-process state
    _job = job
    _library = PileupLibrary.load(job.library) if job.library else None
    _pileup_sigma = _library.noise_sigma(job.mu) if _library is not None else None
    _calibration = LCWCalibration.load(job.lcw) if job.lcw else None


def _clusters(
    deposits: EventDeposits, events: ak.Array, numbers: np.ndarray, pileup: bool
) -> Clusters:
    """Digitise, cluster and calibrate the deposits of a batch; the event branches added."""
    job = _worker_job()
    sigma = _pileup_sigma if pileup else None
    cells = digitise(deposits, job.simulation, seed=job.seed, pileup_sigma=sigma)
    truth = functools.partial(cluster_truth, deposits=deposits)
    result = reconstruct(cells, job.clustering, truth=truth)
    clusters = result.clusters
    scalars = clusters.scalars
    position = np.searchsorted(numbers, scalars["eventNumber"].to_numpy())
    actual = deposits.extra.get("actual_mu", np.zeros(len(numbers)))
    weight = ak.to_numpy(events.weight).astype(np.float64)
    mu = job.mu if pileup else 0.0
    scalars["averageInteractionsPerCrossing"] = np.full(len(scalars), mu, dtype=np.float32)
    scalars["actualInteractionsPerCrossing"] = actual[position].astype(np.float32)
    scalars["mcEventWeight"] = weight[position].astype(np.float32)
    if _calibration is not None:
        calibrated = _calibration.apply(scalars, result.cells)
        for column in calibrated.columns:
            scalars[column] = calibrated[column].to_numpy()
    return clusters


def _reconstruct_batch(events: ak.Array) -> tuple[Clusters, Clusters | None, dict[str, Any]]:
    """Clusters (with pile-up; without it too, for pairs) and event records of a batch."""
    job = _worker_job()
    numbers = ak.to_numpy(events.event_number).astype(np.int64)
    hard = simulate_deposits(events.particles, numbers, job.simulation, seed=job.seed)
    deposits = hard
    if _library is not None and job.mu > 0:
        deposits = overlay(hard, _library, job.mu, seed=job.seed)
    clusters = _clusters(deposits, events, numbers, pileup=True)
    # The pair: the same hard scatter and the same noise normals, no pile-up.
    alone = _clusters(hard, events, numbers, pileup=False) if job.pairs else None
    actual = deposits.extra.get("actual_mu", np.zeros(len(numbers)))
    return clusters, alone, _event_record(events, numbers, actual, job.mu)


def _worker_job() -> _EventJob:
    if _job is None:
        msg = "_start has not run in this process"
        raise RuntimeError(msg)
    return _job


def _jet_record(jet_array: ak.Array) -> ak.Array:
    names = {"pt": "Pt", "eta": "Eta", "phi": "Phi", "e": "E"}
    return ak.zip({new: ak.values_astype(jet_array[k], np.float32) for k, new in names.items()})


def _event_record(
    events: ak.Array, numbers: np.ndarray, actual: np.ndarray, mu: float
) -> dict[str, Any]:
    """The event tree's entries of a batch: generator truth, truth jets, truth particles."""
    record: dict[str, Any] = {
        "eventNumber": numbers,
        "mcEventWeight": ak.to_numpy(events.weight).astype(np.float32),
        "ptHat": ak.to_numpy(events.pt_hat).astype(np.float32),
        "leadingTruthJetPt": ak.to_numpy(events.leading_jet_pt).astype(np.float32),
        "averageInteractionsPerCrossing": np.full(len(numbers), mu, dtype=np.float32),
        "actualInteractionsPerCrossing": actual.astype(np.float32),
        "truthJet": _jet_record(generator.truth_jets(events.particles)),
    }
    particles = events.particles
    pt = np.hypot(particles.px, particles.py)
    p_eta = np.arcsinh(particles.pz / np.maximum(pt, 1e-12))
    seen = abs(p_eta) < TRUTH_PARTICLE_ETA_MAX
    record["truthPart"] = ak.zip(
        {
            "E": ak.values_astype(particles.e[seen], np.float32),
            "Pt": ak.values_astype(pt[seen], np.float32),
            "Eta": ak.values_astype(p_eta[seen], np.float32),
            "Phi": ak.values_astype(np.arctan2(particles.py, particles.px)[seen], np.float32),
            "PdgId": ak.values_astype(particles.pdg[seen], np.int32),
        }
    )
    return record


def _run_chunk(
    chunk: int,
) -> tuple[list[tuple[Clusters, Clusters | None, dict[str, Any]]], int]:
    """Generate chunk ``chunk`` and reconstruct its events batch by batch."""
    job = _worker_job()
    # No chunk can need more events than the whole sample: the rest is not simulated.
    events = generator.generate_chunk(job.generator, chunk)[: job.generator.n_events]
    batches = [
        _reconstruct_batch(events[start : start + EVENT_BATCH])
        for start in range(0, len(events), EVENT_BATCH)
    ]
    return batches, len(events)


# The share of a chunk's candidates a sample keeps, before the first chunk has
# told: minimum bias keeps all, a biased JZ slice about 0.38 (benchmarks/events.py).
_EXPECTED_SHARE = {"minbias": 1.0, "jz": 0.3}


class _Schedule:
    """Which generator chunks to compute: no more than the sample is expected to need.

    Chunks are handed out in order while the events expected from them (those
    kept so far, plus the average per finished chunk, or ``prior`` before
    one has finished, for every chunk in flight) fall short of ``n_events``.
    A round that falls short anyway goes on where it stopped.
    """

    def __init__(self, n_events: int, prior: float) -> None:
        self.n_events, self.prior = n_events, prior
        self.next = self.finished = self.kept = 0

    def expected(self) -> float:
        per_chunk = self.kept / self.finished if self.finished else self.prior
        return self.kept + (self.next - self.finished) * max(per_chunk, 1.0)

    def chunks(self) -> Iterator[int]:
        while self.expected() < self.n_events:
            self.next += 1
            yield self.next - 1

    def done(self, n_kept: int) -> None:
        self.finished += 1
        self.kept += n_kept


def pair_path(path: str | os.PathLike) -> Path:
    """Where `make_event_sample` writes the events of ``path`` without pile-up.

    Examples
    --------
    >>> pair_path("data/jz2w_mu40.root").name
    'jz2w_mu40_nopileup.root'
    """
    path = Path(path)
    return path.with_name(f"{path.stem}_nopileup{path.suffix}")


def library_path_for(folder: str | os.PathLike, *, seed: int, n_events: int) -> Path:
    """Where the pile-up library of samples of ``seed`` lives in ``folder``.

    Examples
    --------
    >>> library_path_for("data", seed=0, n_events=100).name
    'minbias_library_20000_100.npz'
    """
    return Path(folder) / f"minbias_library_{seed + PILEUP_SEED_OFFSET}_{n_events}.npz"


def make_pileup_library(
    path: str | os.PathLike,
    *,
    n_events: int,
    seed: int,
    simulation: SimulationConfig | None = None,
) -> Path:
    """Simulate the minimum-bias library and save it to ``path``; reused if already made alike."""
    path = Path(path)
    simulation = simulation or SimulationConfig()
    configuration = {"n_events": n_events, "seed": seed, "simulation": simulation.to_dict()}
    if _reusable(path, configuration):
        return path
    library = PileupLibrary.simulate(n_events, simulation, seed=seed)
    library.save(path)
    _describe(path, configuration, data=path, n_events=n_events)
    return path


def make_event_sample(
    sample: str,
    path: str | os.PathLike,
    *,
    n_events: int,
    mu: float = 0.0,
    seed: int = 0,
    lcw: str | os.PathLike | None = None,
    clustering: ClusteringConfig | None = None,
    simulation: Mapping[str, Any] | None = None,
    library_events: int | None = None,
    pairs: bool = False,
    progress: bool = True,
    workers: int | None = None,
    library: str | os.PathLike | None = None,
) -> Path:
    """Generate, simulate, reconstruct, calibrate and write ``n_events`` collision events.

    Parameters
    ----------
    sample
        A JZ slice (``"jz0w"`` … ``"jz4w"``) or ``"minbias"``
        (`calotools.sim.generator.SAMPLES`).
    path
        Output ROOT file (``ClusterTree`` and ``EventTree``); its sidecar is
        ``path`` with the suffix ``.json``.
    n_events
        Events kept (for a JZ slice: with the leading truth jet in the slice).
    mu
        ⟨μ⟩, the mean number of pile-up interactions per bunch crossing.
    seed
        Seed of the generator and the simulation.
    lcw
        LCW tables to fill the ``cluster_E_LCCalib`` branches and the LCW jets.
    clustering
        Topo-clustering settings (default: ATLAS 4-2-0), e.g. another noise cut.
    simulation
        Further `calotools.sim.config.SimulationConfig` fields.
    library_events
        Minimum-bias events in the pile-up library (`LIBRARY_EVENTS` by default).
    pairs
        Also write the same events without pile-up (same hard scatter, same
        noise) to `pair_path` of ``path``: the pairs a denoising study needs.
    progress
        Show a progress bar.
    workers
        Processes computing chunks in parallel (default: one per core).
    library
        Where the pile-up library is (made there when missing); default:
        `library_path_for` the folder of ``path``. Samples of one seed at several
        ⟨μ⟩ can share it.
    """
    from tqdm.auto import tqdm

    from calotools.sim.samples import quick_mode

    path = Path(path)
    if not (isinstance(n_events, int) and n_events > 0):
        msg = f"n_events must be a positive integer; got {n_events!r}"
        raise InvalidValueError(msg)
    if sample not in generator.SAMPLES:
        msg = f"unknown event sample {sample!r}; the samples are: {', '.join(generator.SAMPLES)}"
        raise InvalidValueError(msg)
    if pairs and not mu:
        msg = "pairs=True writes each event with and without pile-up: it needs mu > 0"
        raise InvalidValueError(msg)
    gen = generator.GeneratorConfig(sample=sample, n_events=n_events, seed=seed)
    physics = SimulationConfig(**dict(simulation or {}))
    clustering = clustering or ClusteringConfig()
    lcw_path = Path(lcw) if lcw is not None else None
    library_path = None
    if mu:
        n_library = library_events or LIBRARY_EVENTS["quick" if quick_mode() else "full"]
        library_path = (
            Path(library)
            if library is not None
            else library_path_for(path.parent, seed=seed, n_events=n_library)
        )
        check_output(library_path, suffix=".npz")
    configuration = {
        "format": _FORMAT,
        "sample": sample,
        "n_events": n_events,
        "mu": mu,
        "generator": gen.to_dict(),
        "simulation": physics.to_dict(),
        "clustering": clustering.to_dict(),
        "lcw_sha256": atomic.sha256(lcw_path) if lcw_path else None,
        "library": library_path.name if library_path else None,
        "pairs": pairs,
    }
    if _reusable(path, configuration) and (
        not pairs or _reusable(pair_path(path), {**configuration, "pair_of": path.name})
    ):
        logger.info("%s: reusing (made with the same configuration)", path)
        return path
    check_output(path)
    if pairs:
        check_output(pair_path(path))
    if lcw_path is not None:
        LCWCalibration.load(lcw_path)  # a bad file fails here, before any work
    if library_path is not None:
        make_pileup_library(
            library_path, n_events=n_library, seed=seed + PILEUP_SEED_OFFSET, simulation=physics
        )
    job = _EventJob(gen, physics, clustering, seed, float(mu), library_path, lcw_path, pairs)
    writer = ClusterWriter(path)
    pair_writer = ClusterWriter(pair_path(path)) if pairs else None
    n_written, n_clusters = 0, 0
    schedule = _Schedule(
        n_events, _EXPECTED_SHARE.get(sample, _EXPECTED_SHARE["jz"]) * generator.CHUNK
    )

    def kept(clusters: Clusters, last: int) -> Clusters:
        return clusters[np.flatnonzero(clusters.scalars["eventNumber"] <= last)]

    try:
        with tqdm(total=n_events, desc=path.name, unit="event", disable=not progress) as bar:
            while n_written < n_events:  # a new round only if the last one fell short
                results = ordered_map(
                    _run_chunk,
                    schedule.chunks(),
                    start=_start,
                    job=job,
                    workers=workers or default_workers(),
                    ahead=1,
                )
                for batches, n_kept in results:
                    schedule.done(n_kept)
                    if schedule.finished >= 4 and schedule.kept == 0:
                        msg = f"no {sample} event in {4 * generator.CHUNK} candidates"
                        raise InvalidValueError(msg)
                    for clusters, alone, record in batches:
                        keep = min(len(record["eventNumber"]), n_events - n_written)
                        if keep == 0:
                            break
                        last = record["eventNumber"][keep - 1]
                        chosen = kept(clusters, last)
                        if len(chosen):
                            writer.write(chosen)
                        writer.write_events(
                            {k: v[:keep] for k, v in record.items()}, tree=EVENT_TREE
                        )
                        if pair_writer is not None and alone is not None:
                            pair_writer.write(kept(alone, last))
                        n_written += keep
                        n_clusters += len(chosen)
                        bar.update(keep)
                    if n_written >= n_events:
                        break
        complete = writer.finish()
        if pair_writer is not None:
            pair = pair_writer.finish()
            _describe(pair_path(path), {**configuration, "pair_of": path.name}, data=pair)
        _describe(path, configuration, data=complete, n_clusters=n_clusters)
        if pair_writer is not None:
            pair_writer.commit()
        writer.commit()
    except BaseException:
        writer.abort()
        if pair_writer is not None:
            pair_writer.abort()
        raise
    logger.info("%s: %d events, %d clusters", path, n_events, n_clusters)
    return path
