"""The ATLAS photon-identification shower shapes, computed from MLTree layer images.

The variables are those the ATLAS photon identification cuts on (``docs/references.md``
[PHOTONID2019]: Eur. Phys. J. C 79 (2019) 205, arXiv:1810.05087, Table 1; [EGAMMA2019]),
computed as athena's egamma tools do ([ATHENA-EGAMMA]: ``egammaMiddleShape``,
``egammaStripsShape``), but from the six layer images of a topo-cluster
(``docs/ntuple-format.md``), so that they work on real MLTree ntuples and on
calotools' simulation alike. Definitions, window choices and where they differ
from athena: ``docs/shower-shapes.md``.

Pixels are cell energies divided by ``cluster_E``, so ratios and widths do not
depend on the normalisation; the one absolute energy, ΔE, is multiplied back by
``cluster_E`` (GeV) in `shower_shapes`. Each pixel of an image is one cell of its
layer. Every function takes arrays of many clusters at once, shaped
(n_clusters, n_η, n_φ), and returns one value per cluster; a variable whose
denominator is empty (an all-zero image) is NaN, without a warning. Windows
around a cell near the image edge are clipped to the image: cells beyond it are
not in the MLTree image anyway.

Examples
--------
>>> import numpy as np
>>> emb2 = np.zeros((1, 16, 16))
>>> emb2[0, 8, 8], emb2[0, 8, 11], emb2[0, 10, 8] = 0.8, 0.1, 0.1
>>> reta(emb2).round(6), rphi(emb2).round(6)
(array([0.9]), array([0.888889]))
>>> emb1 = np.zeros((1, 128, 4))
>>> emb1[0, 60:63, 1] = 0.1, 0.3, 0.1   # two strip maxima: 0.3 and 0.1
>>> emb1[0, 70:73, 1] = 0.05, 0.1, 0.05
>>> strip_eratio(emb1, emb2).round(6)
array([0.5])
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from calotools import geometry
from calotools.errors import InvalidValueError
from calotools.ntuple import IMAGE_BRANCHES, Clusters

__all__ = [
    "EM_LAYERS",
    "HADRONIC_LAYERS",
    "RETA_WINDOW",
    "RPHI_WINDOW",
    "STRIP_ARRAY_HALF_WIDTH",
    "STRIP_PHI_BINS",
    "VARIABLES",
    "WETA2_WINDOW",
    "WSTOT_HALF_WIDTH",
    "em_fraction",
    "hadronic_leakage",
    "hottest_cell",
    "reta",
    "rphi",
    "shower_shapes",
    "strip_delta_e",
    "strip_eratio",
    "strip_fside",
    "strip_profile",
    "strip_ws3",
    "strip_wstot",
    "weta2",
    "window_sum",
]

#: Every variable `shower_shapes` returns, with its meaning (``docs/shower-shapes.md``).
VARIABLES: dict[str, str] = {
    "Reta": "EMB2 energy in 3×7 (η×φ) cells over 7×7, around the hottest EMB2 cell",
    "Rphi": "EMB2 energy in 3×3 cells over 3×7, around the hottest EMB2 cell",
    "weta2": "energy-weighted RMS width in η of the 3×5 EMB2 cells around the hottest (η units)",
    "f1": "EMB1 energy over EMB1 + EMB2 + EMB3",
    "f3": "EMB3 energy over EMB1 + EMB2 + EMB3",
    "wstot": "width of the 20 strips around the shower, about the hottest strip (strip units)",
    "ws3": "width of the 3 strips around the hottest strip (strip units)",
    "Eratio": "(E 1st − E 2nd strip maximum) / (E 1st + E 2nd); 1 without a second maximum",
    "DeltaE": "E of the 2nd strip maximum − E of the lowest strip between the maxima (GeV)",
    "Fside": "(E in 7 strips − E in 3 strips) / E in 3 strips, around the hottest strip",
    "Rhad1": "TileBar0 E_T over EMB1 + EMB2 + EMB3 E_T",
    "Rhad": "TileBar0 + TileBar1 + TileBar2 E_T over EMB1 + EMB2 + EMB3 E_T",
}

#: Layers whose sum is E(EM), the denominator of f1, f3 and R_had. The presampler
#: has no MLTree image, so, unlike athena's, this E(EM) lacks it.
EM_LAYERS: tuple[str, ...] = ("EMB1", "EMB2", "EMB3")
#: The hadronic layers of R_had; R_had1 uses the first.
HADRONIC_LAYERS: tuple[str, ...] = ("TileBar0", "TileBar1", "TileBar2")

# (η, φ) sizes in cells of the EMB2 windows: athena's E277, E237 and E233 and the
# 3×5 window of weta2 (arXiv:1810.05087, Table 1; egammaMiddleShape).
#: R_eta = E(3×7) / E(7×7): the numerator window, then the denominator window.
RETA_WINDOW: tuple[tuple[int, int], tuple[int, int]] = ((3, 7), (7, 7))
#: R_phi = E(3×3) / E(3×7).
RPHI_WINDOW: tuple[tuple[int, int], tuple[int, int]] = ((3, 3), (3, 7))
#: The cells of the weta2 width.
WETA2_WINDOW: tuple[int, int] = (3, 5)

#: Strips athena's egammaStripsShape collects: those within ±0.0625 in η of the
#: hottest EMB2 cell (STRIP_ARRAY_SIZE = 40, i.e. ±20 strips of 0.003125).
#: Both strip maxima are looked for among them.
STRIP_ARRAY_HALF_WIDTH = 20
#: w_s,tot uses the strips within ±0.03125 of the hottest EMB2 cell: "a window
#: Δη × Δφ ≈ 0.0625 × 0.2, typically 20 strips" (arXiv:1810.05087, Table 1).
WSTOT_HALF_WIDTH = 10
#: Strip φ cells (2π/64 each) summed into one profile in η: athena takes ±0.098
#: around the hottest EMB2 cell, two strip cells, Δφ ≈ 0.2. The image has four
#: bins of 0.098; the profile is that of the two adjacent bins holding the most
#: strip energy, which are the two athena takes for an EM shower (the cell under
#: the shower axis and its nearer neighbour).
STRIP_PHI_BINS = 2

_EMB1 = geometry.layer("EMB1")
_EMB2 = geometry.layer("EMB2")
_SHAPES = IMAGE_BRANCHES

#: Clusters handled at once by `shower_shapes`, to bound its temporary arrays.
_CHUNK = 20_000


# ---------------------------------------------------------------------------- helpers


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, NaN where the denominator is not positive."""
    numerator = np.asarray(numerator, dtype=np.float64)
    denominator = np.asarray(denominator, dtype=np.float64)
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    return np.divide(numerator, denominator, out=out, where=denominator > 0)


