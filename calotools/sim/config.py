"""What defines a simulated sample: the particle gun and the detector assumptions.

`SimulationConfig` holds every number the fast simulation (`calotools.sim.simulation`)
needs: the particle, its energy and direction ranges, the electronic noise per
layer, and the physics assumptions of ``docs/physics.md``, each a named field
citing its section. It is saved as JSON beside every data file it makes.

The particle constants (PDG ids and masses) live here too, below the shower
formulas of `calotools.sim.showers`, which take only the few numbers they need.

Examples
--------
>>> config = SimulationConfig(particle="pi+", n_events=100, noise_scale=2.0)
>>> config.pdg_id
211
>>> SimulationConfig.from_dict(config.to_dict()) == config
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from types import MappingProxyType
from typing import Any

import numpy as np

from calotools import geometry
from calotools.errors import InvalidValueError
from calotools.sim.cells import Window

__all__ = [
    "CHARGED_PION_MASS_GEV",
    "DEFAULT_NOISE_MEV",
    "PARTICLES",
    "PARTICLE_MASS_GEV",
    "PI0_MASS_GEV",
    "DeadMaterial",
    "GFlashSampling",
    "HadronicShower",
    "InnerDetector",
    "SimulationConfig",
]

#: PDG 2022: m(π0) and m(π±) in GeV.
PI0_MASS_GEV = 0.1349768
CHARGED_PION_MASS_GEV = 0.13957039

#: Generated particles and their PDG ids.
PARTICLES: Mapping[str, int] = MappingProxyType({"pi0": 111, "pi+": 211, "pi-": -211, "gamma": 22})
#: Rest mass of each generated particle, GeV.
PARTICLE_MASS_GEV: Mapping[str, float] = MappingProxyType(
    {
        "pi0": PI0_MASS_GEV,
        "pi+": CHARGED_PION_MASS_GEV,
        "pi-": CHARGED_PION_MASS_GEV,
        "gamma": 0.0,
    }
)

#: Electronic noise σ per cell without pile-up, MeV (``docs/physics.md`` §2 [A]):
#: the one table of noise values in calotools.
DEFAULT_NOISE_MEV: Mapping[str, float] = MappingProxyType(
    {
        "PreSamplerB": 30.0,
        "EMB1": 15.0,
        "EMB2": 25.0,
        "EMB3": 20.0,
        "TileBar0": 20.0,
        "TileBar1": 20.0,
        "TileBar2": 20.0,
    }
)

# ---------------------------------------------------------------------------- parameter groups
# The shower functions of calotools.sim.showers take the group they need, not
# the whole configuration; SimulationConfig hands each group out.


@dataclass(frozen=True)
class DeadMaterial:
    """Dead material in front of the presampler and in the cryostat (§1, §3b.1)."""

    front_x0: float
    front_lambda: float
    cryostat_x0: float
    cryostat_lambda: float
    mip_mev_per_x0: float  #: MIP loss per X0 traversed


@dataclass(frozen=True)
class GFlashSampling:
    """The sampling-calorimeter corrections of GFlash for the EMB (§3a)."""

    fs: float
    ehat: float
    sigma_cap: float  #: cap on the spread of ln T and ln α
    spot_n1: float  #: N_spot = n1 / c · E^n2, the spots that sample the radial profile
    spot_n2: float
    sampling_term: float  #: c, the EM sampling term (GeV^½)


@dataclass(frozen=True)
class InnerDetector:
    """The tracker in front of the calorimeter, where photons convert (§3a.1)."""

    x0: float  #: material at η = 0, in X0 (part of the dead material in front)
    radius_mm: tuple[float, float]  #: where conversions happen
    solenoid_radius_mm: float
    field_t: float
    calorimeter_radius_mm: float  #: where the pair's φ offset is evaluated


@dataclass(frozen=True)
class HadronicShower:
    """How a charged pion starts its shower, splits it into EM and non-EM, and spreads it (§3b)."""

    interaction_length: float  #: λ_π in λ_I
    em_fraction_k: float
    em_fraction_e0_gev: float
    em_fraction_spread: float
    radius_lambda: float  #: R_h in units of λ_eff
    lambda_eff_cm: float
    radius_growth: float
    radius_growth_lambda: float
    radius_spread: float  #: per-shower log-normal σ of R_h
    depth_spread: float  #: per-shower log-normal σ of the non-EM depth scale
    subshowers: int  #: π0 sub-shower slots of the cascade
    clumps: int  #: deposits the non-EM part is made of
    clump_radius_lambda: float  #: lateral scale of one clump, in λ_eff
    clump_share_spread: float
    subshower_share_decay: float
    subshower_share_spread: float
    subshower_depth_lambda: float
    secondary_pt_gev: float
    charge_exchange_at_1gev: float
    charge_exchange_slope: float


# Physics fields that must be >= 0, and those that must be > 0.
_NON_NEGATIVE = (
    "noise_scale",
    "dead_material_front_x0",
    "dead_material_front_lambda",
    "cryostat_lambda",
    "cryostat_x0",
    "dead_material_mip_mev_per_x0",
    "em_fraction_spread",
    "em_sampling_term",
    "hadronic_sampling_term",
    "hadronic_radius_spread",
    "hadronic_depth_spread",
    "subshower_share_spread",
    "charge_exchange_slope",
    "hadronic_clump_share_spread",
    "inner_detector_x0",
    "solenoid_field_t",
)
_POSITIVE = (
    "pion_interaction_length",
    "e_over_mip_lar",
    "e_over_mip_tile",
    "em_fraction_e0_gev",
    "hadronic_radius_lambda",
    "hadronic_lambda_eff_cm",
    "hadronic_radius_growth_lambda",
    "gflash_sampling_fs",
    "gflash_sigma_cap",
    "gflash_spot_n1",
    "gflash_spot_n2",
    "subshower_depth_lambda",
    "secondary_pt_gev",
    "hadronic_clump_radius_lambda",
)


def _finite(*values: Any) -> bool:
    return all(isinstance(v, (int, float, np.number)) and math.isfinite(v) for v in values)


def _expect(condition: bool, name: str, expected: str, value: Any) -> None:
    if not condition:
        msg = f"SimulationConfig.{name} must be {expected}; got {value!r}"
        raise InvalidValueError(msg)


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that defines a simulated sample; saved as JSON next to it.

    Energies in GeV (total energy, log-uniform between ``e_min`` and ``e_max``),
    |η| uniform in [``eta_min``, ``eta_max``] with a random sign, φ uniform in
    [``phi_min``, ``phi_max``]. Fields below ``window`` are the physics
    assumptions of ``docs/physics.md``, each citing its section.
    """

    particle: str = "pi0"
    n_events: int = 10_000
    e_min: float = 0.2
    e_max: float = 2000.0
    eta_min: float = 0.0
    eta_max: float = 0.7
    phi_min: float = -math.pi
    phi_max: float = math.pi
    noise_mev: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_NOISE_MEV))
    noise_scale: float = 1.0  # §2: a "different noise cut" sample scales the noise
    seed: int = 0
    batch_size: int = 1024
    window: Window = field(default_factory=Window)

    # §1 [A]: tracker, solenoid and cryostat wall in front of the presampler.
    dead_material_front_x0: float = 2.0
    dead_material_front_lambda: float = 0.2
    # §3a.1: photon conversions in the inner detector. [S] ≈ 0.5 X0 at η = 0 of the
    # inner detector's material (ATLAS detector paper, JINST 3 S08003, material
    # at the exit of the ID), part of dead_material_front_x0, growing as cosh η
    # [D]; conversions between the innermost pixel layer (33 mm) and the outer
    # TRT (1080 mm) [S], material taken as even in radius [A]; the solenoid's
    # 2 T up to its 1230 mm radius [S, JINST 3 S08003].
    inner_detector_x0: float = 0.5
    conversion_radius_min_mm: float = 33.0
    conversion_radius_max_mm: float = 1080.0
    solenoid_field_t: float = 2.0
    solenoid_radius_mm: float = 1230.0
    # §1 [A]: cryostat between EMB3 and TileBar0; 0.25 λ puts 5–10 % of π±
    # energy there. X0: Al/steel has X0/λ ≈ 0.1–0.2, so ≈ 2 X0.
    cryostat_lambda: float = 0.25
    cryostat_x0: float = 2.0
    # §3b.1 [A]: MIP loss per X0 in dead material (Rossi: dE/dx·X0 ≈ Ec; Fe 22, Al 43 MeV).
    dead_material_mip_mev_per_x0: float = 25.0
    # §3b.1 [A]: pion interaction length λ_π in units of λ_I.
    pion_interaction_length: float = 1.2
    # §3b.1 [A]: e/mip, MIP signal at EM scale = deposit / (e/mip).
    e_over_mip_lar: float = 0.7
    e_over_mip_tile: float = 1.0
    # §3b.2 [R]: mean EM fraction 1 − (E/E0)^(k−1); [A] per-shower Gaussian spread.
    em_fraction_k: float = 0.82
    em_fraction_e0_gev: float = 1.0
    em_fraction_spread: float = 0.12
    # §3b.5 [A]: hadronic lateral scale R_h = 0.2 λ_eff, growing linearly to 1.5×
    # over the first 2 λ of the shower. λ_eff is one length for LAr and Tile: the
    # EMB's λ_I (§1) puts ≈ 96–98 % of π± energy inside 0.4 × 0.4 (§3b.5: ≈ 95 %);
    # Tile's own 20 cm would make Tile deposits nearly one cell wide.
    hadronic_radius_lambda: float = 0.2
    hadronic_lambda_eff_cm: float = 42.0
    hadronic_radius_growth: float = 1.5
    hadronic_radius_growth_lambda: float = 2.0
    # §3b.5 [A]: the non-EM part is deposited by discrete clumps (the hadrons and
    # nuclear fragments of the cascade), one on the axis and the others at
    # distances drawn from the R_h profile, each R_c = 0.04 λ_eff wide, with
    # log-normal shares. Per shower, the spread of the clumps (R_h) and the depth
    # scale 1/d of each clump's Bock term fluctuate by log-normal factors of mean 1.
    hadronic_clumps: int = 6
    hadronic_clump_radius_lambda: float = 0.04
    hadronic_clump_share_spread: float = 0.8
    hadronic_radius_spread: float = 0.3
    hadronic_depth_spread: float = 0.2
    # §3b.2 [A]: the EM part is made of this many π0 sub-showers; the j-th carries
    # on average subshower_share_decay^j of the first one's share, with a
    # log-normal spread; all but the first start after Exp(subshower_depth_lambda) λ.
    subshowers: int = 4
    subshower_share_decay: float = 0.5
    subshower_share_spread: float = 0.8
    subshower_depth_lambda: float = 0.3
    # §3b.2 [R]: mean transverse momentum of the secondaries of a hadronic
    # interaction, ≈ 0.35 GeV (PDG review "Cosmic rays"/fixed-target data).
    secondary_pt_gev: float = 0.35
    # §3b.2 [A]: probability of charge exchange (π± → leading π0) at the first
    # interaction, p(E) = p₁ (E / 1 GeV)^(−slope): the fall of the π−p → π0 n
    # cross-section relative to the inelastic one.
    charge_exchange_at_1gev: float = 0.1
    charge_exchange_slope: float = 1.1
    # §2 [S]: non-compensation of the non-EM part, Tile (Budagov et al.) and LAr
    # (hep-ex/9911033): visible non-EM = E_had / (e/h).
    e_over_h_lar: float = 1.74
    e_over_h_tile: float = 1.36
    # [A]: share of the non-EM energy carried away by neutrinos (escaped); the
    # rest of the non-visible part is invisible (nuclear binding, recoils).
    escaped_fraction: float = 0.02
    # §2 [R]: EM sampling term, σ² = a²·E_cell[GeV] per cell (10 %/√E).
    em_sampling_term: float = 0.10
    # §2 [A]: per-cell stochastic term of the visible non-EM energy, tuned so that
    # π± reach ≈ 50–60 %/√E ⊕ 3 % (with the EM-fraction spread and dead material).
    hadronic_sampling_term: float = 0.45
    # §3a [R]: GFlash sampling-calorimeter parameters of the EMB, and the cap on
    # the spread of ln T and ln α.
    gflash_sampling_fs: float = 3.3
    gflash_sampling_ehat: float = 0.69
    gflash_sigma_cap: float = 0.5
    # §3a [R]: GFlash's radial fluctuations. A shower samples its radial profile
    # with N_spot = n1 / c · E^n2 spots (E in GeV, c = em_sampling_term), so its
    # core share fluctuates binomially about the average.
    gflash_spot_n1: float = 10.3
    gflash_spot_n2: float = 0.959

    def __post_init__(self) -> None:
        known = isinstance(self.particle, str) and self.particle in PARTICLES
        _expect(known, "particle", f"one of {list(PARTICLES)}", self.particle)
        for name, lowest in (("n_events", 1), ("batch_size", 1), ("seed", 0)):
            value = getattr(self, name)
            is_int = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
            _expect(is_int and value >= lowest, name, f"an integer >= {lowest}", value)
            object.__setattr__(self, name, int(value))  # NumPy integers are not JSON
        mass = PARTICLE_MASS_GEV[self.particle]
        _expect(
            _finite(self.e_min) and self.e_min > mass,
            "e_min",
            f"a total energy in GeV above the {self.particle} mass ({mass} GeV)",
            self.e_min,
        )
        _expect(
            _finite(self.e_max) and self.e_max >= self.e_min,
            "e_max",
            f"a finite energy in GeV >= e_min ({self.e_min})",
            self.e_max,
        )
        reach = geometry.BARREL_ETA_MAX
        barrel = f"the barrel model ends at |η| = geometry.BARREL_ETA_MAX = {reach}"
        _expect(
            _finite(self.eta_min) and 0.0 <= self.eta_min <= reach,
            "eta_min",
            f"in [0, {reach}] ({barrel})",
            self.eta_min,
        )
        _expect(
            _finite(self.eta_max) and self.eta_min <= self.eta_max <= reach,
            "eta_max",
            f"in [eta_min, {reach}] ({barrel})",
            self.eta_max,
        )
        _expect(
            _finite(self.phi_min, self.phi_max)
            and 0.0 <= self.phi_max - self.phi_min <= 2.0 * math.pi + 1e-12,
            "phi_max",
            f"finite with 0 <= phi_max - phi_min <= 2π (phi_min = {self.phi_min})",
            self.phi_max,
        )
        names = [lay.name for lay in geometry.LAYERS]
        noise = dict(self.noise_mev)
        valid = sorted(noise) == sorted(names) and all(
            _finite(s) and s >= 0.0 for s in noise.values()
        )
        _expect(valid, "noise_mev", f"a finite σ >= 0 in MeV for each of {names}", noise)
        # A copy in layer order: the config owns its table (a dict, so that it pickles).
        object.__setattr__(self, "noise_mev", {name: float(noise[name]) for name in names})
        _expect(
            isinstance(self.window, Window), "window", "a calotools.sim.cells.Window", self.window
        )
        for name in _NON_NEGATIVE:
            value = getattr(self, name)
            _expect(_finite(value) and value >= 0.0, name, "finite and >= 0", value)
        for name in _POSITIVE:
            value = getattr(self, name)
            _expect(_finite(value) and value > 0.0, name, "finite and > 0", value)
        k = self.em_fraction_k
        _expect(_finite(k) and 0.0 < k < 1.0, "em_fraction_k", "in (0, 1)", k)
        slots = self.subshowers
        is_int = isinstance(slots, (int, np.integer)) and not isinstance(slots, bool)
        _expect(is_int and 1 <= slots <= 16, "subshowers", "an integer in [1, 16]", slots)
        object.__setattr__(self, "subshowers", int(slots))
        clumps = self.hadronic_clumps
        is_int = isinstance(clumps, (int, np.integer)) and not isinstance(clumps, bool)
        _expect(is_int and 1 <= clumps <= 32, "hadronic_clumps", "an integer in [1, 32]", clumps)
        object.__setattr__(self, "hadronic_clumps", int(clumps))
        decay = self.subshower_share_decay
        _expect(_finite(decay) and 0.0 < decay <= 1.0, "subshower_share_decay", "in (0, 1]", decay)
        _expect(
            _finite(self.inner_detector_x0)
            and self.inner_detector_x0 <= self.dead_material_front_x0,
            "inner_detector_x0",
            f"at most dead_material_front_x0 ({self.dead_material_front_x0}), which includes it",
            self.inner_detector_x0,
        )
        r_min, r_max = self.conversion_radius_min_mm, self.conversion_radius_max_mm
        _expect(
            _finite(r_min, r_max, self.solenoid_radius_mm)
            and 0.0 <= r_min < r_max <= self.solenoid_radius_mm < geometry.LAYERS[0].r_inner_mm,
            "conversion_radius_max_mm",
            "above conversion_radius_min_mm, inside the solenoid, which is inside the presampler",
            r_max,
        )
        cex = self.charge_exchange_at_1gev
        _expect(_finite(cex) and 0.0 <= cex <= 1.0, "charge_exchange_at_1gev", "in [0, 1]", cex)
        growth = self.hadronic_radius_growth
        _expect(_finite(growth) and growth >= 1.0, "hadronic_radius_growth", ">= 1", growth)
        ehat = self.gflash_sampling_ehat
        _expect(_finite(ehat) and 0.0 < ehat <= 1.0, "gflash_sampling_ehat", "in (0, 1]", ehat)
        for name in ("e_over_h_lar", "e_over_h_tile"):
            value = getattr(self, name)
            _expect(_finite(value) and value >= 1.0, name, ">= 1 (non-compensation)", value)
        most = 1.0 - 1.0 / max(self.e_over_h_lar, self.e_over_h_tile)
        _expect(
            _finite(self.escaped_fraction) and 0.0 <= self.escaped_fraction <= most,
            "escaped_fraction",
            f"in [0, 1 - 1/(e/h)] = [0, {most:.3f}]: it is part of the non-visible energy",
            self.escaped_fraction,
        )

    @property
    def dead_material(self) -> DeadMaterial:
        """The dead-material fields, for `calotools.sim.showers.build_stack`."""
        return DeadMaterial(
            front_x0=self.dead_material_front_x0,
            front_lambda=self.dead_material_front_lambda,
            cryostat_x0=self.cryostat_x0,
            cryostat_lambda=self.cryostat_lambda,
            mip_mev_per_x0=self.dead_material_mip_mev_per_x0,
        )

    @property
    def gflash(self) -> GFlashSampling:
        """The GFlash sampling fields, for the EM showers."""
        return GFlashSampling(
            fs=self.gflash_sampling_fs,
            ehat=self.gflash_sampling_ehat,
            sigma_cap=self.gflash_sigma_cap,
            spot_n1=self.gflash_spot_n1,
            spot_n2=self.gflash_spot_n2,
            sampling_term=self.em_sampling_term,
        )

    @property
    def inner_detector(self) -> InnerDetector:
        """The inner-detector fields, for the photon conversions."""
        emb2 = geometry.layer("EMB2")
        return InnerDetector(
            x0=self.inner_detector_x0,
            radius_mm=(self.conversion_radius_min_mm, self.conversion_radius_max_mm),
            solenoid_radius_mm=self.solenoid_radius_mm,
            field_t=self.solenoid_field_t,
            calorimeter_radius_mm=0.5 * (emb2.r_inner_mm + emb2.r_outer_mm),
        )

    @property
    def hadronic(self) -> HadronicShower:
        """The charged-pion shower fields."""
        return HadronicShower(
            interaction_length=self.pion_interaction_length,
            em_fraction_k=self.em_fraction_k,
            em_fraction_e0_gev=self.em_fraction_e0_gev,
            em_fraction_spread=self.em_fraction_spread,
            radius_lambda=self.hadronic_radius_lambda,
            lambda_eff_cm=self.hadronic_lambda_eff_cm,
            radius_growth=self.hadronic_radius_growth,
            radius_growth_lambda=self.hadronic_radius_growth_lambda,
            radius_spread=self.hadronic_radius_spread,
            depth_spread=self.hadronic_depth_spread,
            subshowers=self.subshowers,
            clumps=self.hadronic_clumps,
            clump_radius_lambda=self.hadronic_clump_radius_lambda,
            clump_share_spread=self.hadronic_clump_share_spread,
            subshower_share_decay=self.subshower_share_decay,
            subshower_share_spread=self.subshower_share_spread,
            subshower_depth_lambda=self.subshower_depth_lambda,
            secondary_pt_gev=self.secondary_pt_gev,
            charge_exchange_at_1gev=self.charge_exchange_at_1gev,
            charge_exchange_slope=self.charge_exchange_slope,
        )

    @property
    def pdg_id(self) -> int:
        """PDG id of the generated particle."""
        return PARTICLES[self.particle]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (the sidecar of every data file)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["noise_mev"] = dict(self.noise_mev)
        out["window"] = asdict(self.window)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SimulationConfig:
        """Inverse of `to_dict`; unknown keys are an error, missing ones take defaults."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            msg = f"unknown SimulationConfig fields {unknown}; known fields: {sorted(known)}"
            raise InvalidValueError(msg)
        values = dict(data)
        if isinstance(values.get("window"), Mapping):
            values["window"] = Window(**values["window"])
        return cls(**values)
