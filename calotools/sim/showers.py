"""Showers of the fast simulation and how they deposit energy in the barrel.

``docs/physics.md`` §3. The first half holds pure, vectorised
parameterisations: GFlash (Grindhammer–Peters) EM showers, the Bock hadronic
profile, the EM fraction of hadronic showers, the exact cell integral of the
radial profile and the π0 → γγ decay. The second half maps them onto the
calorimeter: the depth `Stack` of dead material and layers, the slice-by-slice
longitudinal deposits of photons and charged pions, and the energy of every
window cell. `calotools.sim.simulation` drives them batch by batch.

Energies are in GeV, depths in radiation lengths (X0) or nuclear interaction
lengths (λ) along the particle's path, lateral distances in units of the
radial scale R of a profile.

Examples
--------
A cell integral over the whole plane is one:

>>> import numpy as np
>>> corners = cell_integral_corners(np.array([[-1e6, 1e6]]), np.array([[-1e6, 1e6]]))
>>> round(float(np.diff(np.diff(corners[0], axis=0), axis=1)[0, 0]), 6)
1.0
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import sparse
from scipy.special import gammainc

from calotools import geometry
from calotools.sim.cells import Window
from calotools.sim.config import (
    CHARGED_PION_MASS_GEV,
    PI0_MASS_GEV,
    DeadMaterial,
    GFlashSampling,
    HadronicShower,
    InnerDetector,
)

__all__ = [
    "CONVERSION_LENGTH_X0",
    "BockParameters",
    "Conversions",
    "Deposit",
    "GFlashRadial",
    "HadronShowers",
    "Profiles",
    "Stack",
    "bock_parameters",
    "build_stack",
    "cascade_draws",
    "cell_energies",
    "cell_integral_corners",
    "charged_pion_showers",
    "convert_photons",
    "em_fraction_mean",
    "em_profiles",
    "gamma_slices",
    "gflash_longitudinal",
    "gflash_radial",
    "nonem_profiles",
    "photon_showers",
    "pi0_decay",
    "spot_count",
]

#: Mean photon conversion depth, 9/7 X0 (pair-production mean free path, PDG
#: passage-of-particles review; ``docs/physics.md`` §3a).
CONVERSION_LENGTH_X0 = 9.0 / 7.0

# GFlash's fits hold above ≈ 1 GeV; softer photons (π0 decays down to tens of
# MeV) take the parameters of this energy, so that T and α stay physical.
_GFLASH_FLOOR_GEV = 0.1
# Sampled α is kept above this so that β = (α − 1)/T does not vanish: a shower
# with α → 1 would spread its energy over hundreds of X0.
_GFLASH_MIN_ALPHA = 1.5
_GFLASH_MIN_T_X0 = 0.3
_GFLASH_MAX_TAU = 20.0
# Bock et al. fitted 10–140 GeV pions; below 1 GeV the shape parameter a would
# turn negative, so the parameters are frozen at 1 GeV.
_BOCK_FLOOR_GEV = 1.0
# Longitudinal sub-slices per layer, for the depth dependence of the lateral
# profiles (GFlash τ, growth of the hadronic radius): a numerical setting.
_SUBSLICES = {"EMB1": 2, "EMB2": 3, "TileBar1": 2}
# Truth shares of a cell below this fraction of its layer's energy are set to
# zero: float32 corner values are not more precise than that, and such cells
# (≪ 1 keV at 100 GeV) would otherwise carry rounding noise of either sign.
_TRUTH_FLOOR = 2e-7
# Lateral profiles carrying less than this (GeV, 1 keV: 10⁻⁴ of the smallest
# noise σ) are not integrated over the cells: a numerical setting.
_PROFILE_FLOOR_GEV = 1e-4


def gflash_longitudinal(
    energy: np.ndarray,
    normal_t: np.ndarray,
    normal_alpha: np.ndarray,
    *,
    critical_energy_gev: float,
    z_eff: float,
    sampling_fs: float,
    sampling_ehat: float,
    sigma_cap: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-shower depth of maximum T (X0) and shape α of the GFlash profile.

    ``docs/physics.md`` §3a: correlated log-normal T and α with the
    homogeneous means plus the sampling-calorimeter corrections. ``normal_t``
    and ``normal_alpha`` are independent standard normals, one per shower.

    Returns
    -------
    t_max, alpha
        The profile is dE/dt = E Γ(t; α, β) with rate β = (α − 1)/T.
    """
    ln_y = np.log(np.maximum(energy, _GFLASH_FLOOR_GEV) / critical_energy_gev)
    t_mean = ln_y - 0.812 - 0.55 / sampling_fs - 0.69 * (1.0 - sampling_ehat)
    alpha_mean = 0.81 + (0.458 + 2.26 / z_eff) * ln_y - 0.476 / sampling_fs
    # σ = 1/(c0 + c1 ln y), capped: the fit's denominator vanishes at low y.
    sigma_t = 1.0 / np.maximum(-2.5 + 1.25 * ln_y, 1.0 / sigma_cap)
    sigma_alpha = 1.0 / np.maximum(-0.82 + 0.79 * ln_y, 1.0 / sigma_cap)
    rho = np.clip(0.784 - 0.023 * ln_y, -1.0, 1.0)
    ln_t = np.log(np.maximum(t_mean, _GFLASH_MIN_T_X0)) + sigma_t * normal_t
    ln_alpha = np.log(np.maximum(alpha_mean, _GFLASH_MIN_ALPHA)) + sigma_alpha * (
        rho * normal_t + np.sqrt(1.0 - rho**2) * normal_alpha
    )
    t_max = np.maximum(np.exp(ln_t), _GFLASH_MIN_T_X0)
    alpha = np.maximum(np.exp(ln_alpha), _GFLASH_MIN_ALPHA)
    return t_max, alpha


class GFlashRadial(NamedTuple):
    """Two-component radial profile: core radius, tail radius (Molière radii), core weight."""

    r_core: np.ndarray
    r_tail: np.ndarray
    p_core: np.ndarray


