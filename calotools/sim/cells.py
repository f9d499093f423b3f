"""Cell-level events: the calorimeter cells in a fixed window around each particle.

The simulation (``calotools.sim.simulation``) fills these containers and the
reconstruction (``calotools.sim.clustering``) reads them. A batch of N events holds,
for every layer, arrays shaped ``(N, n_eta, n_phi)`` over the cells of a window.

The window is aligned on the coarsest cell grid of the barrel (TileBar2: 0.2 in
η; 2π/64 in φ), so every layer's window has the same shape in every event and
the cell-neighbour relations inside the window are one template for all events.
Only the window's origin (``eta_low``, ``phi_low``) changes from event to event.

Examples
--------
>>> window = Window()
>>> window.shape("EMB2")
(32, 32)
>>> window.n_cells
4000
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from calotools import geometry
from calotools.errors import InvalidValueError

__all__ = ["BarrelWindow", "CellBatch", "LayerCells", "Window"]

#: Grid on which window edges are aligned: TileBar2's Δη and the 2π/64 φ cell
#: shared by the presampler, EMB1 and Tile, a multiple of every other layer's cell.
ALIGN_ETA = 0.2
ALIGN_PHI = 2.0 * math.pi / 64


@dataclass(frozen=True)
class Window:
    """The η × φ region simulated around each particle.

    ``margin`` is the least distance between the particle and a window edge
    (≈ 0.3, so that a 0.6 × 0.6 region is always covered and topo-clusters
    are not truncated, ``docs/physics.md`` §1). Aligning the origin on
    ``ALIGN_ETA`` × ``ALIGN_PHI`` adds up to one alignment cell in each
    direction.
    """

    margin_eta: float = 0.3
    margin_phi: float = 0.3

    @property
    def n_align_eta(self) -> int:
        """Window width in η, in alignment cells (0.2)."""
        return math.ceil(2 * self.margin_eta / ALIGN_ETA - 1e-9) + 1

    @property
    def n_align_phi(self) -> int:
        """Window width in φ, in alignment cells (2π/64)."""
        return math.ceil(2 * self.margin_phi / ALIGN_PHI - 1e-9) + 1

    @property
    def width_eta(self) -> float:
        """Window width in η."""
        return self.n_align_eta * ALIGN_ETA

    @property
    def width_phi(self) -> float:
        """Window width in φ (rad)."""
        return self.n_align_phi * ALIGN_PHI

    def shape(self, layer: str | int) -> tuple[int, int]:
        """(n_η, n_φ) of the window's cell grid in ``layer``."""
        lay = geometry.layer(layer)
        return (round(self.width_eta / lay.deta), round(self.width_phi / lay.dphi))

    @property
    def n_cells(self) -> int:
        """Number of cells in the window, all layers."""
        return sum(math.prod(self.shape(lay.name)) for lay in geometry.LAYERS)

    def origin(self, eta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Aligned lower edges (η_low, φ_low) of the windows around directions (eta, phi).

        φ_low is returned unwrapped (it may be below −π); cell φ centres are
        wrapped when they are computed.
        """
        eta_low = np.floor((np.asarray(eta) - self.margin_eta) / ALIGN_ETA) * ALIGN_ETA
        phi_low = np.floor((np.asarray(phi) - self.margin_phi) / ALIGN_PHI) * ALIGN_PHI
        return eta_low, phi_low

    @property
    def wraps_phi(self) -> bool:
        """Whether the window is the whole φ ring, its first and last φ cells neighbours."""
        return False


@dataclass(frozen=True)
class BarrelWindow(Window):
    """The whole barrel as one window: |η| < ``eta_max``, the full φ ring.

    The window of whole collision events (`calotools.sim.barrel`): every
    event has the same origin (−``eta_max``, −π), and φ wraps around. The
    margins of `Window` play no part.

    Examples
    --------
    >>> barrel = BarrelWindow()
    >>> barrel.shape("EMB2"), barrel.wraps_phi
    ((80, 256), True)
    """

    eta_max: float = geometry.CELLS_ETA_MAX

    def __post_init__(self) -> None:
        steps = self.eta_max / ALIGN_ETA
        if not (self.eta_max > 0 and abs(steps - round(steps)) < 1e-9):
            msg = f"eta_max must be a positive multiple of {ALIGN_ETA}; got {self.eta_max!r}"
            raise InvalidValueError(msg)

    @property
    def n_align_eta(self) -> int:
        """Window width in η, in alignment cells (0.2)."""
        return round(2 * self.eta_max / ALIGN_ETA)

    @property
    def n_align_phi(self) -> int:
        """The full ring, in alignment cells (2π/64)."""
        return round(2.0 * math.pi / ALIGN_PHI)

    def origin(self, eta: np.ndarray, phi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(−eta_max, −π) for every direction: the window is the whole barrel."""
        shape = np.shape(eta)
        return np.full(shape, -self.eta_max), np.full(shape, -math.pi)

    @property
    def wraps_phi(self) -> bool:
        """Always: the window is the whole φ ring."""
        return True


@dataclass
class LayerCells:
    """One layer's window cells for a batch of events. Energies in GeV.

    The truth ("calibration-hit") energy of a cell is split as ATLAS splits it:
    EM, non-EM visible, invisible (nuclear binding, …) and escaped (neutrinos,
    …); their sum is what the cell's calibration should recover.
    """

    layer: geometry.Layer
    energy: np.ndarray  #: (N, n_eta, n_phi) measured, EM scale, with noise
    noise_sigma: float  #: electronic noise σ per cell (GeV)
    calib_em: np.ndarray  #: (N, n_eta, n_phi)
    calib_nonem: np.ndarray  #: (N, n_eta, n_phi) non-EM visible
    calib_invisible: np.ndarray  #: (N, n_eta, n_phi)
    calib_escaped: np.ndarray  #: (N, n_eta, n_phi)
    #: σ of the in-time pile-up energy per cell (GeV), one value, (n_eta, n_phi)
    #: or, when it differs between events (windows at different η), (N, n_eta, 1):
    #: what ATLAS adds in quadrature to the electronic noise at a given ⟨μ⟩.
    pileup_sigma: np.ndarray | float = 0.0

    @property
    def sigma(self) -> np.ndarray | float:
        """Total noise σ per cell: electronic ⊕ pile-up (GeV), what the clustering cuts on."""
        if np.ndim(self.pileup_sigma) == 0 and self.pileup_sigma == 0:
            return self.noise_sigma
        return np.hypot(self.noise_sigma, self.pileup_sigma)

    @property
    def calib_total(self) -> np.ndarray:
        """Truth energy of each cell: EM + non-EM visible + invisible + escaped."""
        return self.calib_em + self.calib_nonem + self.calib_invisible + self.calib_escaped


@dataclass
class CellBatch:
    """N simulated events: window cells of every layer plus per-event truth.

    Attributes
    ----------
    window
        The window geometry shared by every event.
    eta_low, phi_low
        (N,) lower window edges of each event (see `Window.origin`).
    layers
        Cells per layer name, in `geometry.LAYERS` order (presampler included).
    truth_e, truth_eta, truth_phi, truth_pdg, event_number
        (N,) the generated particle.
    dead_material_front, dead_material_cryostat
        (N,) truth energy lost in the inactive material in front of the
        presampler and in the cryostat between EMB3 and TileBar0.
    leakage_back
        (N,) truth energy leaving the back of TileBar2.
    outside_window
        (N,) truth energy deposited in cells outside the simulated window.
    """

    window: Window
    eta_low: np.ndarray
    phi_low: np.ndarray
    layers: dict[str, LayerCells]
    truth_e: np.ndarray
    truth_eta: np.ndarray
    truth_phi: np.ndarray
    truth_pdg: np.ndarray
    event_number: np.ndarray
    dead_material_front: np.ndarray
    dead_material_cryostat: np.ndarray
    leakage_back: np.ndarray
    outside_window: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)  #: optional per-event truth
    #: Where the dead-material energy was lost when an event holds many particles:
    #: one row per particle, ``event`` (row), ``eta``, ``phi`` and the three
    #: regions' energies; None: at the generated particle, as the event's totals.
    dead_deposits: pd.DataFrame | None = None
    #: (N, n_cells) truth energy that in-time pile-up left in each window cell
    #: (template order), kept apart from the hard scatter's calibration hits;
    #: None: no pile-up was overlaid (`calotools.sim.pileup.overlay_window`).
    pileup_calib: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.truth_e)

    def eta_centers(self, layer: str) -> np.ndarray:
        """(N, n_eta) η of the cell centres of ``layer`` in each event's window."""
        lay = geometry.layer(layer)
        n_eta = self.window.shape(layer)[0]
        return self.eta_low[:, None] + (np.arange(n_eta) + 0.5) * lay.deta

    def phi_centers(self, layer: str) -> np.ndarray:
        """(N, n_phi) φ in (−π, π] of the cell centres of ``layer`` in each window."""
        lay = geometry.layer(layer)
        n_phi = self.window.shape(layer)[1]
        return geometry.wrap_phi(self.phi_low[:, None] + (np.arange(n_phi) + 0.5) * lay.dphi)

    def deposited_in_window(self) -> np.ndarray:
        """(N,) total truth energy in the window's cells, all layers."""
        return sum(cells.calib_total.sum(axis=(1, 2)) for cells in self.layers.values())

    def energy_balance(self) -> np.ndarray:
        """(N,) generated energy minus every place it went; zero up to rounding."""
        return self.truth_e - (
            self.deposited_in_window()
            + self.dead_material_front
            + self.dead_material_cryostat
            + self.leakage_back
            + self.outside_window
        )
