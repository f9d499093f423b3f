"""Fast parameterised simulation of single particles in the ATLAS-like barrel.

``docs/physics.md`` §1–3: a π0 (→ γγ), a photon or a charged pion
comes from the origin, showers through dead material, the presampler, the
three EM layers, the cryostat and the three Tile layers, and leaves in every
cell of a `calotools.sim.cells.Window` around it

- a **measured energy** at EM scale: EM deposits, visible non-EM energy and
  MIP ionisation over e/mip, with Gaussian sampling fluctuations (10 %/√E per
  cell for EM and MIP, ``hadronic_sampling_term`` for the visible non-EM part)
  and Gaussian electronic noise (float32);
- a **truth** ("calibration hit") energy split as ATLAS splits it: EM, non-EM
  visible (E_had/(e/h) plus MIP), invisible, escaped (float64, so that
  `calotools.sim.cells.CellBatch.energy_balance` is zero up to float64 rounding).

Per event it also records the energy lost in dead material in front and in
the cryostat, leaking out of the back and deposited outside the window, and in
``CellBatch.extra``: ``photon{1,2}_{e,eta,phi}`` for π0, ``em_fraction``,
``first_interaction_lambda`` and ``mip_energy`` for π±.

Nothing is drawn per spot: longitudinal shares are differences of incomplete
gamma functions and lateral shares exact cell integrals (`calotools.sim.showers`),
so whole batches are NumPy array operations.

**Energy convention**: the generated energy is the particle's *total* energy,
as for ATLAS single-particle guns; a π± brings its rest mass into its shower.

**Random numbers** are drawn per block of 64 events from a stream keyed by
(seed, particle, block), with a fixed number of draws per event, so an event
depends only on the seed, the particle and its event number: not on the batch
size, and the first k events of an n-event run are a k-event run.

Examples
--------
>>> config = SimulationConfig(particle="pi+", n_events=8, e_min=10.0, e_max=10.0, seed=1)
>>> batch = simulate_batch(config, 0, 8)
>>> batch.layers["EMB2"].energy.shape
(8, 32, 32)
>>> bool(abs(batch.energy_balance()).max() < 1e-9)
True
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from calotools import geometry
from calotools.errors import InvalidTypeError, InvalidValueError
from calotools.sim.cells import CellBatch, LayerCells
from calotools.sim.config import PARTICLES, SimulationConfig
from calotools.sim.showers import (
    Deposit,
    Profiles,
    build_stack,
    cascade_draws,
    cell_energies,
    charged_pion_showers,
    convert_photons,
    em_profiles,
    nonem_profiles,
    photon_showers,
    pi0_decay,
)

__all__ = ["simulate", "simulate_batch"]

# Events per random-number block; part of the output's definition (changing it
# changes every event), not a tuning knob.
_BLOCK = 64
_N_UNIFORMS = 8  # energy, |η|, sign η, φ, cos θ*, φ*, depth 1, depth 2
_N_NORMALS = 5  # GFlash (ln T, ln α) of photon 1 and 2, EM fraction
# Photons per event, for their conversions (`_Draws.conversion_uniform`).
_PHOTONS = {"gamma": 1, "pi0": 2}
# Corner-grid elements per vectorised step: a few MB of temporaries, cache-sized.
_CHUNK_ELEMENTS = 1 << 18


def _chunk(profiles: Profiles, lo: int, hi: int) -> Profiles:
    return Profiles(*(a[lo:hi] for a in profiles))


def _layer_cells(
    config: SimulationConfig,
    layer: geometry.Layer,
    window_low: tuple[np.ndarray, np.ndarray],
    em: Profiles,
    nonem: Profiles | None,
    mip: np.ndarray,
    track: tuple[np.ndarray, np.ndarray],
    normal: np.ndarray,
) -> tuple[LayerCells, np.ndarray]:
    """One layer's window cells, and the truth energy of the layer outside the window.

    ``mip`` (N,) is the track's ionisation in the layer, left in the cell the
    track (η, φ) crosses; ``normal`` (N, n_eta, n_phi) the layer's standard
    normals. Events go in chunks whose temporaries stay cache-sized.
    """
    eta_low, phi_low = window_low
    n = len(eta_low)
    shape = config.window.shape(layer.name)
    sigma = config.noise_mev[layer.name] * 1e-3 * config.noise_scale
    e_over_h = config.e_over_h_lar if layer.is_em else config.e_over_h_tile
    e_over_mip = config.e_over_mip_lar if layer.is_em else config.e_over_mip_tile
    visible_share = 1.0 / e_over_h
    invisible_share = 1.0 - visible_share - config.escaped_fraction
    em_sq = np.float32(config.em_sampling_term**2)
    had_sq = np.float32(config.hadronic_sampling_term**2)

    energy = np.empty((n, *shape), dtype=np.float32)
    calib_em = np.empty((n, *shape))
    # Non-EM visible, invisible, escaped: zero for photons.
    calib_rest = [np.zeros((n, *shape)) for _ in range(3)]
    inside = np.zeros(n)
    m = em.weight.shape[1] + (0 if nonem is None else nonem.weight.shape[1])
    step = max(1, _CHUNK_ELEMENTS // (m * (shape[0] + 1) * (shape[1] + 1)))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        low = (eta_low[lo:hi], phi_low[lo:hi])
        em_cells = cell_energies(layer, config.window, *low, _chunk(em, lo, hi), calib_em[lo:hi])
        inside[lo:hi] += em_cells.reshape(hi - lo, -1).sum(axis=1)
        # §2, §3b.4: EM-scale signal with sampling fluctuations (EM and MIP: the EM
        # term; visible non-EM: the hadronic term) and noise. The three are
        # independent Gaussians, so one standard normal per cell draws their sum.
        signal = em_cells.astype(np.float32)
        variance = em_sq * np.maximum(signal, 0.0)
        variance += np.float32(sigma**2)
        if nonem is not None:
            nonem_cells = cell_energies(
                layer, config.window, *low, _chunk(nonem, lo, hi), calib_rest[0][lo:hi]
            )
            inside[lo:hi] += nonem_cells.reshape(hi - lo, -1).sum(axis=1)
            np.multiply(nonem_cells, invisible_share, out=calib_rest[1][lo:hi])
            np.multiply(nonem_cells, config.escaped_fraction, out=calib_rest[2][lo:hi])
            visible = nonem_cells
            visible *= visible_share  # in place: calib_rest[0] holds the visible part
            visible32 = visible.astype(np.float32)
            signal += visible32
            np.maximum(visible32, 0.0, out=visible32)
            variance += had_sq * visible32
            # The track ionises the one cell it crosses (truth: non-EM visible).
            cell = (
                np.arange(hi - lo),
                np.clip(((track[0][lo:hi] - low[0]) / layer.deta).astype(int), 0, shape[0] - 1),
                np.clip(((track[1][lo:hi] - low[1]) / layer.dphi).astype(int), 0, shape[1] - 1),
            )
            visible[cell] += mip[lo:hi]
            signal[cell] += (mip[lo:hi] / e_over_mip).astype(np.float32)
            variance[cell] += (em_sq * mip[lo:hi]).astype(np.float32)
        np.sqrt(variance, out=variance)
        variance *= normal[lo:hi]
        np.add(signal, variance, out=energy[lo:hi])
    layer_energy = em.weight.sum(axis=1)
    if nonem is not None:
        layer_energy += nonem.weight.sum(axis=1)
    cells = LayerCells(layer, energy, sigma, calib_em, *calib_rest)
    return cells, layer_energy - inside


# ---------------------------------------------------------------------------
# The batch driver.


class _Draws(NamedTuple):
    uniform: np.ndarray  # (N, _N_UNIFORMS) float64
    normal: np.ndarray  # (N, _N_NORMALS) float64
    cells: np.ndarray  # (N, n_cells) float32, layer by layer in geometry.LAYERS order
    # π± only: the cascade's uniforms and normals (showers.cascade_draws), from a
    # stream of their own, so that photon and π0 events do not depend on them.
    cascade_uniform: np.ndarray
    cascade_normal: np.ndarray
    # Photons (γ, π0): conversions in the inner detector, from a third stream.
    conversion_uniform: np.ndarray  # (N, photons, 4)
    conversion_normal: np.ndarray  # (N, photons, 2): GFlash of the positron
    # Every EM shower: the spread of its core share per layer (GFlash's spots), a fourth.
    spot_normal: np.ndarray  # (N, EM shower slots, layers)


def _draw(config: SimulationConfig, start: int, stop: int) -> _Draws:
    """Random numbers of events start..stop-1, drawn per fixed block of events."""
    stream = list(PARTICLES).index(config.particle)
    n_cells = config.window.n_cells
    n = stop - start
    uniform, normal = np.empty((n, _N_UNIFORMS)), np.empty((n, _N_NORMALS))
    cells = np.empty((n, n_cells), dtype=np.float32)
    hadron = config.particle in ("pi+", "pi-")
    n_u, n_z = cascade_draws(config.subshowers, config.hadronic_clumps) if hadron else (0, 0)
    cascade_u, cascade_z = np.empty((n, n_u)), np.empty((n, n_z))
    photons = _PHOTONS.get(config.particle, 0)
    conversion_u, conversion_z = np.empty((n, photons, 4)), np.empty((n, photons, 2))
    # EM shower slots: a photon's or its e+e− pair's, or a π± cascade's π0 sub-showers.
    em_slots = 2 * photons if photons else config.subshowers
    spot_z = np.empty((n, em_slots, len(geometry.LAYERS)))
    for block in range(start // _BLOCK, (stop - 1) // _BLOCK + 1):
        seed = np.random.SeedSequence(config.seed, spawn_key=(stream, block))
        rng = np.random.Generator(np.random.PCG64(seed))
        # The whole block is always drawn, in this order, whatever part is kept.
        lo, hi = max(start, block * _BLOCK), min(stop, (block + 1) * _BLOCK)
        keep = slice(lo - block * _BLOCK, hi - block * _BLOCK)
        uniform[lo - start : hi - start] = rng.random((_BLOCK, _N_UNIFORMS))[keep]
        normal[lo - start : hi - start] = rng.standard_normal((_BLOCK, _N_NORMALS))[keep]
        if hi - lo == _BLOCK:
            rng.standard_normal(dtype=np.float32, out=cells[lo - start : hi - start])
        else:
            block_cells = rng.standard_normal((_BLOCK, n_cells), dtype=np.float32)
            cells[lo - start : hi - start] = block_cells[keep]
        if hadron:
            cascade_seed = np.random.SeedSequence(config.seed, spawn_key=(stream, block, 1))
            cascade = np.random.Generator(np.random.PCG64(cascade_seed))
            cascade_u[lo - start : hi - start] = cascade.random((_BLOCK, n_u))[keep]
            cascade_z[lo - start : hi - start] = cascade.standard_normal((_BLOCK, n_z))[keep]
        if photons:
            conversion_seed = np.random.SeedSequence(config.seed, spawn_key=(stream, block, 2))
            conversion = np.random.Generator(np.random.PCG64(conversion_seed))
            block_u = conversion.random((_BLOCK, photons, 4))
            conversion_u[lo - start : hi - start] = block_u[keep]
            block_z = conversion.standard_normal((_BLOCK, photons, 2))
            conversion_z[lo - start : hi - start] = block_z[keep]
        spot_seed = np.random.SeedSequence(config.seed, spawn_key=(stream, block, 3))
        spots = np.random.Generator(np.random.PCG64(spot_seed))
        spot_z[lo - start : hi - start] = spots.standard_normal((_BLOCK, *spot_z.shape[1:]))[keep]
    return _Draws(uniform, normal, cells, cascade_u, cascade_z, conversion_u, conversion_z, spot_z)


def simulate_batch(config: SimulationConfig, start: int, stop: int) -> CellBatch:
    """Simulate events ``start`` .. ``stop − 1`` of the sample described by ``config``.

    Events are independent of the range they are simulated in: any split of
    0 .. n_events − 1 into batches gives the same events, bit for bit.
    """
    if not (isinstance(start, (int, np.integer)) and isinstance(stop, (int, np.integer))):
        msg = f"start and stop must be integers; got {start!r}, {stop!r}"
        raise InvalidTypeError(msg)
    if not 0 <= start < stop <= config.n_events:
        msg = f"need 0 <= start < stop <= n_events = {config.n_events}; got [{start}, {stop})"
        raise InvalidValueError(msg)
    stack = build_stack(config.dead_material)
    draws = _draw(config, start, stop)
    u, z = draws.uniform, draws.normal
    n = stop - start

    # The generated particle: log-uniform total energy, |η| uniform with a random sign.
    energy = config.e_min * (config.e_max / config.e_min) ** u[:, 0]
    abs_eta = config.eta_min + (config.eta_max - config.eta_min) * u[:, 1]
    eta = np.where(u[:, 2] < 0.5, -abs_eta, abs_eta)
    phi = geometry.wrap_phi(config.phi_min + (config.phi_max - config.phi_min) * u[:, 3])
    eta_low, phi_low = config.window.origin(eta, phi)

    extra: dict[str, np.ndarray] = {}
    nonem: Deposit | None = None
    mip = np.zeros((n, len(stack.r_inner)))
    if config.particle in _PHOTONS:
        if config.particle == "pi0":
            cos_theta_star, phi_star = 2.0 * u[:, 4] - 1.0, 2.0 * math.pi * u[:, 5]
            photons = pi0_decay(energy, eta, phi, cos_theta_star, phi_star)
            normals = z[:, :4].reshape(n, 2, 2)
            for i, key in enumerate(("photon1", "photon2")):
                extra[f"{key}_e"] = photons[0][:, i]
                extra[f"{key}_eta"] = photons[1][:, i]
                extra[f"{key}_phi"] = geometry.wrap_phi(photons[2][:, i])
        else:
            photons = (energy[:, None], eta[:, None], phi[:, None])
            normals = z[:, None, :2]
        # The photons' own uniforms u[:, 6:8] are no longer used: the conversion
        # stream decides where they convert (§3a.1).
        pairs = convert_photons(config.inner_detector, *photons, draws.conversion_uniform)
        both = np.stack([normals, draws.conversion_normal], axis=2).reshape(n, -1, 2)
        em = photon_showers(
            config.gflash, stack, pairs.energy, pairs.eta, pairs.phi, pairs.start_x0, both
        )
        if pairs.curls.any():  # electrons that loop in the solenoid: lost in front
            slice_energy, beyond = em.slice_energy.copy(), em.beyond.copy()
            slice_energy[pairs.curls] = 0.0
            slice_energy[pairs.curls, stack.front] = pairs.energy[pairs.curls]
            beyond[pairs.curls] = 0.0
            em = em._replace(slice_energy=slice_energy, beyond=beyond)
        extra["conversions"] = pairs.converted.sum(axis=1).astype(np.float64)
        # The radius of the first converted photon (in decay order), 0 if none.
        first = np.argmax(pairs.converted, axis=1)
        extra["conversion_radius_mm"] = pairs.radius_mm[np.arange(n), first]
    else:
        hadron = charged_pion_showers(
            config.hadronic,
            config.gflash,
            stack,
            energy,
            eta,
            phi,
            u[:, 6],
            z[:, 4],
            draws.cascade_uniform,
            draws.cascade_normal,
        )
        em, nonem, mip = hadron.em, hadron.nonem, hadron.mip_slices
        extra["em_fraction"] = hadron.em_fraction
        extra["charge_exchange"] = hadron.charge_exchange.astype(np.float64)
        extra["first_interaction_lambda"] = hadron.start_lambda
        extra["mip_energy"] = mip.sum(axis=1)

    deposits = [em] if nonem is None else [em, nonem]
    in_slices = sum(d.slice_energy.sum(axis=1) for d in deposits) + mip
    leakage = sum(d.beyond.sum(axis=1) for d in deposits)

    layers: dict[str, LayerCells] = {}
    outside = np.zeros(n)
    offset = 0
    for index, lay in enumerate(geometry.LAYERS):
        shape = config.window.shape(lay.name)
        normal = draws.cells[:, offset : offset + shape[0] * shape[1]].reshape(n, *shape)
        offset += shape[0] * shape[1]
        cells, lost = _layer_cells(
            config,
            lay,
            (eta_low, phi_low),
            em_profiles(config.gflash, stack, em, lay, draws.spot_normal[:, :, index]),
            None if nonem is None else nonem_profiles(config.hadronic, stack, nonem, lay),
            mip[:, stack.layer_slices[lay.name]].sum(axis=1),
            (eta, phi),
            normal,
        )
        layers[lay.name] = cells
        outside += lost

    return CellBatch(
        window=config.window,
        eta_low=eta_low,
        phi_low=phi_low,
        layers=layers,
        truth_e=energy,
        truth_eta=eta,
        truth_phi=phi,
        truth_pdg=np.full(n, config.pdg_id, dtype=np.int64),
        event_number=np.arange(start, stop, dtype=np.int64),
        dead_material_front=in_slices[:, stack.front],
        dead_material_cryostat=in_slices[:, stack.cryostat],
        leakage_back=leakage,
        outside_window=outside,
        extra=extra,
    )


def simulate(config: SimulationConfig) -> Iterator[CellBatch]:
    """Yield the sample in batches of ``config.batch_size`` events (the last may be shorter)."""
    for start in range(0, config.n_events, config.batch_size):
        yield simulate_batch(config, start, min(start + config.batch_size, config.n_events))
