"""A literal, one-event-at-a-time transcription of athena's topo-clustering.

Slow Python loops that follow ``CaloTopoClusterMaker::execute`` and
``CaloTopoClusterSplitter::execute`` statement by statement (cell lists,
generations, merging of hash clusters, shared cells), on the template
neighbours of `calotools.sim.clustering`. The tests compare the vectorised batch
implementation against it on random events.
"""

from __future__ import annotations

import math

import numpy as np

from calotools import geometry
from calotools.sim.cells import CellBatch
from calotools.sim.clustering import ClusteringConfig, _template


def _neighbour_lists(adjacency) -> list[list[int]]:
    return [
        list(row[:degree]) for row, degree in zip(adjacency.table, adjacency.degree, strict=True)
    ]


def reference_clusters(
    batch: CellBatch, event: int, config: ClusteringConfig
) -> list[dict[int, float]]:
    """Clusters of one event as {local cell: weight}, in no particular order."""
    tpl = _template(batch.window)
    energy = np.concatenate(
        [batch.layers[lay.name].energy[event].ravel() for lay in geometry.LAYERS]
    ).astype(float)
    sigma = np.array([batch.layers[lay.name].noise_sigma for lay in geometry.LAYERS])[tpl.layer]
    ratio = energy / (sigma * config.noise_scale)
    protos = _maker(ratio, _neighbour_lists(tpl.grow), config)
    if not config.split:
        return [dict.fromkeys(cells, 1.0) for cells in protos]
    return _splitter(energy, protos, tpl, config, _positions(batch, event, tpl))


def _maker(ratio: np.ndarray, neighbours: list[list[int]], config: ClusteringConfig):
    in_list = np.abs(ratio) > config.perimeter_threshold  # hashCells
    above = np.abs(ratio) > config.growth_threshold
    seeds = [c for c in range(len(ratio)) if abs(ratio[c]) > config.seed_threshold]
    seeds.sort(key=lambda c: -abs(ratio[c]))
    cluster_of: dict[int, int] = {}
    members: dict[int, list[int]] = {}
    for c in np.flatnonzero(above):
        cluster_of[int(c)] = int(c)
        members[int(c)] = [int(c)]
    used = set(seeds)
    current = list(seeds)
    while current:
        following = []
        for c in current:
            mine = cluster_of[c]
            for n in neighbours[c]:
                if not in_list[n]:
                    continue
                if above[n] and n not in used:
                    used.add(n)
                    following.append(n)
                other = cluster_of.get(n)
                if mine != other and (other is None or above[n]):
                    if other is None or len(members[mine]) > len(members[other]):
                        kill, keep = other, mine
                    else:
                        kill, keep = mine, other
                    if kill is not None:
                        for x in members[kill]:
                            cluster_of[x] = keep
                        members[keep] += members[kill]
                        members[kill] = []
                    else:
                        members[keep].append(n)
                        cluster_of[n] = keep
                    mine = keep
        current = following
    return [
        cells
        for cells in members.values()
        if len(cells) > 1 or (len(cells) == 1 and cells[0] in used)
    ]


