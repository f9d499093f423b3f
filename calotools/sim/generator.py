"""Collision events from Pythia 8: hard-QCD dijets in ATLAS's JZ slices, and minimum bias.

The detector simulation of whole events starts here. `generate` runs Pythia 8
(the official ``pythia8mc`` bindings, extra ``[events]``) and returns the
stable particles of each event as an awkward array, with the event's truth:
the hard process' p̂T, the leading truth jet's pT (anti-kt R = 0.4 with
FastJet, on the stable particles less neutrinos and muons) and an event number.

What ATLAS does and calotools copies (``docs/events.md``):

- **JZ slices** (`JZ_SLICES`): dijet samples are made in slices of the leading
  truth jet's pT; JZ2W, the jet sample of the LLNL report, is 60–160 GeV.
  Pythia generates p̂T in a window around the slice (`PT_HAT_WINDOW`) and
  events whose leading truth jet falls outside the slice are dropped.
- **Stable particles**: those with cτ above 10 mm (`TAU0_MAX_MM`), so K0S and
  Λ reach the calorimeter as themselves and π0 decay to photons.
- **Biased p̂T sampling** (``pt_hat_bias_power``): as in ATLAS's Run-3
  "JZ…WithSW" slices, Pythia samples p̂T with a bias (p̂T)^power
  (``PhaseSpace:bias2Selection``) and gives each event the compensating weight,
  so more candidates land in the slice. Every analysis of a slice must fill
  its histograms with ``weight``. Within each chunk the weights of all
  candidates, kept or dropped, average to 1, so the sum of the kept events'
  weights over the number of candidates estimates the slice's acceptance of
  an unbiased run.
- **Minimum bias**: Pythia's SoftQCD inelastic processes, the events ATLAS
  overlays as pile-up; never biased (Pythia's bias works on hard 2 → 2 only),
  and every weight is 1.

**Random numbers**: events are generated in chunks of `CHUNK` candidates,
each by its own Pythia seeded from (seed, sample, chunk), so a run depends
only on its seed and sample, and the first k events of an n-event run are a
k-event run. Pythia's banner and statistics stay silent unless ``verbose``.

Examples
--------
>>> events = generate(GeneratorConfig(sample="minbias", n_events=3, seed=1))
>>> len(events), events.fields
(3, ['event_number', 'pt_hat', 'leading_jet_pt', 'weight', 'particles'])
>>> events.weight.tolist()
[1.0, 1.0, 1.0]
>>> events.particles.fields
['pdg', 'charge', 'px', 'py', 'pz', 'e']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from types import MappingProxyType, ModuleType
from typing import Any

import awkward as ak
import numpy as np

from calotools import extras
from calotools.errors import InvalidValueError

__all__ = [
    "CHUNK",
    "JET_RADIUS",
    "JZ_SLICES",
    "PT_HAT_FLOOR_GEV",
    "PT_HAT_WINDOW",
    "SAMPLES",
    "SQRT_S_GEV",
    "TAU0_MAX_MM",
    "TUNES",
    "GeneratorConfig",
    "generate",
    "generate_chunk",
    "quiet_fastjet",
    "truth_jets",
]

#: Centre-of-mass energy of LHC Run 3, GeV.
SQRT_S_GEV = 13_600.0
#: ATLAS dijet slices by the leading truth jet's pT, GeV (``docs/events.md``):
#: JZ2W = 60–160 GeV is the LLNL report's jet sample (issue 16).
JZ_SLICES: Mapping[str, tuple[float, float]] = MappingProxyType(
    {
        "jz0w": (0.0, 20.0),
        "jz1w": (20.0, 60.0),
        "jz2w": (60.0, 160.0),
        "jz3w": (160.0, 400.0),
        "jz4w": (400.0, 800.0),
    }
)
#: The samples `generate` makes: the JZ slices and minimum bias.
SAMPLES: tuple[str, ...] = (*JZ_SLICES, "minbias")
#: p̂T window Pythia generates for a slice, as factors of the slice's edges: a
#: jet loses pT out of its cone and gains it from radiation and the underlying
#: event, so the slice's jets come from a wider p̂T range than the slice itself.
#: Measured for JZ2W (``docs/events.md``): of the events generated from
#: 0.4 × 60 GeV, 0.4 % have p̂T below 0.5 × 60 GeV (6.9 % below 0.7 × 60), and none
#: of 1,000 had p̂T above 167 GeV.
PT_HAT_WINDOW: tuple[float, float] = (0.5, 1.25)
#: The lowest p̂T Pythia is asked for (GeV): hard QCD diverges at p̂T → 0, and
#: JZ0W's lower edge is 0.
PT_HAT_FLOOR_GEV = 8.0
#: Particles with a proper lifetime cτ above this are stable (mm): the ATLAS
#: generator-level definition, so K0S and Λ reach the detector.
TAU0_MAX_MM = 10.0
#: Pythia tunes (``Tune:pp``): 21 is ATLAS' A14 with NNPDF2.3 LO (ATL-PHYS-PUB-2014-021),
#: ATLAS' hard-scatter tune; 14 is Monash 2013, Pythia's default, for minimum
#: bias (ATLAS' A3 tune is not one of Pythia's built-in ones).
TUNES: Mapping[str, int] = MappingProxyType({"hard": 21, "minbias": 14})
#: Candidate events per Pythia instance; part of the output's definition.
CHUNK = 256
#: Anti-kt radius of the truth jets.
JET_RADIUS = 0.4
# The default bias power of a JZ slice (``docs/events.md``, measured on 1,024
# JZ2W candidates): power 3 keeps 4.2 times the unbiased share of candidates
# (38 % against 9.1 %) with an effective sample size of 41 % of the kept
# events, within 5 % of the best effective events per candidate (at 2.5); it is
# the best in JZ3W, 23 % below the best (at 2) in JZ1W; power 4 would keep 53 %
# of JZ2W at an ESS of 21 %.
_JZ_BIAS_POWER = 3.0
# Pythia's range of PhaseSpace:bias2SelectionPow.
_MAX_BIAS_POWER = 10.0
# Pythia's Random:seed must lie in [0, 900 000 000]; 0 means "from the clock".
_PYTHIA_SEEDS = 900_000_000
# Neutrinos and muons leave (next to) nothing in a calorimeter: not in truth jets.
_INVISIBLE_TO_JETS = (12, 13, 14, 16, 18)


@dataclass(frozen=True)
class GeneratorConfig:
    """What `generate` makes.

    Parameters
    ----------
    sample
        A JZ slice (``"jz0w"`` … ``"jz4w"``) or ``"minbias"``.
    n_events
        Events to return (for a slice: events whose leading truth jet is in it).
    seed
        Seeds every Pythia instance (`CHUNK`).
    sqrt_s
        Centre-of-mass energy, GeV.
    pt_hat_bias_power
        Pythia samples a slice's p̂T with the bias (p̂T / p̂T_min)^power and weights
        each event by the inverse (``PhaseSpace:bias2SelectionPow``); 0 is
        unbiased. None takes the sample's default: 3 for a JZ slice (the
        measurement is in ``docs/events.md``), 0 for minimum bias, which
        cannot be biased.
    verbose
        Let Pythia print its banner, settings and statistics.
    """

    sample: str = "jz2w"
    n_events: int = 100
    seed: int = 0
    sqrt_s: float = SQRT_S_GEV
    pt_hat_bias_power: float | None = None
    verbose: bool = False

    def __post_init__(self) -> None:
        if self.sample not in SAMPLES:
            msg = f"sample must be one of {', '.join(SAMPLES)}; got {self.sample!r}"
            raise InvalidValueError(msg)
        if self.n_events < 1:
            msg = f"n_events must be at least 1, got {self.n_events}"
            raise InvalidValueError(msg)
        if not 0 <= self.seed < 2**63:
            msg = f"seed must be a non-negative integer below 2**63, got {self.seed}"
            raise InvalidValueError(msg)
        if not (math.isfinite(self.sqrt_s) and self.sqrt_s > 0):
            msg = f"sqrt_s must be a positive number of GeV, got {self.sqrt_s}"
            raise InvalidValueError(msg)
        power = self.pt_hat_bias_power
        if power is None:
            power = 0.0 if self.pt_slice is None else _JZ_BIAS_POWER
        power = float(power)
        # Frozen: the resolved power is what to_dict saves and == compares.
        object.__setattr__(self, "pt_hat_bias_power", power)
        if not (math.isfinite(power) and 0 <= power <= _MAX_BIAS_POWER):
            msg = f"pt_hat_bias_power must lie in [0, {_MAX_BIAS_POWER:g}] (Pythia's range), got {power}"
            raise InvalidValueError(msg)
        if self.pt_slice is None and power != 0:
            msg = (
                f"pt_hat_bias_power must be 0 for minbias (Pythia biases hard 2 -> 2 "
                f"processes only), got {power}"
            )
            raise InvalidValueError(msg)

    @property
    def pt_slice(self) -> tuple[float, float] | None:
        """The slice's leading-jet pT range (GeV); None for minimum bias."""
        return JZ_SLICES.get(self.sample)

    def pythia_settings(self, chunk: int) -> list[str]:
        """Pythia's settings for candidate chunk ``chunk``."""
        settings = [
            f"Beams:eCM = {self.sqrt_s:g}",
            "ParticleDecays:limitTau0 = on",
            f"ParticleDecays:tau0Max = {TAU0_MAX_MM:g}",
            "Random:setSeed = on",
            f"Random:seed = {self.pythia_seed(chunk)}",
            "Next:numberCount = 0",
        ]
        if self.pt_slice is None:
            settings += [f"Tune:pp = {TUNES['minbias']}", "SoftQCD:inelastic = on"]
        else:
            low, high = self.pt_slice
            pt_hat_min = max(low * PT_HAT_WINDOW[0], PT_HAT_FLOOR_GEV)
            settings += [
                f"Tune:pp = {TUNES['hard']}",
                "HardQCD:all = on",
                f"PhaseSpace:pTHatMin = {pt_hat_min:g}",
                f"PhaseSpace:pTHatMax = {high * PT_HAT_WINDOW[1]:g}",
            ]
            if self.pt_hat_bias_power:
                # The reference scale only sets the weights' size (Pythia's
                # PhaseSpaceCuts manual); at p̂T_min Pythia's weights stay <= 1.
                settings += [
                    "PhaseSpace:bias2Selection = on",
                    f"PhaseSpace:bias2SelectionPow = {self.pt_hat_bias_power:g}",
                    f"PhaseSpace:bias2SelectionRef = {pt_hat_min:g}",
                ]
        if not self.verbose:
            settings.append("Print:quiet = on")
        return settings

    def pythia_seed(self, chunk: int) -> int:
        """Pythia's ``Random:seed`` of chunk ``chunk``: from (seed, sample, chunk)."""
        key = (SAMPLES.index(self.sample), chunk)
        state = np.random.SeedSequence(self.seed, spawn_key=key).generate_state(1, np.uint64)[0]
        return int(state % _PYTHIA_SEEDS) + 1

    def to_dict(self) -> dict[str, Any]:
        """Plain fields, for JSON."""
        return asdict(self)