def gflash_radial(
    tau: np.ndarray,
    energy: np.ndarray,
    *,
    z_eff: float,
    sampling_fs: float,
    sampling_ehat: float,
) -> GFlashRadial:
    """GFlash radial parameters at shower age τ = t/T (``docs/physics.md`` §3a).

    f(r) = p·2r Rc²/(r² + Rc²)² + (1 − p)·2r Rt²/(r² + Rt²)², r in Molière radii,
    with the homogeneous parameterisation and the sampling corrections.
    """
    ln_e = np.log(np.maximum(energy, _GFLASH_FLOOR_GEV))
    # Beyond τ ≈ 20 the fit means nothing and its tail radius overflows; photons
    # far off axis (soft π0 decays) reach such τ in slices that get no energy.
    tau = np.clip(tau, 0.0, _GFLASH_MAX_TAU)
    one_minus_ehat = 1.0 - sampling_ehat
    r_core = (
        0.0251
        + 0.00319 * ln_e
        + (0.1162 - 0.000381 * z_eff) * tau
        - 0.0203 * one_minus_ehat
        + 0.0397 / sampling_fs * np.exp(-tau)
    )
    r_tail = (0.659 - 0.00309 * z_eff) * (
        np.exp(-2.59 * (tau - 0.645)) + np.exp((0.3585 + 0.0412 * ln_e) * (tau - 0.645))
    ) - (0.14 * one_minus_ehat + 0.495 / sampling_fs * np.exp(-tau))
    p1 = 2.632 - 0.00094 * z_eff
    p2 = 0.401 + 0.00187 * z_eff
    p3 = 1.313 - 0.0686 * ln_e
    u = (p2 - tau) / p3
    p_core = p1 * np.exp(u - np.exp(u)) + one_minus_ehat * (
        0.348 - 0.642 / sampling_fs * np.exp(-((tau - 1.0) ** 2))
    )
    # Guards keep the profile a density where the fits are extrapolated.
    return GFlashRadial(
        np.maximum(r_core, 0.01), np.maximum(r_tail, 0.05), np.clip(p_core, 0.0, 1.0)
    )


class BockParameters(NamedTuple):
    """Bock profile dE/dx ∝ w Γ(x/X0; a, b) + (1 − w) Γ(x/λ; a, d)."""

    a: np.ndarray
    b: float
    d: np.ndarray


def bock_parameters(energy: np.ndarray) -> BockParameters:
    """Shape a and rates b (per X0), d (per λ) of Bock et al., NIM 186 (1981) 533.

    ``docs/physics.md`` §3b.3; the X0 term's weight is the shower's EM
    fraction and the λ term's the rest, instead of Bock's fixed w = 0.4634.
    """
    ln_e = np.log(np.maximum(energy, _BOCK_FLOOR_GEV))
    return BockParameters(a=0.6165 + 0.3183 * ln_e, b=0.2198, d=0.9099 - 0.0237 * ln_e)


def em_fraction_mean(energy: np.ndarray, *, k: float, e0_gev: float) -> np.ndarray:
    """Mean EM fraction of a hadronic shower, 1 − (E/E0)^(k−1), at least 0.

    PDG calorimetry review (Groom); ``docs/physics.md`` §3b.2.
    """
    return np.maximum(1.0 - (np.maximum(energy, 1e-9) / e0_gev) ** (k - 1.0), 0.0)