def _splitter(energy: np.ndarray, protos, tpl, config: ClusteringConfig, xyz: np.ndarray):
    full = _neighbour_lists(tpl.full)
    names = [lay.name for lay in geometry.LAYERS]
    primary = {names.index(n) for n in config.split_primary_layers}
    secondary = {names.index(n) for n in config.split_secondary_layers} - primary
    parent_of = {c: p for p, cells in enumerate(protos) for c in cells}
    all_cells = [c for cells in protos for c in cells]
    signed, is_secondary = {}, {}
    for c in all_cells:
        layer = tpl.layer[c]
        signed[c], is_secondary[c] = 0.0, False
        if energy[c] > 0 and layer in primary:
            signed[c] = energy[c]
        elif energy[c] > 0 and layer in secondary:
            signed[c], is_secondary[c] = -energy[c], True

    seeds = []
    for c in all_cells:
        mine = signed[c]
        if mine >= config.split_min_energy and not is_secondary[c]:
            n_cells, is_max = 0, True
            for n in full[c]:
                if parent_of.get(n) == parent_of[c]:
                    n_cells += 1
                    if not (mine > signed[n] or is_secondary[n]):
                        is_max = False
            if n_cells >= config.split_min_neighbours and is_max:
                seeds.append(c)
    potential = []
    for c in all_cells:
        mine = abs(signed[c])
        if is_secondary[c] and mine >= config.split_min_energy:
            n_cells, is_max = 0, True
            for n in full[c]:
                if parent_of.get(n) == parent_of[c]:
                    n_cells += 1
                    if not mine > abs(signed[n]):
                        is_max = False
            if n_cells >= config.split_min_neighbours and is_max:
                potential.append(c)
    # GPU criteria: more energetic potential secondary maxima exclude weaker ones.
    potential.sort(key=lambda c: (-energy[c], c))
    primaries = set(seeds)
    for i, s in enumerate(potential):
        blockers = primaries | set(potential[:i])
        if not (
            _chain_clear(s, -1, full, tpl, blockers) and _chain_clear(s, +1, full, tpl, blockers)
        ):
            continue
        seeds.append(s)

    has_max = [0] * len(protos)
    for s in seeds:
        has_max[parent_of[s]] += 1
    hc = {c: c for c in all_cells}
    members = {c: [c] for c in all_cells}
    contains_max = dict.fromkeys(all_cells, False)
    for s in seeds:
        contains_max[s] = True
    used = set(seeds)
    shared: dict[int, int] = {}  # shared cell -> second cluster
    shared_list: list[int] = []
    current = sorted(seeds, key=lambda c: -energy[c])
    while current:
        following, next_shared = [], []
        for c in current:
            mine = hc[c]
            for n in full[c]:
                if parent_of.get(n) != parent_of[c] or n in shared:
                    continue
                other = hc[n]
                if n not in used:
                    used.add(n)
                    following.append(n)
                elif config.share_border_cells and mine != other and n in following:
                    following.remove(n)
                    shared[n] = mine
                    next_shared.append(n)
                    members[other].remove(n)
                if mine != other and not contains_max[other] and len(members[other]) == 1:
                    for x in members[other]:
                        hc[x] = mine
                    members[mine] += members[other]
                    members[other] = []
        current = sorted(following, key=lambda c: -energy[c])
        shared_list += sorted(next_shared, key=lambda c: -energy[c])
    if config.share_border_cells:
        current = list(shared_list)
        while current:
            following = []
            for c in current:
                mine, mine2 = hc[c], shared[c]
                for n in full[c]:
                    if parent_of.get(n) != parent_of[c] or n in shared or n in used:
                        continue
                    other = hc[n]
                    if other not in (mine, mine2):
                        used.add(n)
                        shared[n] = mine2
                        following.append(n)
                        shared_list.append(n)
                        members[other] = []
                        hc[n] = mine
            current = sorted(following, key=lambda c: -energy[c])

    weight1 = {}
    for c in shared_list:
        e1, e2 = (sum(energy[x] for x in members[k]) for k in (hc[c], shared[c]))
        e1, e2 = (e if e > 0 else 1e-3 for e in (e1, e2))
        c1, c2 = (_centroid(members[k], energy, xyz) for k in (hc[c], shared[c]))
        d1, d2 = np.linalg.norm(xyz[c] - c1), np.linalg.norm(xyz[c] - c2)
        r = math.exp(min(max((d1 - d2) / config.em_shower_scale_mm, -10.0), 10.0))
        weight1[c] = e1 / (e1 + e2 * r)

    out = []
    split_members = {k: dict.fromkeys(v, 1.0) for k, v in members.items()}
    for c in shared_list:
        split_members[hc[c]][c] = weight1[c]
        split_members[shared[c]][c] = 1.0 - weight1[c]
    rest: dict[int, dict[int, float]] = {}
    for cells in split_members.values():
        if len(cells) > 1:
            out.append(cells)
        elif len(cells) == 1:
            (c,) = cells
            if has_max[parent_of[c]]:
                rest.setdefault(parent_of[c], {})[c] = 1.0
    out += list(rest.values())
    out += [dict.fromkeys(cells, 1.0) for p, cells in enumerate(protos) if not has_max[p]]
    return out


def _chain_clear(cell: int, step: int, full, tpl, blockers: set[int]) -> bool:
    """Walk previous (step −1) or next (+1) sampling neighbours; False if a blocker is met."""
    current = [cell]
    while current:
        following = []
        for c in current:
            for n in full[c]:
                if tpl.layer[n] != tpl.layer[c] + step:
                    continue
                if n in blockers:
                    return False
                if n not in following:
                    following.append(n)
        current = following
    return True


def _positions(batch: CellBatch, event: int, tpl) -> np.ndarray:
    """Cell centres of one event's window at the layers' mid radii (mm)."""
    eta, phi = batch.eta_low[event] + tpl.eta, batch.phi_low[event] + tpl.phi
    return np.stack(
        [tpl.radius * np.cos(phi), tpl.radius * np.sin(phi), tpl.radius * np.sinh(eta)], 1
    )


def _centroid(cells: list[int], energy: np.ndarray, xyz: np.ndarray) -> np.ndarray:
    weights = np.abs(energy[cells])
    if weights.sum() <= 0:
        return np.zeros(3)
    return (weights[:, None] * xyz[cells]).sum(axis=0) / weights.sum()