def quiet_fastjet(fastjet: ModuleType) -> None:
    """Keep FastJet's banner (printed by its first clustering) off the terminal.

    The banner asks users to cite FastJet; ``docs/events.md`` does. The switch
    lives in the SWIG layer of scikit-hep's bindings; without it, the banner shows.
    """
    swig = getattr(fastjet, "_swig", None)
    sequence = getattr(swig, "ClusterSequence", None)
    if sequence is not None and hasattr(sequence, "set_fastjet_banner_stream"):
        sequence.set_fastjet_banner_stream(None)


def truth_jets(particles: ak.Array, *, radius: float = JET_RADIUS, min_pt: float = 5.0) -> ak.Array:
    """Anti-kt jets of each event's stable particles, less neutrinos and muons.

    ``particles`` has fields px, py, pz, e (GeV), one list per event. Returns
    per event the jets' px, py, pz, e, pt, eta, phi, highest pT first.
    """
    fastjet = extras.fastjet()
    quiet_fastjet(fastjet)
    flat = ak.to_numpy(ak.flatten(abs(particles.pdg)))
    seen = ak.unflatten(~np.isin(flat, _INVISIBLE_TO_JETS), ak.num(particles.pdg))
    visible = particles[seen]
    vectors = ak.zip(
        {name: visible[name] for name in ("px", "py", "pz")} | {"E": visible.e},
        with_name="Momentum4D",
    )
    definition = fastjet.JetDefinition(fastjet.antikt_algorithm, radius)
    jets = fastjet.ClusterSequence(vectors, definition).inclusive_jets(min_pt=min_pt)
    pt = np.hypot(jets.px, jets.py)
    order = ak.argsort(pt, axis=1, ascending=False)
    jets, pt = jets[order], pt[order]
    p = np.sqrt(pt**2 + jets.pz**2)
    eta = np.arctanh(jets.pz / np.maximum(p, 1e-12))
    return ak.zip(
        {
            "px": jets.px,
            "py": jets.py,
            "pz": jets.pz,
            "e": jets.E,
            "pt": pt,
            "eta": eta,
            "phi": np.arctan2(jets.py, jets.px),
        }
    )


