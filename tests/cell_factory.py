"""Hand-built cell events for the clustering and image tests.

Events are windows of `calotools.sim.cells.Window` with Gaussian noise of the
σ per layer of docs/physics.md §2 (or none) and deposits placed by hand in chosen cells.
"""

from __future__ import annotations

import numpy as np

from calotools import geometry
from calotools.sim.cells import CellBatch, LayerCells, Window
from calotools.sim.config import DEFAULT_NOISE_MEV

#: Electronic noise per cell in GeV: the simulation's table (docs/physics.md §2).
NOISE_SIGMA = {name: mev / 1000.0 for name, mev in DEFAULT_NOISE_MEV.items()}


def make_batch(
    n_events: int,
    *,
    eta: float | np.ndarray = 0.31,
    phi: float | np.ndarray = 0.12,
    noise: bool = True,
    seed: int = 1,
) -> CellBatch:
    """``n_events`` windows around (eta, phi), with noise unless ``noise`` is False."""
    rng = np.random.default_rng(seed)
    window = Window()
    eta = np.broadcast_to(np.asarray(eta, dtype=float), (n_events,)).copy()
    phi = np.broadcast_to(np.asarray(phi, dtype=float), (n_events,)).copy()
    eta_low, phi_low = window.origin(eta, phi)
    layers = {}
    for lay in geometry.LAYERS:
        shape = (n_events, *window.shape(lay.name))
        sigma = NOISE_SIGMA[lay.name]
        energy = rng.normal(0.0, sigma, shape) if noise else np.zeros(shape)
        zeros = np.zeros(shape)
        layers[lay.name] = LayerCells(
            lay, energy, sigma, zeros.copy(), zeros.copy(), zeros.copy(), zeros.copy()
        )
    zero = np.zeros(n_events)
    return CellBatch(
        window=window,
        eta_low=eta_low,
        phi_low=phi_low,
        layers=layers,
        truth_e=zero.copy(),
        truth_eta=eta,
        truth_phi=phi,
        truth_pdg=np.full(n_events, 111),
        event_number=np.arange(n_events),
        dead_material_front=zero.copy(),
        dead_material_cryostat=zero.copy(),
        leakage_back=zero.copy(),
        outside_window=zero.copy(),
    )


def cell_index(batch: CellBatch, event: int, layer: str, eta: float, phi: float) -> tuple[int, int]:
    """(i_η, i_φ) in ``layer``'s window of the cell containing (eta, phi)."""
    lay = geometry.layer(layer)
    i_eta = int(np.floor((eta - batch.eta_low[event]) / lay.deta))
    i_phi = int(np.floor(geometry.wrap_phi(phi - batch.phi_low[event]) / lay.dphi))
    n_eta, n_phi = batch.window.shape(layer)
    if not (0 <= i_eta < n_eta and 0 <= i_phi < n_phi):
        msg = f"({eta}, {phi}) is outside event {event}'s window"
        raise ValueError(msg)
    return i_eta, i_phi


def deposit(
    batch: CellBatch, event: int, layer: str, i_eta: int, i_phi: int, energy: float
) -> None:
    """Add ``energy`` (GeV) to one cell, measured and as EM truth."""
    cells = batch.layers[layer]
    cells.energy[event, i_eta, i_phi] += energy
    cells.calib_em[event, i_eta, i_phi] += energy
    batch.truth_e[event] += energy


def deposit_blob(
    batch: CellBatch,
    event: int,
    layer: str,
    i_eta: int,
    i_phi: int,
    energy: float,
    *,
    spread: float = 0.25,
) -> None:
    """A 5 × 5 patch peaked at (i_η, i_φ): the centre gets ``energy``, neighbours fall off."""
    n_eta, n_phi = batch.window.shape(layer)
    for d_eta in range(-2, 3):
        for d_phi in range(-2, 3):
            i, j = i_eta + d_eta, i_phi + d_phi
            if 0 <= i < n_eta and 0 <= j < n_phi:
                deposit(batch, event, layer, i, j, energy * spread ** max(abs(d_eta), abs(d_phi)))


def random_touching_events(n_events: int, seed: int):
    """Events with 1–6 blobs around a common point, so that clusters touch and split."""
    rng = np.random.default_rng(seed)
    batch = make_batch(
        n_events,
        eta=rng.uniform(-0.6, 0.6, n_events),
        phi=rng.uniform(-3.1, 3.1, n_events),
        seed=seed,
    )
    layers = ["PreSamplerB", "EMB1", "EMB2", "EMB2", "EMB3", "TileBar0", "TileBar1", "TileBar2"]
    n_eta2, n_phi2 = batch.window.shape("EMB2")
    for event in range(n_events):
        centre = rng.uniform(8, n_eta2 - 8), rng.uniform(8, n_phi2 - 8)
        for _ in range(rng.integers(1, 7)):
            layer = layers[rng.integers(len(layers))]
            n_eta, n_phi = batch.window.shape(layer)
            i = int(np.clip(centre[0] / n_eta2 * n_eta + rng.normal(0, 2), 2, n_eta - 3))
            j = int(np.clip(centre[1] / n_phi2 * n_phi + rng.normal(0, 2), 2, n_phi - 3))
            deposit_blob(
                batch, event, layer, i, j, rng.uniform(0.3, 8.0), spread=rng.uniform(0.1, 0.6)
            )
    return batch