def _images(image: np.ndarray, name: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """``image`` as an array of images, its float type kept (sums are made in float64)."""
    array = np.asarray(image)
    if array.dtype.kind not in "biuf":
        msg = f"{name} must be images of numbers; got values of type {array.dtype}"
        raise InvalidValueError(msg)
    if array.ndim != 3 or (shape is not None and array.shape[1:] != shape):
        expected = f"(n_clusters, {shape[0]}, {shape[1]})" if shape else "(n_clusters, n_η, n_φ)"
        msg = f"{name} must be images shaped {expected}; got shape {array.shape}"
        raise InvalidValueError(msg)
    return array


def _layer_sum(image: np.ndarray) -> np.ndarray:
    return np.asarray(image).reshape(len(image), -1).sum(axis=1, dtype=np.float64)


def hottest_cell(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(η index, φ index) of the hottest pixel of each image; the first one on a tie.

    >>> image = np.zeros((1, 16, 16)); image[0, 3, 12] = 1.0
    >>> hottest_cell(image)
    (array([3]), array([12]))
    """
    image = _images(image, "image")
    flat = image.reshape(len(image), -1).argmax(axis=1)
    return np.divmod(flat, image.shape[2])


def window_sum(
    image: np.ndarray,
    centre_eta: np.ndarray,
    centre_phi: np.ndarray,
    size: tuple[int, int],
) -> np.ndarray:
    """Sum of the ``size`` = (n_η, n_φ) pixels centred on each cluster's centre pixel.

    Sizes are odd; a window that reaches past the image edge is clipped to it.

    >>> image = np.ones((1, 16, 16))
    >>> window_sum(image, np.array([8]), np.array([8]), (3, 7)).item()
    21.0
    >>> window_sum(image, np.array([0]), np.array([8]), (3, 7)).item()  # clipped
    14.0
    """
    image = _images(image, "image")
    half_eta, half_phi = size[0] // 2, size[1] // 2
    eta = np.arange(image.shape[1])
    phi = np.arange(image.shape[2])
    in_eta = np.abs(eta[None, :] - np.asarray(centre_eta)[:, None]) <= half_eta
    in_phi = np.abs(phi[None, :] - np.asarray(centre_phi)[:, None]) <= half_phi
    return np.einsum("nij,ni,nj->n", image, in_eta, in_phi, dtype=np.float64)


# ---------------------------------------------------------------------------- EMB2


def reta(emb2: np.ndarray) -> np.ndarray:
    """R_eta = E(3×7) / E(7×7) in EMB2, η × φ cells around the hottest EMB2 cell."""
    emb2 = _images(emb2, "emb2", _SHAPES["EMB2"])
    eta, phi = hottest_cell(emb2)
    numerator, denominator = RETA_WINDOW
    return _ratio(window_sum(emb2, eta, phi, numerator), window_sum(emb2, eta, phi, denominator))


def rphi(emb2: np.ndarray) -> np.ndarray:
    """R_phi = E(3×3) / E(3×7) in EMB2, η × φ cells around the hottest EMB2 cell."""
    emb2 = _images(emb2, "emb2", _SHAPES["EMB2"])
    eta, phi = hottest_cell(emb2)
    numerator, denominator = RPHI_WINDOW
    return _ratio(window_sum(emb2, eta, phi, numerator), window_sum(emb2, eta, phi, denominator))


def weta2(emb2: np.ndarray) -> np.ndarray:
    """Energy-weighted RMS in η of the 3×5 EMB2 cells around the hottest one, in η units.

    √(ΣE·η²/ΣE − (ΣE·η/ΣE)²), with η the cell centres. athena also corrects it for
    where the shower hits the hottest cell (egammaqweta2c); this is the raw width.

    >>> emb2 = np.zeros((1, 16, 16)); emb2[0, 7:9, 8] = 0.5
    >>> weta2(emb2).round(5)   # half a cell
    array([0.0125])
    """
    emb2 = _images(emb2, "emb2", _SHAPES["EMB2"])
    eta, phi = hottest_cell(emb2)
    half_eta, half_phi = WETA2_WINDOW[0] // 2, WETA2_WINDOW[1] // 2
    # Offsets from the hottest cell: a width does not depend on the origin, and the
    # pixel grid has the cells' own spacing, so this is exact.
    offset = np.arange(emb2.shape[1])[None, :] - eta[:, None]
    in_eta = np.abs(offset) <= half_eta
    in_phi = np.abs(np.arange(emb2.shape[2])[None, :] - phi[:, None]) <= half_phi
    # The energy of each η row of the window.
    profile = np.einsum("nij,nj->ni", emb2, in_phi, dtype=np.float64) * in_eta
    d_eta = offset * _EMB2.deta
    total = profile.sum(axis=1)
    mean = _ratio((profile * d_eta).sum(axis=1), total)
    second = _ratio((profile * d_eta**2).sum(axis=1), total)
    return np.sqrt(np.maximum(second - mean**2, 0.0))  # ≥ 0: rounding only


# ---------------------------------------------------------------------------- fractions


def em_fraction(
    layer: np.ndarray, emb1: np.ndarray, emb2: np.ndarray, emb3: np.ndarray
) -> np.ndarray:
    """Energy of ``layer`` over E(EM) = EMB1 + EMB2 + EMB3: f1 with EMB1, f3 with EMB3.

    >>> emb1 = np.full((1, 128, 4), 0.2 / 512)
    >>> emb2, emb3 = np.zeros((1, 16, 16)), np.zeros((1, 8, 16))
    >>> emb2[0, 8, 8], emb3[0, 4, 8] = 0.7, 0.1
    >>> f1, f3 = em_fraction(emb1, emb1, emb2, emb3), em_fraction(emb3, emb1, emb2, emb3)
    >>> f1.round(6), f3.round(6)
    (array([0.2]), array([0.1]))
    """
    em = _layer_sum(emb1) + _layer_sum(emb2) + _layer_sum(emb3)
    return _ratio(_layer_sum(layer), em)


def hadronic_leakage(
    hadronic: list[np.ndarray] | tuple[np.ndarray, ...],
    emb1: np.ndarray,
    emb2: np.ndarray,
    emb3: np.ndarray,
) -> np.ndarray:
    """E_T of the ``hadronic`` layers over E_T of EMB1 + EMB2 + EMB3: R_had1, R_had.

    All cells of an image lie within 0.2 in η of the window centre, so their
    cosh η are nearly equal and E_T ratios are energy ratios (to ≤ 12 % for one
    edge cell at |η| = 0.7, ≤ 1 % summed over a shower).

    >>> em = [np.zeros((1, 128, 4)), np.full((1, 16, 16), 0.9 / 256), np.zeros((1, 8, 16))]
    >>> tile0 = np.zeros((1, 4, 4)); tile0[0, 2, 2] = 0.09
    >>> hadronic_leakage([tile0], *em).round(6)
    array([0.1])
    """
    if not len(hadronic):
        msg = "hadronic_leakage needs at least one hadronic layer image"
        raise InvalidValueError(msg)
    em = _layer_sum(emb1) + _layer_sum(emb2) + _layer_sum(emb3)
    return _ratio(np.sum([_layer_sum(image) for image in hadronic], axis=0), em)


# ---------------------------------------------------------------------------- strips


class _Strips(NamedTuple):
    """The strip array of each cluster, shared by the strip variables."""

    profile: np.ndarray  #: (n, 128) strip energies, 0 outside the array
    hottest: np.ndarray  #: index of the hottest strip; −1: no strip variables
    in_array: np.ndarray  #: (n, 128) which strips athena's array holds
    anchor: np.ndarray  #: hottest EMB2 cell's η in strip-pixel coordinates


def _strips(emb1: np.ndarray, emb2: np.ndarray) -> _Strips:
    emb1 = _images(emb1, "emb1", _SHAPES["EMB1"])
    emb2 = _images(emb2, "emb2", _SHAPES["EMB2"])
    n_strips = emb1.shape[1]
    # The run of STRIP_PHI_BINS adjacent φ bins with the most strip energy.
    per_bin = emb1.sum(axis=1, dtype=np.float64)
    runs = np.lib.stride_tricks.sliding_window_view(per_bin, STRIP_PHI_BINS, axis=1).sum(axis=2)
    bins = runs.argmax(axis=1)[:, None] + np.arange(STRIP_PHI_BINS)[None, :]
    profile = np.take_along_axis(emb1, bins[:, None, :], axis=2).sum(axis=2, dtype=np.float64)
    anchor = _strip_anchor(emb2)
    strip_centre = np.arange(n_strips) + 0.5
    in_array = np.abs(strip_centre[None, :] - anchor[:, None]) < STRIP_ARRAY_HALF_WIDTH
    profile = profile * in_array
    has_cells = (profile > 0).any(axis=1) & (_layer_sum(emb2) > 0)
    hottest = np.where(has_cells, profile.argmax(axis=1), -1)
    return _Strips(profile, hottest, in_array, anchor)


def _strip_anchor(emb2: np.ndarray) -> np.ndarray:
    """η of the hottest EMB2 cell's centre in strip-pixel coordinates (pixel i spans [i, i+1)).

    It stands for the cell's own centre to within half an EMB2 cell (4 strips):
    the image does not record where in its cell the window centre lies.
    """
    eta, _ = hottest_cell(emb2)
    strips_per_cell = round(_EMB2.deta / _EMB1.deta)  # 8: the two grids share their edges
    n_cells, n_strips = _SHAPES["EMB2"][0], _SHAPES["EMB1"][0]
    return (eta - n_cells // 2 + 0.5) * strips_per_cell + n_strips // 2


def strip_profile(emb1: np.ndarray, emb2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The strip energies in η that the strip variables use, and the hottest strip.

    The profile sums the `STRIP_PHI_BINS` adjacent φ bins of EMB1 that hold the
    most energy and keeps the strips within `STRIP_ARRAY_HALF_WIDTH` of the
    hottest EMB2 cell (the others are 0), as athena's strip array does. Returns
    the profile, shaped (n_clusters, 128), and the index of its hottest strip:
    −1 where the profile is empty or EMB2 has no cell (athena then computes no
    strip variable, and they are NaN here).

    >>> emb1 = np.zeros((1, 128, 4)); emb1[0, 66, 1:3] = 0.2, 0.1; emb1[0, 66, 0] = 0.05
    >>> emb2 = np.zeros((1, 16, 16)); emb2[0, 8, 8] = 0.6
    >>> profile, hottest = strip_profile(emb1, emb2)
    >>> profile[0, 66].round(6), hottest
    (np.float64(0.3), array([66]))
    """
    strips = _strips(emb1, emb2)
    return strips.profile, strips.hottest


def _around(hottest: np.ndarray, n_strips: int, half: int) -> np.ndarray:
    """Strips within ``half`` of the hottest one (none where there is no hottest)."""
    mask = np.abs(np.arange(n_strips)[None, :] - hottest[:, None]) <= half
    return mask & (hottest >= 0)[:, None]


def _width_about_hottest(strips: _Strips, mask: np.ndarray) -> np.ndarray:
    """√(ΣE_i (i − i_max)² / ΣE_i) over the strips in ``mask``: athena's strip widths."""
    distance = np.arange(strips.profile.shape[1])[None, :] - strips.hottest[:, None]
    weights = strips.profile * mask
    return np.sqrt(_ratio((weights * distance**2).sum(axis=1), weights.sum(axis=1)))


def _wstot(strips: _Strips) -> np.ndarray:
    strip_centre = np.arange(strips.profile.shape[1]) + 0.5
    mask = np.abs(strip_centre[None, :] - strips.anchor[:, None]) < WSTOT_HALF_WIDTH
    return _width_about_hottest(strips, mask & (strips.hottest >= 0)[:, None])


def _ws3(strips: _Strips) -> np.ndarray:
    return _width_about_hottest(strips, _around(strips.hottest, strips.profile.shape[1], 1))


def _fside(strips: _Strips) -> np.ndarray:
    n_strips = strips.profile.shape[1]
    core = (strips.profile * _around(strips.hottest, n_strips, 1)).sum(axis=1)
    seven = (strips.profile * _around(strips.hottest, n_strips, 3)).sum(axis=1)
    return np.where(strips.hottest >= 0, _ratio(seven - core, core), np.nan)


def _maxima(strips: _Strips) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energies of the first and second strip maxima and of the lowest strip between.

    As athena's setEmax2 and setEmin: the second maximum is the most energetic
    strip, other than the hottest, that is above both its neighbours, both of
    them in the strip array; without one, it and the minimum are 0. An empty
    pixel counts as a strip of energy 0: in a cluster's core it is a cell under
    MLTree's 5 MeV cut or a negative one, which athena would see as a valley.
    """
    profile, hottest, in_array = strips.profile, strips.hottest, strips.in_array
    n, n_strips = profile.shape
    index = np.arange(n_strips)
    rows = np.arange(n)
    inner = np.zeros(in_array.shape, dtype=bool)
    inner[:, 1:-1] = in_array[:, :-2] & in_array[:, 2:]
    peak = np.zeros(in_array.shape, dtype=bool)
    peak[:, 1:-1] = (profile[:, 1:-1] > profile[:, :-2]) & (profile[:, 1:-1] > profile[:, 2:])
    peak &= inner & (index[None, :] != hottest[:, None]) & (hottest >= 0)[:, None]
    has_second = np.asarray(peak.any(axis=1))
    second = np.where(peak, profile, -np.inf).argmax(axis=1)
    e_first = np.where(hottest >= 0, profile[rows, np.maximum(hottest, 0)], np.nan)
    e_second = np.where(has_second, profile[rows, second], 0.0)
    low = np.minimum(hottest, second)[:, None]
    high = np.maximum(hottest, second)[:, None]
    between = (index[None, :] > low) & (index[None, :] < high) & has_second[:, None]
    e_min = np.where(between, profile, np.inf).min(axis=1)
    e_min = np.where(np.isfinite(e_min), e_min, 0.0)
    e_second = np.where(hottest >= 0, e_second, np.nan)
    return e_first, e_second, np.where(hottest >= 0, e_min, np.nan)


def _eratio(strips: _Strips) -> np.ndarray:
    e_first, e_second, _ = _maxima(strips)
    return _ratio(e_first - e_second, e_first + e_second)


def _delta_e(strips: _Strips) -> np.ndarray:
    _, e_second, e_min = _maxima(strips)
    return e_second - e_min


def strip_wstot(emb1: np.ndarray, emb2: np.ndarray) -> np.ndarray:
    """w_s,tot = √(ΣE_i (i − i_max)² / ΣE_i) over 20 strips, in strip units.

    The strips are those within `WSTOT_HALF_WIDTH` of the hottest EMB2 cell, as in
    athena; i_max is the hottest strip.
    """
    return _wstot(_strips(emb1, emb2))


def strip_ws3(emb1: np.ndarray, emb2: np.ndarray) -> np.ndarray:
    """w_s3 = √(ΣE_i (i − i_max)² / ΣE_i) over the hottest strip and its two neighbours."""
    return _ws3(_strips(emb1, emb2))


def strip_fside(emb1: np.ndarray, emb2: np.ndarray) -> np.ndarray:
    """F_side = (E(±3 strips) − E(±1 strip)) / E(±1 strip) around the hottest strip.

    athena computes it only when the hottest strip holds more than 60 MeV; here
    it is computed for every cluster with strips.
    """
    return _fside(_strips(emb1, emb2))


def strip_eratio(emb1: np.ndarray, emb2: np.ndarray) -> np.ndarray:
    """E_ratio = (E_1st max − E_2nd max) / (E_1st max + E_2nd max) of the strip maxima.

    1 when there is no second maximum, as in athena.
    """
    return _eratio(_strips(emb1, emb2))


def strip_delta_e(emb1: np.ndarray, emb2: np.ndarray) -> np.ndarray:
    """ΔE = E_2nd max − E_min between the two strip maxima, in the images' unit.

    Pixels are fractions of ``cluster_E``, so this is too; `shower_shapes`
    multiplies it by ``cluster_E`` to give GeV. 0 when there is no second
    maximum, as in athena.
    """
    return _delta_e(_strips(emb1, emb2))


# ---------------------------------------------------------------------------- all at once


def shower_shapes(clusters: Clusters) -> pd.DataFrame:
    """Every variable of `VARIABLES` for each cluster: one row per cluster.

    Needs the six image branches and ``cluster_E`` (for ΔE in GeV).

    Examples
    --------
    >>> from calotools.testing import random_clusters
    >>> table = shower_shapes(random_clusters(3, seed=1))
    >>> table.shape, list(table.columns[:3])
    ((3, 12), ['Reta', 'Rphi', 'weta2'])
    """
    needed = [*EM_LAYERS, *HADRONIC_LAYERS]
    missing = [name for name in needed if name not in clusters.images]
    if "cluster_E" not in clusters.scalars:
        missing.append("cluster_E")
    if missing:
        msg = (
            f"shower_shapes needs the branches {', '.join([*needed, 'cluster_E'])}; "
            f"these clusters lack {', '.join(missing)} (read them with read_clusters(..., "
            "branches=[...]))"
        )
        raise InvalidValueError(msg)
    cluster_e = clusters.scalars["cluster_E"].to_numpy(dtype=np.float64)
    parts = [
        _chunk_shapes(
            {name: clusters.images[name][begin : begin + _CHUNK] for name in needed},
            cluster_e[begin : begin + _CHUNK],
        )
        for begin in range(0, len(cluster_e), _CHUNK)
    ]
    table = (
        pd.concat(parts, ignore_index=True)
        if parts
        else _chunk_shapes({name: clusters.images[name][:0] for name in needed}, cluster_e[:0])
    )
    return table


def _chunk_shapes(images: dict[str, np.ndarray], cluster_e: np.ndarray) -> pd.DataFrame:
    emb1, emb2, emb3 = (images[name] for name in EM_LAYERS)
    hadronic = [images[name] for name in HADRONIC_LAYERS]
    strips = _strips(emb1, emb2)
    columns = {
        "Reta": reta(emb2),
        "Rphi": rphi(emb2),
        "weta2": weta2(emb2),
        "f1": em_fraction(emb1, emb1, emb2, emb3),
        "f3": em_fraction(emb3, emb1, emb2, emb3),
        "wstot": _wstot(strips),
        "ws3": _ws3(strips),
        "Eratio": _eratio(strips),
        "DeltaE": _delta_e(strips) * cluster_e,
        "Fside": _fside(strips),
        "Rhad1": hadronic_leakage(hadronic[:1], emb1, emb2, emb3),
        "Rhad": hadronic_leakage(hadronic, emb1, emb2, emb3),
    }
    return pd.DataFrame(columns)