def _chunk(config: GeneratorConfig, chunk: int) -> ak.Array:
    """The stable particles and truth of one chunk's `CHUNK` candidate events."""
    pythia8 = extras.pythia8mc()
    pythia = pythia8.Pythia("", config.verbose)
    for setting in config.pythia_settings(chunk):
        if not pythia.readString(setting):
            msg = f"Pythia refused the setting {setting!r}; verbose=True shows Pythia's reason"
            raise InvalidValueError(msg)
    if not pythia.init():
        msg = (
            f"Pythia did not initialise for {config.sample} (settings: {config.pythia_settings(chunk)}); "
            "verbose=True shows Pythia's reason"
        )
        raise InvalidValueError(msg)
    batch = pythia.nextBatch(CHUNK, "skip")
    if config.verbose:
        pythia.stat()
    final = batch.prt[batch.prt.status > 0]
    pdg = ak.values_astype(final.id, np.int32)
    flat = ak.to_numpy(ak.flatten(pdg))
    # One lookup in Pythia's particle table per species, then a vectorised gather.
    species, inverse = np.unique(flat, return_inverse=True)
    charges = np.array([pythia.particleData.charge(int(pid)) for pid in species], dtype=np.float32)
    charge = ak.unflatten(charges[inverse], ak.num(pdg))
    particles = ak.zip(
        {
            "pdg": pdg,
            "charge": charge,
            "px": final.p.px,
            "py": final.p.py,
            "pz": final.p.pz,
            "e": final.p.e,
        }
    )
    jets = truth_jets(particles)
    leading = ak.fill_none(ak.firsts(jets.pt), 0.0)
    if config.pt_hat_bias_power:
        # nextBatch gives Info::weights() per event, the nominal one first.
        raw = ak.to_numpy(batch.info.weights[:, 0])
        weight = raw / raw.mean()
    else:
        weight = np.ones(len(leading))
    return ak.zip(
        {
            "pt_hat": np.sqrt(batch.info.pT2Hat),
            "leading_jet_pt": leading,
            "weight": weight,
            "particles": particles,
        },
        depth_limit=1,
    )


