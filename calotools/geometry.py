"""The ATLAS-like barrel calorimeter: layers, cells and the image window.

This module is the single source of truth for the geometry (``docs/physics.md``
§1, ``docs/ntuple-format.md``). Everything else in calotools reads it: no
other module spells out a cell size, a radius or an image shape.

Cells are projective: every layer is a grid of fixed Δη × Δφ, aligned so that
cell edges fall on η = 0 and φ = 0, with ``n_phi`` cells around the full ring.

Examples
--------
>>> from calotools import geometry
>>> geometry.layer("EMB2").image_shape
(16, 16)
>>> [lay.name for lay in geometry.IMAGE_LAYERS]
['EMB1', 'EMB2', 'EMB3', 'TileBar0', 'TileBar1', 'TileBar2']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

from calotools.errors import InvalidValueError, UnknownNameError

__all__ = [
    "BARREL_ETA_MAX",
    "CELLS_ETA_MAX",
    "EMB_MEDIUM",
    "IMAGE_HALF_WIDTH_ETA",
    "IMAGE_HALF_WIDTH_PHI",
    "IMAGE_LAYERS",
    "IMAGE_LAYER_NAMES",
    "LAR_MEDIUM",
    "LAYERS",
    "TILE_MEDIUM",
    "Layer",
    "Medium",
    "cell_volume",
    "layer",
    "wrap_phi",
]

#: |η| reach of the single particles simulated here (``docs/physics.md`` §1): their
#: 0.3-wide windows (`calotools.sim.cells.Window`) then stay inside `CELLS_ETA_MAX`.
BARREL_ETA_MAX = 0.7
#: |η| where the modelled barrel's cells end: the Tile barrel's edge, |η| = 1.0
#: (ATLAS detector paper, JINST 3 (2008) S08003); the EM barrel goes on to 1.475 but is modelled
#: no further than the Tile behind it. Whole events (`calotools.sim.barrel`) fill
#: the cells of |η| < 1.0 over the full φ ring.
CELLS_ETA_MAX = 1.0

#: Half-widths of the image window: 0.2 in η, π/16 in φ (two EMB1 φ cells, 2 × 2π/64).
#: MLTree leaves out cells with |dη| ≥ 0.2 − 10⁻⁴ or |dφ| ≥ π/16 − 10⁻⁴, so that a
#: cell exactly at the edge is out whatever the rounding (``docs/ntuple-format.md``,
#: "How MLTree fills the images").
IMAGE_HALF_WIDTH_ETA = 0.2
IMAGE_HALF_WIDTH_PHI = math.pi / 16


@dataclass(frozen=True)
class Medium:
    """Effective absorber + active medium of a calorimeter section.

    Values are the ``docs/physics.md`` §1 "effective media" [D].
    """

    name: str
    x0_cm: float  #: radiation length
    lambda_cm: float  #: nuclear interaction length
    moliere_cm: float  #: Molière radius
    critical_energy_mev: float  #: critical energy Ec
    z_eff: float  #: effective atomic number


#: Pb/LAr accordion of the EM barrel.
EMB_MEDIUM = Medium(
    "Pb/LAr", x0_cm=1.95, lambda_cm=42.0, moliere_cm=3.9, critical_energy_mev=10.5, z_eff=66.0
)
#: Fe/scintillator of the Tile barrel. Ec is that of iron (PDG) and the Molière
#: radius follows from R_M = 21.2 MeV · X0 / Ec (PDG calorimetry review).
TILE_MEDIUM = Medium(
    "Fe/scintillator",
    x0_cm=2.1,
    lambda_cm=20.0,
    moliere_cm=2.05,
    critical_energy_mev=21.7,
    z_eff=26.0,
)
#: Liquid argon of the presampler (PDG: X0 = 14.0 cm, λ_I = 85.7 cm, R_M = 9.04 cm).
LAR_MEDIUM = Medium(
    "LAr", x0_cm=14.0, lambda_cm=85.7, moliere_cm=9.04, critical_energy_mev=32.8, z_eff=18.0
)

_MEDIA = {"LAr": LAR_MEDIUM, "Pb/LAr": EMB_MEDIUM, "Fe/scintillator": TILE_MEDIUM}


@dataclass(frozen=True)
class Layer:
    """One sampling layer of the barrel.

    Depth is given as docs/physics.md §1 states it, in ``depth_unit`` at η = 0; the
    ``depth_x0`` and ``depth_lambda`` properties convert it with the layer's
    medium. The path through a layer grows as cosh η (projective geometry).
    """

    name: str
    sampling: int  #: ATLAS CaloSampling id
    deta: float
    n_phi: int  #: cells around the full φ ring; Δφ = 2π / n_phi
    r_inner_mm: float
    r_outer_mm: float
    depth: float
    depth_unit: Literal["X0", "lambda", "mm"]
    medium_name: str
    image_shape: tuple[int, int] | None  #: (n_η, n_φ) of the MLTree image; None: no image

    @property
    def dphi(self) -> float:
        """Cell width in φ (rad)."""
        return 2.0 * math.pi / self.n_phi

    @property
    def medium(self) -> Medium:
        """The effective medium of this layer."""
        return _MEDIA[self.medium_name]

    @property
    def thickness_mm(self) -> float:
        """Radial thickness at η = 0 (mm)."""
        return self.r_outer_mm - self.r_inner_mm

    @property
    def depth_x0(self) -> float:
        """Depth at η = 0 in radiation lengths."""
        return self._depth_cm_equivalent() / self.medium.x0_cm

    @property
    def depth_lambda(self) -> float:
        """Depth at η = 0 in nuclear interaction lengths."""
        return self._depth_cm_equivalent() / self.medium.lambda_cm

    def _depth_cm_equivalent(self) -> float:
        if self.depth_unit == "X0":
            return self.depth * self.medium.x0_cm
        if self.depth_unit == "lambda":
            return self.depth * self.medium.lambda_cm
        return self.depth / 10.0

    @property
    def is_em(self) -> bool:
        """Whether the layer belongs to the LAr EM calorimeter (presampler included)."""
        return self.sampling <= 3

    @property
    def eta_edges(self) -> np.ndarray:
        """Pixel edges in dη = η_cell − η_centre of the image window."""
        return self._pixel_edges(0, self.deta)

    @property
    def phi_edges(self) -> np.ndarray:
        """Pixel edges in dφ = φ_cell − φ_centre of the image window."""
        return self._pixel_edges(1, self.dphi)

    def _pixel_edges(self, axis: int, width: float) -> np.ndarray:
        if self.image_shape is None:
            msg = f"layer {self.name} has no image in the MLTree format"
            raise InvalidValueError(msg)
        n = self.image_shape[axis]
        # Pixel i holds cells with floor(d/width + 1e-4) + n/2 == i, i.e.
        # d in [(i - n/2) width, (i - n/2 + 1) width): the centre cell sits at n/2.
        return (np.arange(n + 1) - n // 2) * width

    def eta_index(self, eta: np.ndarray | float) -> np.ndarray:
        """Index of the η cell containing ``eta`` (η = 0 is a cell edge)."""
        return np.floor(np.asarray(eta) / self.deta).astype(np.int64)

    def phi_index(self, phi: np.ndarray | float) -> np.ndarray:
        """Index in [0, n_phi) of the φ cell containing ``phi``."""
        return (
            np.floor(np.mod(np.asarray(phi), 2.0 * math.pi) / self.dphi).astype(np.int64)
            % self.n_phi
        )

    def eta_center(self, index: np.ndarray | int) -> np.ndarray:
        """η of the centre of cell ``index``."""
        return (np.asarray(index) + 0.5) * self.deta

    def phi_center(self, index: np.ndarray | int) -> np.ndarray:
        """φ in (−π, π] of the centre of cell ``index``."""
        return wrap_phi((np.asarray(index) + 0.5) * self.dphi)

    def cell_volume_mm3(
        self,
        eta_low: np.ndarray | float,
        eta_high: np.ndarray | float,
    ) -> np.ndarray:
        """Volume of a cell of this layer between ``eta_low`` and ``eta_high`` (mm³)."""
        return cell_volume(self.r_inner_mm, self.r_outer_mm, eta_low, eta_high, self.dphi)


def cell_volume(
    r_inner: float,
    r_outer: float,
    eta_low: np.ndarray | float,
    eta_high: np.ndarray | float,
    dphi: float,
) -> np.ndarray:
    """Volume of a projective barrel cell, V = Δφ (R_out³ − R_in³)/3 (sinh η₂ − sinh η₁).

    ``docs/physics.md`` §1; lengths in whatever unit the radii carry.
    """
    sinh_span = np.abs(np.sinh(np.asarray(eta_high)) - np.sinh(np.asarray(eta_low)))
    return dphi * (r_outer**3 - r_inner**3) / 3.0 * sinh_span


def wrap_phi(phi: np.ndarray | float) -> np.ndarray:
    """Wrap an angle into (−π, π]."""
    return np.pi - np.mod(np.pi - np.asarray(phi), 2.0 * np.pi)


# docs/physics.md §1 (athena EMBDetDescr.cxx; JINST 3 S08003). Δφ is 2π/64
# (0.098) for the presampler, strips and Tile, 2π/256 (0.0245) for EMB2/EMB3.
LAYERS: tuple[Layer, ...] = (
    Layer("PreSamplerB", 0, 0.025, 64, 1460.0, 1471.0, 11.0, "mm", "LAr", None),
    Layer("EMB1", 1, 0.003125, 64, 1500.0, 1596.0, 4.3, "X0", "Pb/LAr", (128, 4)),
    Layer("EMB2", 2, 0.025, 256, 1596.0, 1926.0, 16.0, "X0", "Pb/LAr", (16, 16)),
    Layer("EMB3", 3, 0.05, 256, 1926.0, 1966.0, 2.0, "X0", "Pb/LAr", (8, 16)),
    Layer("TileBar0", 12, 0.1, 64, 2300.0, 2600.0, 1.5, "lambda", "Fe/scintillator", (4, 4)),
    Layer("TileBar1", 13, 0.1, 64, 2600.0, 3440.0, 4.1, "lambda", "Fe/scintillator", (4, 4)),
    Layer("TileBar2", 14, 0.2, 64, 3440.0, 3820.0, 1.8, "lambda", "Fe/scintillator", (2, 4)),
)

#: The six layers stored as images (all but the presampler), in MLTree order.
IMAGE_LAYERS: tuple[Layer, ...] = tuple(lay for lay in LAYERS if lay.image_shape is not None)
IMAGE_LAYER_NAMES: tuple[str, ...] = tuple(lay.name for lay in IMAGE_LAYERS)

_BY_KEY: dict[str | int, Layer] = {lay.name: lay for lay in LAYERS} | {
    lay.sampling: lay for lay in LAYERS
}


def layer(key: str | int) -> Layer:
    """Look a layer up by name (``"EMB2"``) or ATLAS sampling id (``2``)."""
    try:
        return _BY_KEY[key]
    except KeyError:
        known = ", ".join(f"{lay.name} ({lay.sampling})" for lay in LAYERS)
        msg = f"unknown calorimeter layer {key!r}; the barrel layers are: {known}"
        raise UnknownNameError(msg) from None