def gamma_slices(
    shape: np.ndarray, rate: np.ndarray, start: np.ndarray, bounds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energy shares of a gamma-distributed profile between consecutive bounds.

    The profile starts at depth ``start`` and follows Γ(t − start; shape, rate).

    Parameters
    ----------
    shape, rate, start
        (n,) per shower.
    bounds
        (n, k + 1) increasing depths of the slice boundaries, same unit as ``start``.

    Returns
    -------
    shares
        (n, k) energy fraction in each slice (differences of `scipy.special.gammainc`).
    mean_depth
        (n, k) energy-weighted mean depth in each slice, measured from ``start``
        (the slice middle where the slice holds no energy).
    beyond
        (n,) fraction past the last bound.
    """
    local = np.maximum(bounds - start[:, None], 0.0) * rate[:, None]
    cdf = gammainc(shape[:, None], local)
    shares = np.diff(cdf, axis=1)
    # ∫ t Γ(t; a, r) dt = (a/r) P(a + 1, r t): the mean depth within a slice.
    first_moment = np.diff(gammainc(shape[:, None] + 1.0, local), axis=1)
    middle = 0.5 * (local[:, 1:] + local[:, :-1])
    filled = shares > 1e-12
    ratio = np.divide(first_moment, shares, out=np.zeros_like(shares), where=filled)
    mean_scaled = np.where(filled, shape[:, None] * ratio, middle)
    # Rounding can put the ratio a hair outside the slice; keep it inside.
    mean_scaled = np.clip(mean_scaled, local[:, :-1], local[:, 1:])
    return shares, mean_scaled / rate[:, None], 1.0 - cdf[:, -1]


def cell_integral_corners(
    u: np.ndarray, v: np.ndarray, weight: np.ndarray | None = None
) -> np.ndarray:
    """Corner values of the integral of (1/π) R²/(r² + R²)² over [0, u] × [0, v].

    ``docs/physics.md`` §3a: with coordinates in units of R,
    G(u, v) = (1/2π)[(u/A) arctan(v/A) + (v/B) arctan(u/B)], A = √(u² + 1),
    B = √(v² + 1). G is odd in u and in v, so the share of a cell is the
    alternating sum of its four corners, ``np.diff(np.diff(G, axis=-2), axis=-1)``.

    Parameters
    ----------
    u, v
        (s, nu) and (s, nv) corner coordinates of s profiles, in units of their R.
    weight
        (s,) factor applied to each profile's G (its energy); 1 if omitted.

    Returns
    -------
    (s, nu, nv) array, ``weight · G`` in the dtype of ``u``. Put the longer axis
    last: NumPy's inner loops then run over it.
    """
    scale = np.full(u.shape[0], 1.0 / (2.0 * math.pi), dtype=u.dtype)
    if weight is not None:
        scale = scale * weight.astype(u.dtype)
    inv_a = 1.0 / np.sqrt(u * u + 1.0)
    inv_b = 1.0 / np.sqrt(v * v + 1.0)
    term_u = v[:, None, :] * inv_a[:, :, None]
    np.arctan(term_u, out=term_u)
    term_u *= (scale[:, None] * u * inv_a)[:, :, None]
    term_v = u[:, :, None] * inv_b[:, None, :]
    np.arctan(term_v, out=term_v)
    term_v *= (scale[:, None] * v * inv_b)[:, None, :]
    term_u += term_v
    return term_u


def pi0_decay(
    energy: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    cos_theta_star: np.ndarray,
    phi_star: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two-body decay π0 → γγ, isotropic in the π0 rest frame.

    E₁,₂ = (E/2)(1 ± β cos θ*) with the exact lab directions (``docs/physics.md``
    section 3b "π0 decay"). ``energy`` is the π0 total energy.

    Returns
    -------
    energy, eta, phi
        (n, 2) of the two photons; φ is unwrapped to within π of the π0's φ.
    """
    gamma = energy / PI0_MASS_GEV
    beta = np.sqrt(np.maximum(1.0 - 1.0 / gamma**2, 0.0))
    half_mass = 0.5 * PI0_MASS_GEV
    sin_theta_star = np.sqrt(np.maximum(1.0 - cos_theta_star**2, 0.0))
    sign = np.array([1.0, -1.0])
    # Photon momenta along and across the π0 flight direction (Lorentz boost).
    p_parallel = gamma[:, None] * half_mass * (sign * cos_theta_star[:, None] + beta[:, None])
    p_perp = sign * half_mass * sin_theta_star[:, None]
    energies = gamma[:, None] * half_mass * (1.0 + sign * beta[:, None] * cos_theta_star[:, None])

    theta = 2.0 * np.arctan(np.exp(-eta))
    direction = np.stack(
        [np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], axis=-1
    )
    # Orthonormal basis across the flight direction: e_theta and e_phi.
    e_theta = np.stack(
        [np.cos(theta) * np.cos(phi), np.cos(theta) * np.sin(phi), -np.sin(theta)], axis=-1
    )
    e_phi = np.stack([-np.sin(phi), np.cos(phi), np.zeros_like(phi)], axis=-1)
    across = np.cos(phi_star)[:, None] * e_theta + np.sin(phi_star)[:, None] * e_phi
    momentum = (
        p_parallel[..., None] * direction[:, None, :] + p_perp[..., None] * across[:, None, :]
    )
    p_t = np.maximum(np.hypot(momentum[..., 0], momentum[..., 1]), 1e-300)
    photon_eta = np.arcsinh(momentum[..., 2] / p_t)
    photon_phi = np.arctan2(momentum[..., 1], momentum[..., 0])
    # Unwrap around the π0 so that window coordinates need no wrapping.
    photon_phi = phi[:, None] + (np.pi - np.mod(np.pi - (photon_phi - phi[:, None]), 2 * np.pi))
    return energies, photon_eta, photon_phi


# ---------------------------------------------------------------------------
# The depth stack: dead material and layers along a projective path.


class Stack(NamedTuple):
    """Slices of the barrel in radial order, as depths at η = 0 (they grow as cosh η).

    A layer is cut into a few equal sub-slices (``_SUBSLICES``) so that lateral
    profiles can follow the shower's depth; the dead material in front and the
    cryostat are one slice each.
    """

    x0_bounds: np.ndarray  #: (F + 1,) cumulative X0 at the slice boundaries
    lambda_bounds: np.ndarray  #: (F + 1,) cumulative λ_I
    mip_bounds: np.ndarray  #: (F + 1,) cumulative MIP ionisation (GeV)
    r_inner: np.ndarray  #: (F,) mm
    r_outer: np.ndarray  #: (F,) mm
    layer_slices: dict[str, np.ndarray]  #: layer name → indices of its slices
    front: int  #: slice of the dead material in front of the presampler
    cryostat: int  #: slice of the cryostat between EMB3 and TileBar0


def build_stack(dead_material: DeadMaterial) -> Stack:
    """The `Stack` of ``docs/physics.md`` §1 with ``dead_material`` in front and in the cryostat."""
    dm_mip = dead_material.mip_mev_per_x0 * 1e-3
    emb3, tile0 = geometry.layer("EMB3"), geometry.layer("TileBar0")
    # (name, X0, λ, MIP loss in GeV per X0, r_in, r_out), in radial order.
    front = ("front", dead_material.front_x0, dead_material.front_lambda)
    cryostat = ("cryostat", dead_material.cryostat_x0, dead_material.cryostat_lambda)
    segments = [(*front, dm_mip, 0.0, geometry.LAYERS[0].r_inner_mm)]
    for lay in geometry.LAYERS:
        if lay is tile0:
            segments.append((*cryostat, dm_mip, emb3.r_outer_mm, tile0.r_inner_mm))
        # Rossi's definition of the critical energy: MIP loss per X0 ≈ Ec [D].
        mip = lay.medium.critical_energy_mev * 1e-3
        segments.append((lay.name, lay.depth_x0, lay.depth_lambda, mip, *_radii(lay)))
    x0, lam, mip_loss = [0.0], [0.0], [0.0]
    r_in: list[float] = []
    r_out: list[float] = []
    layer_slices: dict[str, np.ndarray] = {}
    for name, seg_x0, seg_lambda, seg_mip, seg_r_in, seg_r_out in segments:
        n_sub = _SUBSLICES.get(name, 1)
        layer_slices[name] = np.arange(len(r_in), len(r_in) + n_sub)
        for k in range(n_sub):
            x0.append(x0[-1] + seg_x0 / n_sub)
            lam.append(lam[-1] + seg_lambda / n_sub)
            mip_loss.append(mip_loss[-1] + seg_mip * seg_x0 / n_sub)
            r_in.append(seg_r_in + (seg_r_out - seg_r_in) * k / n_sub)
            r_out.append(seg_r_in + (seg_r_out - seg_r_in) * (k + 1) / n_sub)
    front_slice, cryostat_slice = (int(layer_slices.pop(n)[0]) for n in ("front", "cryostat"))
    return Stack(
        x0_bounds=np.array(x0),
        lambda_bounds=np.array(lam),
        mip_bounds=np.array(mip_loss),
        r_inner=np.array(r_in),
        r_outer=np.array(r_out),
        layer_slices=layer_slices,
        front=front_slice,
        cryostat=cryostat_slice,
    )


def _radii(lay: geometry.Layer) -> tuple[float, float]:
    return lay.r_inner_mm, lay.r_outer_mm


class Deposit(NamedTuple):
    """Showers of one kind (EM or non-EM), s per event, deposited slice by slice."""

    energy: np.ndarray  #: (N, s) shower energy (GeV)
    eta: np.ndarray  #: (N, s) shower axis
    phi: np.ndarray  #: (N, s)
    slice_energy: np.ndarray  #: (N, s, F) energy in each stack slice
    slice_depth: np.ndarray  #: (N, s, F) mean depth in the slice from the shower start
    slice_radius: np.ndarray  #: (N, s, F) radius (mm) at that mean depth
    beyond: np.ndarray  #: (N, s) energy leaving the back of the stack
    depth_scale: np.ndarray  #: (N, s) T (X0) that sets the GFlash age τ; 1 for non-EM
    slice_eta: np.ndarray  #: (N, s, F) axis at each slice (a sub-shower's moves off the π± axis)
    slice_phi: np.ndarray  #: (N, s, F)
    width_factor: np.ndarray  #: (N, s) per-shower factor on the non-EM lateral scale


def _deposit(
    stack: Stack,
    bounds0: np.ndarray,
    energy: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    gamma: tuple[np.ndarray, np.ndarray, np.ndarray],
    depth_scale: np.ndarray,
) -> Deposit:
    """Gamma profiles ``gamma`` = (shape, rate, start), all (N, s), along the stack."""
    n, s = energy.shape
    shape, rate, start = (a.reshape(-1) for a in gamma)
    # Projective cells: every depth along the path grows as cosh η (§1).
    bounds = np.cosh(eta.reshape(-1))[:, None] * bounds0
    shares, depth, beyond = gamma_slices(shape, rate, start, bounds)
    position = (start[:, None] + depth - bounds[:, :-1]) / (bounds[:, 1:] - bounds[:, :-1])
    radius = stack.r_inner + (stack.r_outer - stack.r_inner) * np.clip(position, 0.0, 1.0)
    f = len(stack.r_inner)
    return Deposit(
        energy,
        eta,
        phi,
        (energy.reshape(-1, 1) * shares).reshape(n, s, f),
        depth.reshape(n, s, f),
        radius.reshape(n, s, f),
        energy * beyond.reshape(n, s),
        depth_scale,
        np.broadcast_to(eta[..., None], (n, s, f)),
        np.broadcast_to(phi[..., None], (n, s, f)),
        np.ones((n, s)),
    )


def photon_showers(
    gflash: GFlashSampling,
    stack: Stack,
    energy: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    start_x0: np.ndarray,
    normals: np.ndarray,
) -> Deposit:
    """GFlash showers of (N, s) photons or electrons starting at ``start_x0`` (§3a).

    ``start_x0`` (N, s) are depths along the path in X0 from the front of the
    stack (`convert_photons`), ``normals`` (N, s, 2) the standard normals of
    ln T and ln α.
    """
    emb = geometry.EMB_MEDIUM
    t_max, alpha = gflash_longitudinal(
        energy,
        normals[..., 0],
        normals[..., 1],
        critical_energy_gev=emb.critical_energy_mev * 1e-3,
        z_eff=emb.z_eff,
        sampling_fs=gflash.fs,
        sampling_ehat=gflash.ehat,
        sigma_cap=gflash.sigma_cap,
    )
    gamma = (alpha, (alpha - 1.0) / t_max, start_x0)
    return _deposit(stack, stack.x0_bounds, energy, eta, phi, gamma, t_max)


# ---------------------------------------------------------------------------
# Photon conversions in the inner detector (§3a.1).


class Conversions(NamedTuple):
    """Photons after the inner detector: each still a photon, or an e+e− pair bent in φ.

    Slot 2i holds photon i or its electron, slot 2i + 1 its positron (no energy
    when photon i did not convert).
    """

    energy: np.ndarray  #: (N, 2s)
    eta: np.ndarray  #: (N, 2s)
    phi: np.ndarray  #: (N, 2s)
    start_x0: np.ndarray  #: (N, 2s) depth (X0 along the path) where each starts to shower
    converted: np.ndarray  #: (N, s) bool
    radius_mm: np.ndarray  #: (N, s) conversion radius; 0 if none
    curls: np.ndarray  #: (N, 2s) bool: an electron too soft to leave the solenoid


# Bethe–Heitler sharing of the photon energy between the pair at high energy,
# dσ/dx ∝ 1 − (4/3) x (1 − x) (PDG passage-of-particles review, complete
# screening), sampled through its inverse cumulative distribution.
_SHARE_GRID = np.linspace(0.0, 1.0, 513)
_SHARE_CDF = (_SHARE_GRID - 2.0 / 3.0 * _SHARE_GRID**2 + 4.0 / 9.0 * _SHARE_GRID**3) / (7.0 / 9.0)


def _bending(
    energy: np.ndarray, eta: np.ndarray, radius_mm: np.ndarray, detector: InnerDetector
) -> tuple[np.ndarray, np.ndarray]:
    """φ offset (rad) at the calorimeter of a track of ``energy`` made at ``radius_mm``, and
    whether it curls up inside the solenoid instead.

    In the transverse plane the track leaves radius r along the photon's line
    on a circle of radius ρ = p_T / (0.3 B) (m, GeV, T). Having turned by θ it
    is at radius R with R² = r² + 2ρ²(1 − cos θ) + 2rρ sin θ; it leaves the
    field at the solenoid's radius (if it gets there: p_T above about
    0.3 B R_s / 2) and flies straight on to the calorimeter.
    """
    r = radius_mm * 1e-3
    r_s = detector.solenoid_radius_mm * 1e-3
    r_cal = detector.calorimeter_radius_mm * 1e-3
    rho = np.maximum(energy, 1e-6) / np.cosh(eta) / (0.3 * detector.field_t)
    a, b = 2.0 * rho**2, 2.0 * r * rho
    c = np.hypot(a, b)
    cosine = (a - (r_s**2 - r**2)) / c
    curls = cosine < -1.0
    theta = np.arccos(np.clip(cosine, -1.0, 1.0)) - np.arctan2(b, a)
    x, y = r + rho * np.sin(theta), rho * (1.0 - np.cos(theta))
    dx, dy = np.cos(theta), np.sin(theta)
    along = x * dx + y * dy
    t = -along + np.sqrt(np.maximum(along**2 - (x**2 + y**2) + r_cal**2, 0.0))
    return np.arctan2(y + t * dy, x + t * dx), curls


def convert_photons(
    detector: InnerDetector,
    energy: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    uniforms: np.ndarray,
) -> Conversions:
    """Let (N, s) photons convert in the inner detector (``docs/physics.md`` §3a.1).

    A photon crossing X = ``detector.x0`` · cosh η radiation lengths of the
    inner detector converts there with probability 1 − exp(−7X/9), at a radius
    uniform in ``detector.radius_mm`` (the material taken as spread evenly in
    radius). The electron takes the Bethe–Heitler share x of the energy, the
    positron 1 − x; they bend apart in φ in the solenoid (`_bending`) and start
    to shower at once; one too soft to leave the solenoid curls up there
    (``curls``: its energy stays in the dead material in front). A photon that does not convert there converts after a
    further Exp(9/7 X0) in the material behind it, as before. ``uniforms``
    (N, s, 4): conversion, radius, share, depth.
    """
    n, s = energy.shape
    path_x0 = detector.x0 * np.cosh(eta)
    converted = uniforms[..., 0] < -np.expm1(-7.0 / 9.0 * path_x0)
    r_min, r_max = detector.radius_mm
    where = uniforms[..., 1]
    radius = np.where(converted, r_min + (r_max - r_min) * where, 0.0)
    share = np.interp(uniforms[..., 2], _SHARE_CDF, _SHARE_GRID)
    first = np.where(converted, share * energy, energy)
    second = np.where(converted, (1.0 - share) * energy, 0.0)
    bend_first, curl_first = _bending(first, eta, radius, detector)
    bend_second, curl_second = _bending(second, eta, radius, detector)
    phi_first = phi + np.where(converted, bend_first, 0.0)
    phi_second = phi - np.where(converted, bend_second, 0.0)
    # Depths count from the front of the stack, whose dead material includes the inner detector.
    pair_start = where * path_x0
    photon_start = path_x0 - np.log1p(-uniforms[..., 3]) * CONVERSION_LENGTH_X0
    start = np.where(converted, pair_start, photon_start)

    def interleave(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.stack([a, b], axis=-1).reshape(n, 2 * s)

    return Conversions(
        energy=interleave(first, second),
        eta=interleave(eta, eta),
        phi=interleave(phi_first, phi_second),
        start_x0=interleave(start, pair_start),
        converted=converted,
        radius_mm=radius,
        curls=interleave(converted & curl_first, converted & curl_second),
    )


class HadronShowers(NamedTuple):
    """A charged pion: MIP track, then the EM sub-showers and the non-EM part of its shower."""

    em: Deposit  #: one EM shower per π0 sub-shower slot, s = `HadronicShower.subshowers`
    nonem: Deposit
    mip_slices: np.ndarray  #: (N, F) ionisation of the track before the shower starts
    em_fraction: np.ndarray  #: (N,) f_em of each shower
    start_lambda: np.ndarray  #: (N,) shower start, λ_I along the path
    charge_exchange: np.ndarray  #: (N,) bool: a leading π0 took most of the energy


def cascade_draws(subshowers: int, clumps: int) -> tuple[int, int]:
    """(uniforms, normals) per event that `charged_pion_showers` takes.

    Beyond the first interaction's uniform and the EM fraction's normal: the
    charge exchange and its share; per sub-shower slot its depth, p_T,
    azimuth and conversion (uniforms) and its share, ln T and ln α (normals);
    per non-EM clump its distance and azimuth (uniforms) and its share and
    depth (normals); one normal for the spread of the clumps.
    """
    return 2 + 4 * subshowers + 2 * clumps, 1 + 3 * subshowers + 2 * clumps


# A sub-shower's angle to the pion's axis is p_T / E, at most this (rad): softer
# π0 leave the window whatever the angle, and tan θ stays finite.
_MAX_SUBSHOWER_ANGLE = 1.0
# §3b.2 [A]: share of the shower energy the leading π0 of a charge exchange carries, uniform.
_CHARGE_EXCHANGE_SHARE = (0.7, 0.95)
# Clump distances are drawn up to this quantile of the R_h profile (10 R_h):
# the rest of the profile's tail lies far outside the window.
_MAX_CLUMP_QUANTILE = 0.99


def _radius_at(stack: Stack, depth_x0: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Radius (mm) reached after ``depth_x0`` X0 along a projective path at ``eta``."""
    at_eta0 = depth_x0 / np.cosh(eta)
    last = len(stack.r_inner) - 1
    index = np.clip(np.searchsorted(stack.x0_bounds, at_eta0, side="right") - 1, 0, last)
    widths = np.diff(stack.x0_bounds)[index]
    fraction = np.clip((at_eta0 - stack.x0_bounds[index]) / widths, 0.0, 1.0)
    return stack.r_inner[index] + (stack.r_outer[index] - stack.r_inner[index]) * fraction


def _subshower_energies(
    hadronic: HadronicShower,
    shower: np.ndarray,
    f_em: np.ndarray,
    share_normals: np.ndarray,
    exchange_u: np.ndarray,
    exchange_share_u: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, k) energies of the π0 sub-showers, the f_em after charge exchange, and its flag.

    Shares fall by ``subshower_share_decay`` per slot with log-normal spread;
    a charge exchange gives the first slot a share of 0.7–0.95 of the shower
    and the others split what EM energy is left.
    """
    k = hadronic.subshowers
    raw = hadronic.subshower_share_decay ** np.arange(k) * np.exp(
        hadronic.subshower_share_spread * share_normals
    )
    p_exchange = np.clip(
        hadronic.charge_exchange_at_1gev
        * np.maximum(shower, 1e-3) ** (-hadronic.charge_exchange_slope),
        0.0,
        1.0,
    )
    exchange = exchange_u < p_exchange
    low, high = _CHARGE_EXCHANGE_SHARE
    leading = low + (high - low) * exchange_share_u
    f_em = np.where(exchange, leading + (1.0 - leading) * f_em, f_em)
    energies = (f_em * shower)[:, None] * raw / raw.sum(axis=1, keepdims=True)
    if k > 1:
        rest = raw[:, 1:] / raw[:, 1:].sum(axis=1, keepdims=True)
        others = ((f_em - leading) * shower)[:, None] * rest
        exchanged = np.concatenate([(leading * shower)[:, None], others], axis=1)
    else:
        exchanged = (f_em * shower)[:, None]
    return np.where(exchange[:, None], exchanged, energies), f_em, exchange


def _clumps(
    hadronic: HadronicShower,
    stack: Stack,
    energy: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    start_lambda: np.ndarray,
    uniforms: np.ndarray,
    normals: np.ndarray,
    spread_normal: np.ndarray,
) -> Deposit:
    """The non-EM part as m clumps: one on the axis, the others around it (§3b.5).

    Each clump follows Bock's λ term from the shower start with its own depth
    factor; clump j > 0 sits at a transverse distance d drawn from the R_h
    profile (its CDF is d² / (d² + R_h²)), growing with depth as R_h does.
    ``uniforms`` (N, m, 2) are the distance and azimuth, ``normals`` (N, m, 2)
    the share and depth, ``spread_normal`` (N,) the shower's R_h factor.
    """
    n, m = uniforms.shape[:2]
    raw = np.exp(hadronic.clump_share_spread * normals[..., 0])
    clump_energy = energy[:, None] * raw / raw.sum(axis=1, keepdims=True)
    sigma_d = hadronic.depth_spread
    depth_factor = np.exp(sigma_d * normals[..., 1] - 0.5 * sigma_d**2)
    bock = bock_parameters(energy)
    gamma = (
        np.repeat(bock.a[:, None], m, axis=1),
        bock.d[:, None] / depth_factor,
        np.repeat(start_lambda[:, None], m, axis=1),
    )
    axis = (np.repeat(eta[:, None], m, axis=1), np.repeat(phi[:, None], m, axis=1))
    ones = np.ones((n, m))
    deposit = _deposit(stack, stack.lambda_bounds, clump_energy, *axis, gamma, ones)
    sigma_r = hadronic.radius_spread
    r_h_mm = (
        hadronic.radius_lambda
        * hadronic.lambda_eff_cm
        * 10.0
        * np.exp(sigma_r * spread_normal - 0.5 * sigma_r**2)
    )
    u = np.minimum(uniforms[..., 0], _MAX_CLUMP_QUANTILE)
    distance = r_h_mm[:, None] * np.sqrt(u / (1.0 - u))
    distance[:, 0] = 0.0  # the core
    growth = 1.0 + (hadronic.radius_growth - 1.0) * np.minimum(
        deposit.slice_depth / hadronic.radius_growth_lambda, 1.0
    )
    offset = distance[..., None] * growth / deposit.slice_radius
    psi = 2.0 * math.pi * uniforms[..., 1]
    return deposit._replace(
        slice_eta=eta[:, None, None] + offset * np.cos(psi)[..., None],
        slice_phi=phi[:, None, None] + offset * np.sin(psi)[..., None],
        width_factor=ones * (hadronic.clump_radius_lambda / hadronic.radius_lambda),
    )


def charged_pion_showers(
    hadronic: HadronicShower,
    gflash: GFlashSampling,
    stack: Stack,
    energy: np.ndarray,
    eta: np.ndarray,
    phi: np.ndarray,
    interaction_u: np.ndarray,
    normal: np.ndarray,
    uniforms: np.ndarray,
    normals: np.ndarray,
    ionises: np.ndarray | None = None,
) -> HadronShowers:
    """π± of total energy ``energy`` (N,): ``docs/physics.md`` §3b.

    The track ionises (MIP) until it interacts, after Exp(λ_π), or has lost its
    kinetic energy; whatever it did not ionise, rest mass included, showers from
    there. The EM fraction f_em of that shower is carried by discrete π0
    sub-showers, each a GFlash shower of its own energy (as a photon's) that
    starts at a sampled depth along the cascade and leaves the pion's axis at
    the angle p_T / E of a secondary; a charge exchange at the first
    interaction makes one of them carry most of the energy. The non-EM rest
    follows Bock's λ term with per-shower fluctuations of depth and width.

    ``interaction_u`` (N,) are uniforms for the interaction depth, ``normal``
    (N,) standard normals for the spread of f_em, ``uniforms`` and ``normals``
    the (N, ·) draws of `cascade_draws`. ``ionises`` (N,) bool, all true when
    omitted: false for a neutral hadron (n, K0L), which leaves no track before
    its first interaction and so cannot stop either; its shower gets all of
    ``energy``.
    """
    k = hadronic.subshowers
    n = len(energy)
    path = np.cosh(eta)
    interaction = -np.log1p(-interaction_u) * hadronic.interaction_length
    x_interaction = path * np.interp(interaction / path, stack.lambda_bounds, stack.x0_bounds)
    kinetic = energy - CHARGED_PION_MASS_GEV
    x_range = path * np.interp(kinetic / path, stack.mip_bounds, stack.x0_bounds)
    stopped = (kinetic < path * stack.mip_bounds[-1]) & (x_range < x_interaction)
    if ionises is not None:
        stopped &= ionises
    x_start = np.where(stopped, x_range, x_interaction)
    l_range = path * np.interp(x_range / path, stack.x0_bounds, stack.lambda_bounds)
    l_start = np.where(stopped, l_range, interaction)
    bounds = path[:, None] * stack.x0_bounds
    traversed = np.clip(x_start[:, None], bounds[:, :-1], bounds[:, 1:]) - bounds[:, :-1]
    mip_slices = traversed * (np.diff(stack.mip_bounds) / np.diff(stack.x0_bounds))
    if ionises is not None:
        mip_slices *= ionises[:, None]
    shower = np.maximum(energy - mip_slices.sum(axis=1), 0.0)
    mean_em = em_fraction_mean(shower, k=hadronic.em_fraction_k, e0_gev=hadronic.em_fraction_e0_gev)
    f_em = np.clip(mean_em + hadronic.em_fraction_spread * normal, 0.0, 1.0)

    m = hadronic.clumps
    per_slot_u = uniforms[:, 2 : 2 + 4 * k].reshape(n, k, 4)  # depth, p_T, azimuth, conversion
    per_slot_z = normals[:, 1 : 1 + 3 * k].reshape(n, k, 3)  # share, ln T, ln α
    sub_energy, f_em, exchange = _subshower_energies(
        hadronic, shower, f_em, per_slot_z[..., 0], uniforms[:, 0], uniforms[:, 1]
    )

    # Where each π0 is made: the first at the interaction, the others deeper in the cascade.
    later = -np.log1p(-per_slot_u[..., 0]) * hadronic.subshower_depth_lambda
    later[:, 0] = 0.0
    made_lambda = l_start[:, None] + later
    made_x0 = path[:, None] * np.interp(
        made_lambda / path[:, None], stack.lambda_bounds, stack.x0_bounds
    )
    # Its photons convert after Exp(9/7 X0), as a photon's do (§3a); the γγ opening
    # angle, ≈ 2m/E, separates them by less than a Molière radius so near the vertex.
    start = made_x0 - np.log1p(-per_slot_u[..., 3]) * CONVERSION_LENGTH_X0
    axis = (np.repeat(eta[:, None], k, axis=1), np.repeat(phi[:, None], k, axis=1))
    em = photon_showers(gflash, stack, sub_energy, *axis, start, per_slot_z[..., 1:3])
    # Each sub-shower leaves the vertex at θ = p_T / E: its axis is off the pion's
    # by (r − r_vertex) tan θ at radius r, along the azimuth ψ.
    p_t = -np.log1p(-per_slot_u[..., 1]) * hadronic.secondary_pt_gev
    theta = np.minimum(p_t / np.maximum(sub_energy, 1e-6), _MAX_SUBSHOWER_ANGLE)
    psi = 2.0 * math.pi * per_slot_u[..., 2]
    vertex = _radius_at(stack, made_x0, axis[0])
    reach = np.maximum(em.slice_radius - vertex[..., None], 0.0) * np.tan(theta)[..., None]
    offset = reach / em.slice_radius
    em = em._replace(
        slice_eta=eta[:, None, None] + offset * np.cos(psi)[..., None],
        slice_phi=phi[:, None, None] + offset * np.sin(psi)[..., None],
    )

    nonem = _clumps(
        hadronic,
        stack,
        (1.0 - f_em) * shower,
        eta,
        phi,
        l_start,
        uniforms[:, 2 + 4 * k :].reshape(n, m, 2),
        normals[:, 1 + 3 * k :].reshape(n, m, 2),
        normals[:, 0],
    )
    return HadronShowers(em, nonem, mip_slices, f_em, l_start, exchange)


# ---------------------------------------------------------------------------
# Lateral spread: exact cell integrals on each layer's window grid.


class Profiles(NamedTuple):
    """m lateral profiles (1/π) R²/(r² + R²)² per event in one layer, each (N, m)."""

    eta: np.ndarray  #: centre
    phi: np.ndarray  #: centre, unwrapped like the window's φ_low
    scale: np.ndarray  #: converts η or φ offsets (rad) to units of the profile's R
    weight: np.ndarray  #: energy (GeV)


def _corner_coordinates(
    low: np.ndarray, centre: np.ndarray, scale: np.ndarray, n_cells: int, width: float
) -> np.ndarray:
    """(k, n_cells + 1) cell-edge offsets from k profile centres, in units of their R."""
    offsets = (low - centre)[:, None] + np.arange(n_cells + 1) * width
    return (scale[:, None] * offsets).astype(np.float32)


def cell_energies(
    layer: geometry.Layer,
    window: Window,
    eta_low: np.ndarray,
    phi_low: np.ndarray,
    profiles: Profiles,
    out: np.ndarray,
) -> np.ndarray:
    """Energies (N, n_eta, n_phi) of the window cells of ``layer``, written into ``out``.

    Exact cell integrals of each profile (`cell_integral_corners` on the window's
    corner grid, float32), summed over profiles in a fixed order per event so
    that the result does not depend on how events are grouped, then turned into
    cells by alternating corner sums in float64: the cells' sum telescopes to
    the window's integral. Profiles of less than ``_PROFILE_FLOOR_GEV`` are not
    integrated (a π± has dozens, most of them empty in most layers); their
    energy counts as outside the window. Cells below ``_TRUTH_FLOOR`` of the
    layer's energy are float32 rounding noise and set to zero.
    """
    n_eta, n_phi = window.shape(layer.name)
    n = len(eta_low)
    event, which = np.nonzero(profiles.weight > _PROFILE_FLOOR_GEV)  # by event, then profile
    if len(event) == 0:
        out[:] = 0.0
        return out
    centre_eta, centre_phi = profiles.eta[event, which], profiles.phi[event, which]
    scale, weight = profiles.scale[event, which], profiles.weight[event, which]
    u = _corner_coordinates(eta_low[event], centre_eta, scale, n_eta, layer.deta)
    v = _corner_coordinates(phi_low[event], centre_phi, scale, n_phi, layer.dphi)
    # The longer axis goes last, where NumPy's inner loops run (G is symmetric).
    swap = n_eta > n_phi
    g = cell_integral_corners(v, u, weight) if swap else cell_integral_corners(u, v, weight)
    # Each event's profiles are consecutive: sum them in order, in float64.
    m = profiles.weight.shape[1]
    if len(event) == n * m:  # none left out (photons, π0): a plain loop is cheaper
        g = g.reshape(n, m, *g.shape[1:])
        corners = g[:, 0].astype(np.float64)
        for j in range(1, m):
            corners += g[:, j]
    else:
        # A 0/1 matrix of events × kept profiles: scipy sums each row's entries
        # in column order, in float64, several times faster than np.add.reduceat.
        # Given as CSR arrays directly (``event`` is sorted): skips scipy's COO conversion.
        k = len(event)
        indptr = np.searchsorted(event, np.arange(n + 1))
        rows = sparse.csr_matrix((np.ones(k), np.arange(k), indptr), shape=(n, k))
        corners = (rows @ g.reshape(k, -1)).reshape(n, *g.shape[1:])
    along_first = corners[:, 1:] - corners[:, :-1]
    cells = out.transpose(0, 2, 1) if swap else out
    np.subtract(along_first[:, :, 1:], along_first[:, :, :-1], out=cells)
    floor = _TRUTH_FLOOR * profiles.weight.sum(axis=1)
    out[np.abs(out) < floor[:, None, None]] = 0.0
    return out


def spot_count(gflash: GFlashSampling, energy: np.ndarray) -> np.ndarray:
    """GFlash's number of spots of a shower of ``energy`` (GeV) in a sampling calorimeter.

    N_spot = n1 / c · E^n2 (``docs/physics.md`` §3a): the energy is deposited
    in that many spots, each at a radius drawn from the radial profile, which
    is how GFlash makes the radial profile fluctuate from shower to shower.
    Infinite (no fluctuation) for a sampling term c = 0.

    Examples
    --------
    >>> from calotools.sim.config import SimulationConfig
    >>> spot_count(SimulationConfig().gflash, np.array([1.0, 10.0, 100.0])).round()
    array([ 103.,  937., 8528.])
    """
    energy = np.maximum(energy, 0.0)
    if gflash.sampling_term <= 0.0:
        return np.full_like(energy, np.inf, dtype=np.float64)
    return gflash.spot_n1 / gflash.sampling_term * energy**gflash.spot_n2


def em_profiles(
    gflash: GFlashSampling,
    stack: Stack,
    deposit: Deposit,
    layer: geometry.Layer,
    spot_normal: np.ndarray | None = None,
) -> Profiles:
    """GFlash core and tail profiles of the EM deposit's slices in ``layer`` (§3a).

    R in Molière radii of the layer's medium, at the shower age τ of each
    slice's energy-weighted mean depth. ``spot_normal`` (N, s), standard
    normals, makes each shower's core share in the layer fluctuate as the
    share of its spots there (`spot_count`) that fall in the core would:
    binomially, with σ² = p (1 − p) / n for the n spots of the layer's energy.
    None gives the average profile.
    """
    idx = stack.layer_slices[layer.name]
    medium = layer.medium
    energy = deposit.slice_energy[:, :, idx]
    radial = gflash_radial(
        deposit.slice_depth[:, :, idx] / deposit.depth_scale[:, :, None],
        deposit.energy[:, :, None],
        z_eff=medium.z_eff,
        sampling_fs=gflash.fs,
        sampling_ehat=gflash.ehat,
    )
    p_core = radial.p_core
    if spot_normal is not None and gflash.sampling_term > 0.0:  # else infinitely many spots
        # The layer's spots, as its share of the shower's energy; at least one.
        share = np.divide(
            energy.sum(axis=2),
            deposit.energy,
            out=np.zeros_like(deposit.energy),
            where=deposit.energy > 0,
        )
        spots = np.maximum(spot_count(gflash, deposit.energy) * share, 1.0)
        sigma = np.sqrt(p_core * (1.0 - p_core) / spots[..., None])
        p_core = np.clip(p_core + sigma * spot_normal[..., None], 0.0, 1.0)
    # Projective cells: at radius r, offsets Δη and Δφ are r·Δη and r·Δφ across the axis.
    per_moliere = deposit.slice_radius[:, :, idx] / (10.0 * medium.moliere_cm)
    scale = np.stack([per_moliere / radial.r_core, per_moliere / radial.r_tail], axis=-1)
    weight = np.stack([energy * p_core, energy * (1.0 - p_core)], axis=-1)
    return _profiles(deposit, idx, scale, weight)


def nonem_profiles(
    hadronic: HadronicShower, stack: Stack, deposit: Deposit, layer: geometry.Layer
) -> Profiles:
    """One profile per non-EM clump in ``layer``: R growing with depth (§3b.5).

    The layer's sub-slices are merged into one profile per clump, at their
    energy-weighted scale and centre: a clump's width and place change little
    within a layer, and it halves the profiles to integrate.
    """
    idx = stack.layer_slices[layer.name]
    depth = deposit.slice_depth[:, :, idx] / hadronic.radius_growth_lambda
    growth = 1.0 + (hadronic.radius_growth - 1.0) * np.minimum(depth, 1.0)
    r_h_mm = hadronic.radius_lambda * hadronic.lambda_eff_cm * 10.0 * growth
    r_h_mm = r_h_mm * deposit.width_factor[:, :, None]
    scale = deposit.slice_radius[:, :, idx] / r_h_mm
    energy = deposit.slice_energy[:, :, idx]
    total = energy.sum(axis=2)
    share = np.divide(
        energy,
        total[..., None],
        out=np.full_like(energy, 1.0 / len(idx)),
        where=total[..., None] > 0,
    )
    n = len(total)

    def merged(values: np.ndarray) -> np.ndarray:
        return (values * share).sum(axis=2).reshape(n, -1)

    return Profiles(
        eta=merged(deposit.slice_eta[:, :, idx]),
        phi=merged(deposit.slice_phi[:, :, idx]),
        scale=merged(scale),
        weight=total.reshape(n, -1),
    )


def _profiles(deposit: Deposit, idx: np.ndarray, scale: np.ndarray, weight: np.ndarray) -> Profiles:
    """Flatten (N, s, slices, ...) profile parameters of the slices ``idx`` to (N, m)."""
    n = scale.shape[0]
    # c[..., None, …]: one new axis per dimension of scale beyond (N, s, slices)
    index = (..., *(None,) * (scale.ndim - 3))
    eta, phi = (
        np.broadcast_to(c[:, :, idx][index], scale.shape).reshape(n, -1)
        for c in (deposit.slice_eta, deposit.slice_phi)
    )
    return Profiles(eta=eta, phi=phi, scale=scale.reshape(n, -1), weight=weight.reshape(n, -1))