def generate(config: GeneratorConfig) -> ak.Array:
    """``config.n_events`` events of ``config.sample``: stable particles and truth.

    Returns one record per event: ``event_number`` (the candidate's number in
    the seed's stream, so the numbers of a slice have gaps where events were
    dropped), ``pt_hat``, ``leading_jet_pt`` (GeV; 0 if no jet above 5 GeV),
    ``weight`` (1 unless biased: the weights of a chunk's `CHUNK` candidates,
    kept or not, average to 1) and ``particles`` (pdg, charge in e, px, py,
    pz, e in GeV).
    """
    kept: list[ak.Array] = []
    n_kept = 0
    chunk = 0
    while n_kept < config.n_events:
        events = generate_chunk(config, chunk)
        if config.pt_slice is not None and chunk >= 3 and n_kept + len(events) == 0:
            msg = (
                f"no {config.sample} event in {CHUNK * (chunk + 1)} candidates: the slice "
                f"{config.pt_slice} GeV lies outside what sqrt_s = {config.sqrt_s:g} GeV and "
                f"PT_HAT_WINDOW {PT_HAT_WINDOW} give"
            )
            raise InvalidValueError(msg)
        kept.append(events)
        n_kept += len(events)
        chunk += 1
    return ak.concatenate(kept)[: config.n_events]


def generate_chunk(config: GeneratorConfig, chunk: int) -> ak.Array:
    """The events `generate` keeps from chunk ``chunk`` (candidates chunk · `CHUNK` onwards).

    Chunks are independent (each has its own Pythia seed), so worker processes
    can generate them in parallel; `generate` is the concatenation of chunks
    0, 1, … cut at ``config.n_events``.
    """
    events = _chunk(config, chunk)
    numbers = chunk * CHUNK + np.arange(len(events))
    if config.pt_slice is not None:
        low, high = config.pt_slice
        inside = ak.to_numpy((events.leading_jet_pt >= low) & (events.leading_jet_pt < high))
        events, numbers = events[inside], numbers[inside]
    events = ak.with_field(events, numbers, "event_number")
    return events[["event_number", "pt_hat", "leading_jet_pt", "weight", "particles"]]
