"""Whole collision events in the whole barrel: every stable particle showers into one grid.

``docs/events.md``. The single-particle simulation (`calotools.sim.simulation`)
fills a small window around one particle; here the cells are those of the
whole barrel, |η| < `calotools.geometry.CELLS_ETA_MAX` over the full φ ring
(`calotools.sim.cells.BarrelWindow`), and an event's particles, from
`calotools.sim.generator`, all leave energy in them:

- photons convert in the inner detector and shower (GFlash), electrons and
  positrons shower from the front; both are EM showers (`KIND_EM`);
- hadrons shower as the π± of ``docs/physics.md`` §3b (`KIND_HADRON`); a
  neutral one (n, K0L) leaves no track before its first interaction;
- muons ionise every layer as MIPs and leave (`KIND_MUON`); neutrinos are
  not simulated (`KIND_INVISIBLE`);
- charged particles are bent by the solenoid's 2 T field before the
  calorimeter; those too soft to leave it curl up and deposit their energy
  in the dead material in front.

Each particle showers in its own `calotools.sim.cells.Window`, with the same
code and parameters as a single particle, and its window cells are added onto
the barrel grid. What is added is noiseless (`EventDeposits`): the mean EM-scale
signal, the variance of its sampling fluctuations and the truth split. The
sampling fluctuations of independent showers are independent Gaussians, so
`digitise` draws them once per cell, together with the electronic noise:
the sum over particles has the right distribution and costs one draw per cell.
Pile-up (`calotools.sim.pileup`) adds its own deposits before `digitise`.

**Energy**: a shower gets a meson's or a lepton's total energy, as the single
π± does, a baryon's kinetic energy (the nucleon survives) and an antibaryon's
total energy plus its mass (it annihilates with a nucleon): `shower_energy`.

**Random numbers** come from a stream per (seed, event number), a fixed number
of draws per particle, so an event depends on its seed and number only.

Examples
--------
>>> import awkward as ak
>>> particles = ak.Array([[{"pdg": 22, "charge": 0.0, "px": 20.0, "py": 0.0, "pz": 0.0, "e": 20.0}]])
>>> deposits = simulate_deposits(particles, np.array([0]), SimulationConfig(), seed=1)
>>> round(float(deposits.calib_total().sum() + deposits.lost().sum()), 6)
20.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import awkward as ak
import numpy as np
import pandas as pd
from scipy import sparse

from calotools import geometry
from calotools.errors import InvalidValueError
from calotools.sim.cells import BarrelWindow, CellBatch, LayerCells, Window
from calotools.sim.clustering import TopoClusters
from calotools.sim.config import SimulationConfig
from calotools.sim.showers import (
    Deposit,
    Profiles,
    Stack,
    _bending,
    build_stack,
    cascade_draws,
    cell_energies,
    charged_pion_showers,
    convert_photons,
    em_profiles,
    nonem_profiles,
    photon_showers,
)

__all__ = [
    "ATTRIBUTION_FLOOR_GEV",
    "EM_LIKE_MIN_FRACTION",
    "KIND_EM",
    "KIND_HADRON",
    "KIND_INVISIBLE",
    "KIND_MUON",
    "PARTICLE_ETA_MAX",
    "EventDeposits",
    "cluster_truth",
    "digitise",
    "particle_kinds",
    "shower_energy",
    "simulate_deposits",
]

KIND_EM, KIND_HADRON, KIND_MUON, KIND_INVISIBLE = 0, 1, 2, 3
#: Neutrinos (and Pythia's other invisible ids) leave no signal.
_INVISIBLE_IDS = (12, 14, 16, 18)
#: A particle showers only if its window can reach the barrel's cells: |η| below
#: the cells' edge plus the window's margin (`calotools.sim.cells.Window`).
PARTICLE_ETA_MAX = geometry.CELLS_ETA_MAX + Window().margin_eta
#: Cells where a particle's truth energy is below this (GeV, 0.1 MeV: 10⁻² of
#: the smallest noise σ) are not kept in the per-particle attribution of
#: `EventDeposits.attribution`; they still count in the cells' energies.
ATTRIBUTION_FLOOR_GEV = 1e-4
#: A cluster is "EM-like" when at least this share of its calibration-hit energy
#: is EM [A]: a π0's clusters have 1, a π±'s about its shower's f_em, on average
#: 0.34 at 10 GeV and 0.56 at 100 GeV (``docs/physics.md`` §3b.2), above 0.8
#: mostly after a charge exchange, where the shower is a π0's. ``docs/events.md``.
EM_LIKE_MIN_FRACTION = 0.8
# Window cells with less truth than this (GeV, 1 keV) are not carried onto the
# barrel grid: GFlash tails fill whole windows with such cells, and a few
# hundred particles would otherwise cost a million entries per event.
_CELL_FLOOR_GEV = 1e-6
# Stream keys of the random numbers (the first key of each SeedSequence).
_STREAM_SHOWERS, _STREAM_NOISE = 101, 102
# Corner-grid elements per vectorised step of `cell_energies`: a few MB. Events
# hold hundreds of particles with a dozen profiles each; smaller steps cost
# more in per-call overhead than they win in cache (benchmarks/events.py).
_CHUNK_ELEMENTS = 1 << 20
_N_LAYERS = len(geometry.LAYERS)
_DEAD_REGIONS = ("dead_material_front", "dead_material_cryostat", "leakage_back")


def particle_kinds(pdg: np.ndarray, charge: np.ndarray) -> np.ndarray:
    """How each particle shows up in the calorimeter: `KIND_EM`, `KIND_HADRON`, `KIND_MUON`
    or `KIND_INVISIBLE`.

    Examples
    --------
    >>> particle_kinds(np.array([22, -11, 211, 2112, 13, 14]), np.zeros(6)).tolist()
    [0, 0, 1, 1, 2, 3]
    """
    a = np.abs(np.asarray(pdg))
    kind = np.full(a.shape, KIND_HADRON, dtype=np.int8)
    kind[(a == 22) | (a == 11)] = KIND_EM
    kind[a == 13] = KIND_MUON
    kind[np.isin(a, _INVISIBLE_IDS)] = KIND_INVISIBLE
    return kind


def shower_energy(pdg: np.ndarray, e: np.ndarray, mass: np.ndarray) -> np.ndarray:
    """Energy (GeV) a particle brings into its shower (see the module's **Energy**).

    Examples
    --------
    >>> shower_energy(np.array([211, 2212, -2212]), np.full(3, 2.0), np.array([0.14, 0.938, 0.938]))
    array([2.   , 1.062, 2.938])
    """
    a = np.abs(np.asarray(pdg))
    # PDG numbering: baryons have four-digit ids (nq1 nq2 nq3 nJ); mesons three.
    baryon = (a >= 1000) & (a < 10_000)
    sign = np.sign(np.asarray(pdg))
    return np.where(baryon & (sign > 0), e - mass, np.where(baryon, e + mass, e))


@dataclass
class EventDeposits:
    """Noiseless deposits of N events on the barrel grid, and who made them.

    Cell arrays are (N, n_cells) in `calotools.sim.clustering` template order
    (layer by layer, η-major), float64, GeV.

    Attributes
    ----------
    signal, variance
        Mean signal at EM scale and the variance of its sampling fluctuations.
    calib
        (4, N, n_cells): truth EM, non-EM visible, invisible, escaped.
    particles
        One row per generated particle: ``event`` (row), ``particle`` (index in
        the event), ``pdg``, ``charge``, ``e``, ``pt``, ``eta``, ``phi`` (at the
        vertex), ``kind``, ``shower_e``, ``phi_calo`` (after the bending),
        ``deposited`` (truth in barrel cells), ``dead_material_front``,
        ``dead_material_cryostat``, ``leakage_back``, ``outside_barrel``
        (truth in cells beyond |η| = 1.0 or outside the particle's window) and
        ``escaped_detector`` (a muon's energy that leaves, neutrinos).
    attribution
        Sparse (N · n_cells) × (number of particles) matrix of truth energy per
        cell and particle (row of ``particles``), cells below
        `ATTRIBUTION_FLOOR_GEV` left out.
    event_number
        (N,) the generator's event numbers.
    """

    window: BarrelWindow
    signal: np.ndarray
    variance: np.ndarray
    calib: np.ndarray
    particles: pd.DataFrame
    attribution: sparse.csr_matrix
    event_number: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.event_number)

    def calib_total(self) -> np.ndarray:
        """(N, n_cells) truth energy per cell."""
        return self.calib.sum(axis=0)

    def lost(self) -> np.ndarray:
        """(N,) generated shower energy that is in no cell of the barrel, per event."""
        columns = [
            "dead_material_front",
            "dead_material_cryostat",
            "leakage_back",
            "outside_barrel",
            "escaped_detector",
        ]
        per_particle = self.particles[columns].to_numpy().sum(axis=1)
        return np.bincount(self.particles["event"], per_particle, minlength=len(self))


# ---------------------------------------------------------------------------
# The particles of a batch of events, and their random numbers.


@dataclass
class _Particles:
    """Flat arrays over the particles of a batch, in event then particle order."""

    event: np.ndarray
    index: np.ndarray
    pdg: np.ndarray
    charge: np.ndarray
    e: np.ndarray
    pt: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    kind: np.ndarray
    shower_e: np.ndarray

    @classmethod
    def of(cls, particles: ak.Array) -> _Particles:
        for name in ("pdg", "charge", "px", "py", "pz", "e"):
            if name not in ak.fields(particles):
                msg = f"particles need the field {name!r}; they have {ak.fields(particles)}"
                raise InvalidValueError(msg)
        counts = ak.to_numpy(ak.num(particles))
        flat = {k: ak.to_numpy(ak.flatten(particles[k])) for k in ak.fields(particles)}
        px, py, pz, e = (flat[k].astype(np.float64) for k in ("px", "py", "pz", "e"))
        pt = np.hypot(px, py)
        p = np.hypot(pt, pz)
        eta = np.arcsinh(np.divide(pz, pt, out=np.full_like(pz, np.inf), where=pt > 0))
        eta = np.where(np.isfinite(eta), eta, np.sign(pz) * 50.0)  # along the beam: far out
        mass = np.sqrt(np.maximum(e**2 - p**2, 0.0))
        pdg = flat["pdg"].astype(np.int64)
        charge = flat["charge"].astype(np.float64)
        return cls(
            event=np.repeat(np.arange(len(counts)), counts),
            index=np.concatenate([np.arange(c) for c in counts])
            if len(counts)
            else np.zeros(0, int),
            pdg=pdg,
            charge=charge,
            e=e,
            pt=pt,
            eta=eta,
            phi=np.arctan2(py, px),
            kind=particle_kinds(pdg, charge),
            shower_e=np.maximum(shower_energy(pdg, e, mass), 0.0),
        )


@dataclass
class _Draws:
    """Per-particle random numbers of one kind, rows in particle order."""

    uniform: np.ndarray
    normal: np.ndarray
    spot: np.ndarray  # (n, EM shower slots, layers)


def _shapes(config: SimulationConfig) -> dict[int, tuple[int, int, int]]:
    """(uniforms, normals, EM slots) per particle of each kind that showers."""
    n_u, n_z = cascade_draws(config.subshowers, config.hadronic_clumps)
    return {
        KIND_EM: (4, 4, 2),  # conversion (4); GFlash of photon/electron, positron (4)
        KIND_HADRON: (1 + n_u, 1 + n_z, config.subshowers),  # interaction, EM fraction
    }


def _draw(
    config: SimulationConfig, parts: _Particles, event_number: np.ndarray, seed: int
) -> dict[int, _Draws]:
    """Random numbers of every showering particle, from its event's stream."""
    shapes = _shapes(config)
    pieces: dict[int, list[list[np.ndarray]]] = {kind: [[], [], []] for kind in shapes}
    starts = np.searchsorted(parts.event, np.arange(len(event_number) + 1))
    for row, number in enumerate(event_number):
        kinds = parts.kind[starts[row] : starts[row + 1]]
        key = np.random.SeedSequence(seed, spawn_key=(_STREAM_SHOWERS, int(number)))
        rng = np.random.Generator(np.random.PCG64(key))
        # Whatever the event holds, EM draws come first, then hadronic: fixed order.
        for kind, (u, z, m) in shapes.items():
            n = int(np.count_nonzero(kinds == kind))
            pieces[kind][0].append(rng.random((n, u)))
            pieces[kind][1].append(rng.standard_normal((n, z)))
            pieces[kind][2].append(rng.standard_normal((n, m, _N_LAYERS)))
    return {
        kind: _Draws(
            *(
                np.concatenate(p) if p else np.empty((0, *s))
                for p, s in zip(pieces[kind], ((u,), (z,), (m, _N_LAYERS)), strict=True)
            )
        )
        for kind, (u, z, m) in shapes.items()
    }


# ---------------------------------------------------------------------------
# Showers and their cells.


@dataclass
class _Grid:
    """Accumulates window cells onto the barrel grid, layer by layer, as sparse entries."""

    window: BarrelWindow
    n_events: int
    entries: dict[int, list[tuple[np.ndarray, ...]]] = field(default_factory=dict)

    def layer_cells(self, layer: int) -> int:
        return math.prod(self.window.shape(geometry.LAYERS[layer].name))


def _response(config: SimulationConfig, lay: geometry.Layer) -> tuple[float, float, float]:
    """(visible share of non-EM energy, invisible share, e/mip) of ``lay`` (§2, §3b.4)."""
    e_over_h = config.e_over_h_lar if lay.is_em else config.e_over_h_tile
    e_over_mip = config.e_over_mip_lar if lay.is_em else config.e_over_mip_tile
    visible = 1.0 / e_over_h
    return visible, 1.0 - visible - config.escaped_fraction, e_over_mip


def _chunk(profiles: Profiles, lo: int, hi: int) -> Profiles:
    return Profiles(*(a[lo:hi] for a in profiles))


def _add_layer(
    grid: _Grid,
    config: SimulationConfig,
    index: int,
    owner: np.ndarray,
    event: np.ndarray,
    direction: tuple[np.ndarray, np.ndarray],
    em: Profiles,
    nonem: Profiles | None,
    mip: np.ndarray,
) -> np.ndarray:
    """Put one layer's window cells of n showering particles onto the grid.

    ``owner`` (n,) are rows of the batch's particle table, ``event`` their
    event rows, ``direction`` the (η, φ) at the calorimeter around which their
    windows lie and which their track crosses, ``mip`` (n,) the track's
    ionisation in the layer. Returns (n,) the particles' truth energy in the
    layer that is in no barrel cell.
    """
    lay = geometry.LAYERS[index]
    window = Window()
    shape = window.shape(lay.name)
    n_eta, n_phi = grid.window.shape(lay.name)
    visible_share, invisible_share, e_over_mip = _response(config, lay)
    eta_low, phi_low = window.origin(*direction)
    # Window origins sit on the 0.2 × 2π/64 grid, so on whole cells of the barrel.
    first_eta = np.rint((eta_low + grid.window.eta_max) / lay.deta).astype(np.int64)
    first_phi = np.rint((phi_low + math.pi) / lay.dphi).astype(np.int64)
    layer_energy = em.weight.sum(axis=1) + (0.0 if nonem is None else nonem.weight.sum(axis=1))
    kept = np.zeros(len(owner))
    m = em.weight.shape[1] + (0 if nonem is None else nonem.weight.shape[1])
    step = max(1, _CHUNK_ELEMENTS // (m * (shape[0] + 1) * (shape[1] + 1)))
    for lo in range(0, len(owner), step):
        hi = min(len(owner), lo + step)
        low = (eta_low[lo:hi], phi_low[lo:hi])
        em_cells = cell_energies(lay, window, *low, _chunk(em, lo, hi), np.empty((hi - lo, *shape)))
        calib = np.zeros((4, hi - lo, *shape))
        calib[0] = em_cells
        signal = em_cells.copy()
        variance = config.em_sampling_term**2 * np.maximum(em_cells, 0.0)
        if nonem is not None:
            nonem_cells = cell_energies(
                lay, window, *low, _chunk(nonem, lo, hi), np.empty((hi - lo, *shape))
            )
            calib[1] = visible_share * nonem_cells
            calib[2] = invisible_share * nonem_cells
            calib[3] = config.escaped_fraction * nonem_cells
            signal += calib[1]
            variance += config.hadronic_sampling_term**2 * np.maximum(calib[1], 0.0)
        # The track ionises the one cell it crosses (truth: non-EM visible).
        cell = (
            np.arange(hi - lo),
            np.clip(((direction[0][lo:hi] - low[0]) / lay.deta).astype(int), 0, shape[0] - 1),
            np.clip(((direction[1][lo:hi] - low[1]) / lay.dphi).astype(int), 0, shape[1] - 1),
        )
        calib[1][cell] += mip[lo:hi]
        signal[cell] += mip[lo:hi] / e_over_mip
        variance[cell] += config.em_sampling_term**2 * mip[lo:hi]

        i_eta = first_eta[lo:hi, None] + np.arange(shape[0])
        i_phi = (first_phi[lo:hi, None] + np.arange(shape[1])) % n_phi
        total = calib.sum(axis=0)
        inside = (i_eta >= 0) & (i_eta < n_eta)
        keep = inside[:, :, None] & (np.abs(total) > _CELL_FLOOR_GEV)
        which, ie, ip = np.nonzero(keep)
        flat = (event[lo:hi][which] * n_eta + i_eta[which, ie]) * n_phi + i_phi[which, ip]
        values = (signal[keep], variance[keep], *(c[keep] for c in calib))
        grid.entries.setdefault(index, []).append((flat, owner[lo:hi][which], *values))
        kept[lo:hi] = np.bincount(which, total[keep], minlength=hi - lo)
    return layer_energy + mip - kept


def _em_showers(
    config: SimulationConfig, stack: Stack, parts: _Particles, rows: np.ndarray, draws: _Draws
) -> tuple[Deposit, np.ndarray, tuple[np.ndarray, np.ndarray], np.ndarray]:
    """EM showers of photons (converting) and e± (bent): deposits, curled energy, direction."""
    n = len(rows)
    detector = config.inner_detector
    energy, eta, phi = parts.shower_e[rows], parts.eta[rows], parts.phi[rows]
    photon = parts.pdg[rows] == 22
    # Photons: convert (or not) in the inner detector, as a single photon does (§3a.1).
    pairs = convert_photons(
        detector, energy[:, None], eta[:, None], phi[:, None], draws.uniform[:, None, :]
    )
    # e±: bent from the vertex, shower from the front of the stack.
    bend, curls = _bending(energy, eta, np.zeros(n), detector)
    phi_e = phi - parts.charge[rows] * bend
    slot_energy = np.where(photon[:, None], pairs.energy, np.stack([energy, 0 * energy], 1))
    slot_phi = np.where(photon[:, None], pairs.phi, np.stack([phi_e, phi_e], 1))
    slot_start = np.where(photon[:, None], pairs.start_x0, 0.0)
    slot_curls = np.where(photon[:, None], pairs.curls, np.stack([curls, curls], 1))
    slot_eta = np.stack([eta, eta], 1)
    em = photon_showers(
        config.gflash,
        stack,
        slot_energy,
        slot_eta,
        slot_phi,
        slot_start,
        draws.normal.reshape(n, 2, 2),
    )
    curled = (slot_energy * slot_curls).sum(axis=1)
    if slot_curls.any():  # lost in the dead material in front (§3a.1)
        slice_energy, beyond = em.slice_energy.copy(), em.beyond.copy()
        slice_energy[slot_curls] = 0.0
        beyond[slot_curls] = 0.0
        em = em._replace(slice_energy=slice_energy, beyond=beyond)
    return em, curled, (eta, np.where(photon, phi, phi_e)), draws.spot


def simulate_deposits(
    particles: ak.Array,
    event_number: np.ndarray,
    config: SimulationConfig,
    *,
    seed: int,
    window: BarrelWindow | None = None,
) -> EventDeposits:
    """Shower every particle of N events and add their cells on the barrel grid.

    Parameters
    ----------
    particles
        Events of particles with fields ``pdg``, ``charge``, ``px``, ``py``,
        ``pz``, ``e`` (GeV), as `calotools.sim.generator.generate` gives them.
    event_number
        (N,) event numbers: they key the random numbers.
    config
        The physics of the simulation (its particle and sampling fields are not used).
    seed
        Seed of the sample.
    window
        The barrel grid; `BarrelWindow` () by default.
    """
    window = window or BarrelWindow()
    event_number = np.asarray(event_number, dtype=np.int64)
    if len(event_number) != len(particles):
        msg = (
            f"event_number has {len(event_number)} entries for {len(particles)} events of "
            "particles; give one per event"
        )
        raise InvalidValueError(msg)
    parts = _Particles.of(particles)
    n_events = len(event_number)
    stack = build_stack(config.dead_material)
    draws = _draw(config, parts, event_number, seed)
    n_slices = len(stack.r_inner)
    n_parts = len(parts.e)
    reaches = np.abs(parts.eta) < PARTICLE_ETA_MAX
    front = np.zeros(n_parts)
    cryostat = np.zeros(n_parts)
    leakage = np.zeros(n_parts)
    outside = np.where(reaches | (parts.kind == KIND_INVISIBLE), 0.0, parts.shower_e)
    escaped = np.where(parts.kind == KIND_INVISIBLE, parts.e, 0.0)
    phi_calo = parts.phi.copy()
    grid = _Grid(window, n_events)

    # (rows, direction at the calorimeter, EM deposit, spot normals, non-EM deposit, MIP slices)
    jobs: list[
        tuple[
            np.ndarray,
            tuple[np.ndarray, np.ndarray],
            Deposit,
            np.ndarray,
            Deposit | None,
            np.ndarray,
        ]
    ] = []
    em_rows = np.flatnonzero(parts.kind == KIND_EM)
    em_keep = reaches[em_rows]
    em_draws = draws[KIND_EM]
    if em_rows.size:
        rows = em_rows[em_keep]
        sub = _Draws(em_draws.uniform[em_keep], em_draws.normal[em_keep], em_draws.spot[em_keep])
        em, curled, direction, spots = _em_showers(config, stack, parts, rows, sub)
        front[rows] += curled
        phi_calo[rows] = direction[1]
        jobs.append((rows, direction, em, spots, None, np.zeros((len(rows), n_slices))))

    had_rows = np.flatnonzero(parts.kind == KIND_HADRON)
    had_keep = reaches[had_rows]
    if had_rows.size:
        rows = had_rows[had_keep]
        d = draws[KIND_HADRON]
        u, z, spots = d.uniform[had_keep], d.normal[had_keep], d.spot[had_keep]
        charged = parts.charge[rows] != 0
        bend, curls = _bending(
            parts.pt[rows] * np.cosh(parts.eta[rows]),
            parts.eta[rows],
            np.zeros(len(rows)),
            config.inner_detector,
        )
        curls &= charged
        front[rows[curls]] += parts.shower_e[rows[curls]]
        rows, u, z, spots = rows[~curls], u[~curls], z[~curls], spots[~curls]
        phi_h = parts.phi[rows] - parts.charge[rows] * bend[~curls]
        phi_calo[rows] = phi_h
        shower = charged_pion_showers(
            config.hadronic,
            config.gflash,
            stack,
            parts.shower_e[rows],
            parts.eta[rows],
            phi_h,
            u[:, 0],
            z[:, 0],
            u[:, 1:],
            z[:, 1:],
            ionises=parts.charge[rows] != 0,
        )
        jobs.append(
            (rows, (parts.eta[rows], phi_h), shower.em, spots, shower.nonem, shower.mip_slices)
        )

    mu_rows = np.flatnonzero((parts.kind == KIND_MUON) & reaches)
    if mu_rows.size:
        bend, curls = _bending(
            parts.pt[mu_rows] * np.cosh(parts.eta[mu_rows]),
            parts.eta[mu_rows],
            np.zeros(len(mu_rows)),
            config.inner_detector,
        )
        front[mu_rows[curls]] += parts.shower_e[mu_rows[curls]]
        rows = mu_rows[~curls]
        phi_m = parts.phi[rows] - parts.charge[rows] * bend[~curls]
        phi_calo[rows] = phi_m
        mip = _muon_ionisation(stack, parts.shower_e[rows], parts.eta[rows])
        escaped[rows] += parts.shower_e[rows] - mip.sum(axis=1)
        nothing = _empty_deposit(len(rows), n_slices, parts.eta[rows], phi_m)
        jobs.append(
            (
                rows,
                (parts.eta[rows], phi_m),
                nothing,
                np.zeros((len(rows), 1, _N_LAYERS)),
                None,
                mip,
            )
        )

    for rows, direction, em, spots, nonem, mip in jobs:
        if len(rows) == 0:
            continue
        deposits = [em] if nonem is None else [em, nonem]
        in_slices = sum(dep.slice_energy.sum(axis=1) for dep in deposits) + mip
        front[rows] += in_slices[:, stack.front]
        cryostat[rows] += in_slices[:, stack.cryostat]
        leakage[rows] += sum(dep.beyond.sum(axis=1) for dep in deposits)
        for index, lay in enumerate(geometry.LAYERS):
            outside[rows] += _add_layer(
                grid,
                config,
                index,
                rows,
                parts.event[rows],
                direction,
                em_profiles(config.gflash, stack, em, lay, spots[:, :, index]),
                None if nonem is None else nonem_profiles(config.hadronic, stack, nonem, lay),
                mip[:, stack.layer_slices[lay.name]].sum(axis=1),
            )
    return _collect(grid, parts, event_number, phi_calo, front, cryostat, leakage, outside, escaped)


def _muon_ionisation(stack: Stack, energy: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """(n, F) MIP ionisation of muons along the stack, until they stop (§3b.1)."""
    path = np.cosh(eta)
    bounds = path[:, None] * stack.mip_bounds
    lost = np.clip(energy[:, None], bounds[:, :-1], bounds[:, 1:]) - bounds[:, :-1]
    return lost


def _empty_deposit(n: int, n_slices: int, eta: np.ndarray, phi: np.ndarray) -> Deposit:
    """An EM deposit of no energy: muons have only their track."""
    zeros = np.zeros((n, 1, n_slices))
    return Deposit(
        np.zeros((n, 1)),
        eta[:, None],
        phi[:, None],
        zeros,
        zeros,
        np.ones((n, 1, n_slices)),
        np.zeros((n, 1)),
        np.ones((n, 1)),
        np.broadcast_to(eta[:, None, None], zeros.shape),
        np.broadcast_to(phi[:, None, None], zeros.shape),
        np.ones((n, 1)),
    )


def _collect(
    grid: _Grid,
    parts: _Particles,
    event_number: np.ndarray,
    phi_calo: np.ndarray,
    front: np.ndarray,
    cryostat: np.ndarray,
    leakage: np.ndarray,
    outside: np.ndarray,
    escaped: np.ndarray,
) -> EventDeposits:
    """Sum the grid's entries into dense cell arrays and the attribution matrix."""
    window, n = grid.window, grid.n_events
    sizes = [grid.layer_cells(i) for i in range(_N_LAYERS)]
    offsets = np.concatenate(([0], np.cumsum(sizes)))
    n_cells = int(offsets[-1])
    dense = np.zeros((6, n, n_cells))
    rows_a, cols_a, vals_a = [], [], []
    deposited = np.zeros(len(parts.e))
    for index in range(_N_LAYERS):
        if index not in grid.entries:
            continue
        flat, owner, *values = (np.concatenate(c) for c in zip(*grid.entries[index], strict=True))
        event, local = np.divmod(flat, sizes[index])
        target = event * n_cells + offsets[index] + local
        part = slice(offsets[index], offsets[index + 1])
        for k, value in enumerate(values):
            summed = np.bincount(flat, value, minlength=n * sizes[index])
            dense[k][:, part] = summed.reshape(n, sizes[index])
        total = values[2] + values[3] + values[4] + values[5]
        deposited += np.bincount(owner, total, minlength=len(parts.e))
        big = np.abs(total) > ATTRIBUTION_FLOOR_GEV
        rows_a.append(target[big])
        cols_a.append(owner[big])
        vals_a.append(total[big])
    attribution = sparse.csr_matrix(
        (
            np.concatenate(vals_a) if vals_a else np.zeros(0),
            (
                np.concatenate(rows_a) if rows_a else np.zeros(0, int),
                np.concatenate(cols_a) if cols_a else np.zeros(0, int),
            ),
        ),
        shape=(n * n_cells, len(parts.e)),
    )
    table = pd.DataFrame(
        {
            "event": parts.event,
            "particle": parts.index,
            "pdg": parts.pdg,
            "charge": parts.charge,
            "e": parts.e,
            "pt": parts.pt,
            "eta": parts.eta,
            "phi": parts.phi,
            "kind": parts.kind,
            "shower_e": parts.shower_e,
            "phi_calo": geometry.wrap_phi(phi_calo),
            "deposited": deposited,
            "dead_material_front": front,
            "dead_material_cryostat": cryostat,
            "leakage_back": leakage,
            "outside_barrel": outside,
            "escaped_detector": escaped,
        }
    )
    return EventDeposits(
        window=window,
        signal=dense[0],
        variance=dense[1],
        calib=dense[2:],
        particles=table,
        attribution=attribution,
        event_number=event_number,
    )


def digitise(
    deposits: EventDeposits,
    config: SimulationConfig,
    *,
    seed: int,
    pileup_sigma: np.ndarray | None = None,
) -> CellBatch:
    """Measured cells of the deposits: signal + sampling fluctuations + electronic noise.

    One standard normal per cell and event, from a stream keyed by (seed,
    event number): the same event digitised with or without pile-up added
    to its deposits uses the same normals. ``pileup_sigma`` (n_cells,) is the
    pile-up noise per cell that the clustering adds to the electronic noise.
    """
    window, n = deposits.window, len(deposits)
    shapes = [window.shape(lay.name) for lay in geometry.LAYERS]
    sigma = np.concatenate(
        [
            np.full(math.prod(s), config.noise_mev[lay.name] * 1e-3 * config.noise_scale)
            for lay, s in zip(geometry.LAYERS, shapes, strict=True)
        ]
    )
    normal = np.empty(deposits.signal.shape, dtype=np.float32)
    for row, number in enumerate(deposits.event_number):
        key = np.random.SeedSequence(seed, spawn_key=(_STREAM_NOISE, int(number)))
        np.random.Generator(np.random.PCG64(key)).standard_normal(dtype=np.float32, out=normal[row])
    energy = (deposits.signal + np.sqrt(deposits.variance + sigma**2) * normal).astype(np.float32)

    layers = {}
    start = 0
    for lay, shape in zip(geometry.LAYERS, shapes, strict=True):
        stop = start + math.prod(shape)
        part = slice(start, stop)
        pileup = 0.0 if pileup_sigma is None else pileup_sigma[part].reshape(shape)
        em, nonem, invisible, escaped = (
            deposits.calib[k][:, part].reshape(n, *shape) for k in range(4)
        )
        layers[lay.name] = LayerCells(
            lay,
            energy[:, part].reshape(n, *shape),
            float(sigma[start]),
            calib_em=em,
            calib_nonem=nonem,
            calib_invisible=invisible,
            calib_escaped=escaped,
            pileup_sigma=pileup,
        )
        start = stop
    table = deposits.particles

    def per_event(column: str) -> np.ndarray:
        return np.bincount(table["event"], table[column], minlength=n)

    eta_low, phi_low = window.origin(np.zeros(n), np.zeros(n))
    return CellBatch(
        window=window,
        eta_low=eta_low,
        phi_low=phi_low,
        layers=layers,
        truth_e=per_event("shower_e"),
        truth_eta=np.zeros(n),
        truth_phi=np.zeros(n),
        truth_pdg=np.zeros(n, dtype=np.int64),
        event_number=deposits.event_number,
        dead_material_front=per_event("dead_material_front"),
        dead_material_cryostat=per_event("dead_material_cryostat"),
        leakage_back=per_event("leakage_back"),
        outside_window=per_event("outside_barrel") + per_event("escaped_detector"),
        # Particles that lost nothing in dead material take no share of it.
        dead_deposits=table.loc[
            table[list(_DEAD_REGIONS)].to_numpy().sum(axis=1) > 0,
            ["event", "eta", "phi_calo", *_DEAD_REGIONS],
        ].rename(columns={"phi_calo": "phi"}),
    )


def cluster_truth(topo: TopoClusters, deposits: EventDeposits) -> dict[str, np.ndarray]:
    """Truth columns of the topo-clusters of whole events, one value per cluster.

    From the calibration hits of the cluster's cells, weighted as the cells are:

    - ``truthE``, ``truthPt``, ``truthEta``, ``truthPhi``, ``truthPDG``: the
      generated particle that left the most truth energy in the cluster (of
      the hard scatter: pile-up is not one particle), and ``truthParticle``
      its index in the event (−1 when the cluster has none of the hard scatter);
    - ``truthLeadingFraction``: that particle's share of the hard-scatter truth;
    - ``cluster_ENG_CALIB_EM`` and ``cluster_ENG_CALIB_NONEM``: EM and non-EM
      (visible, invisible, escaped) calibration-hit energy in the cluster;
    - ``truthEMLike``: 1 when the EM share of its calibration-hit energy is at
      least `EM_LIKE_MIN_FRACTION`, the label π0-like (0) / π±-like (1) is then
      ``1 − truthEMLike`` as the classifiers score P(π±);
    - ``cluster_ENG_CALIB_FRAC_PILEUP``: the pile-up's share of the truth energy in
      the cluster, pile-up / (hard scatter + pile-up): the calibration hits,
      hence ``cluster_ENG_CALIB_TOT``, are the hard scatter's alone, as in
      ATLAS, whose presampled pile-up brings none.
    """
    n_total = deposits.calib.shape[1] * deposits.calib.shape[2]
    weights = topo.cells.matrix(n_total)
    em = weights @ deposits.calib[0].reshape(-1)
    nonem = weights @ deposits.calib[1:].sum(axis=0).reshape(-1)
    total = em + nonem
    pileup = deposits.extra.get("pileup_calib")
    pileup_e = np.zeros(len(total)) if pileup is None else weights @ pileup.reshape(-1)
    contributions = (weights @ deposits.attribution).tocsr()
    has_any = np.diff(contributions.indptr) > 0
    leading = np.asarray(contributions.argmax(axis=1)).ravel()
    best = np.asarray(contributions.max(axis=1).todense()).ravel()
    hard = np.asarray(contributions.sum(axis=1)).ravel()
    found = has_any & (best > 0)
    table = deposits.particles
    pick = np.where(found, leading, 0)

    def column(name: str, missing: float) -> np.ndarray:
        values = table[name].to_numpy()[pick] if len(table) else np.zeros(len(pick))
        return np.where(found, values, missing)

    em_share = np.divide(em, total, out=np.zeros_like(em), where=total > 0)
    return {
        "truthE": column("e", 0.0),
        "truthPt": column("pt", 0.0),
        "truthEta": column("eta", 0.0),
        "truthPhi": column("phi", 0.0),
        "truthPDG": column("pdg", 0).astype(np.int32),
        "truthParticle": column("particle", -1).astype(np.int32),
        "truthLeadingFraction": np.divide(best, hard, out=np.zeros_like(best), where=hard > 0),
        "truthEMLike": (em_share >= EM_LIKE_MIN_FRACTION).astype(np.int32),
        "cluster_ENG_CALIB_EM": em,
        "cluster_ENG_CALIB_NONEM": nonem,
        "cluster_ENG_CALIB_FRAC_PILEUP": np.divide(
            pileup_e, total + pileup_e, out=np.zeros_like(total), where=total + pileup_e > 0
        ),
    }
