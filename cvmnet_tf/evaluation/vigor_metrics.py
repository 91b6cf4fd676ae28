"""VIGOR's retrieval and metre-level metrics, in bounded memory.

Rules, as the VIGOR authors' code computes them (github Jeff-Zilence/VIGOR):

- ``train_overall.py`` / ``train_SAFA.py`` ``validate_top``: ``dist = 2 - 2 grd . sat^T``;
  for query i, ``prediction = sum(dist[i] < dist[i, positive])`` (satellites STRICTLY
  closer than the positive; ties count in the query's favour, as CVM-Net's rule in
  :mod:`cvmnet_tf.evaluation.metrics`); recall@K counts ``prediction < K`` with K = 1, 5
  (Sample4Geo's ``sample4geo/evaluate/vigor.py`` adds K = 10: same rule), and recall@1%
  counts ``prediction < top1_percent`` with ``top1_percent = int(M * 0.01) + 1``, M the
  number of satellite images in the pool (the "cvm_net" rule of
  :func:`cvmnet_tf.evaluation.metrics.top_percent_k`; Sample4Geo and TransGeo use
  ``M // 100``, one fewer: pass ``top_percent_rule="sample4geo"``).
- Hit rate (same function): ``prediction_hit = sum((dist[i] < dist[i, positive]) *
  mask)`` with ``mask = 0`` at the three semi-positives; a hit when ``prediction_hit < 1``,
  i.e. every satellite strictly closer than the positive is a semi-positive. Note: this is
  not exactly "the top-1 is the positive or a semi-positive": with a semi-positive first,
  a negative second and the positive third, VIGOR's rule says miss. We follow the code.
  Sample4Geo computes the same (``hit = (higher_sim * mask).sum(); hit < 1``).
- Metre-level error (``evaluate_from_npy.py``: ``generate_distances``, ``Lat_Lng``,
  ``gps2distance``): the retrieved tile is ``argmax`` of the similarity (lowest index on
  ties); its centre (lat, lon) from the file name, moved by a predicted offset ``delta``
  (pixels of the 640 tile, same convention as the labels; zeros = "no offset prediction,
  the centre is the location")::

      unit = Lat_Lng(lat_c, 320 * 0.114 m)      # degrees (d_lat, d_lon) for 36.48 m
                                                #   d_lat = acos(cos(d / R)),  d_lon = acos((cos(d / R) - sin^2 lat) / cos^2 lat)
      predicted = centre - unit * delta / 320
      error_m = R * acos(sin(lat_a) sin(lat_b) + cos(lat_a) cos(lat_b) cos(lon_a - lon_b)),  R = 6,371,004 m

  and the accuracy at threshold t counts ``error < t`` (strict; thresholds
  ``1.1 ** (i / 5)``, i = 1..499 in ``distance_accuracy``). ``acos`` of a cosine that
  rounds above 1 is clipped to 0 m here (the released code would return NaN). The law of
  cosines in float64 has an error floor of about ``R * sqrt(2 eps64) = 0.13 m`` (two
  identical points can come out 0.09 m apart): immaterial at VIGOR's metre thresholds,
  but ``distance="haversine"`` gives the well-conditioned formula.

Memory: one pass over the (N x M) similarities in blocks of ``b`` query rows, with
``b = max(1, block_bytes // (5 * M))``: each block holds a float32 similarity block
(4 b M bytes) and a bool mask (b M bytes), so the blocked pass allocates at most
``5 * b * M <= max(block_bytes, 5 * M)`` bytes at once, plus O(N) per-query results and
O(b) per-block temporaries. At VIGOR's size (same-area: M about 90,000 satellites,
N about 50,000 queries, dim 4096) the default ``block_bytes = 256 MiB`` gives blocks of
596 rows (215 MB of similarities + 54 MB of mask), never the N x M matrix (18 GB in
float32, 36 GB as the released float64 ``dist_array``: why Sample4Geo's evaluation was
killed on a 32 GB machine, Sample4Geo issue #3).
The descriptors themselves (N + M) x dim x 4 bytes (2.3 GB at 4096-d) are the caller's.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, Iterable, Sequence

import numpy as np

from cvmnet_tf.evaluation.metrics import (TOP_PERCENT_RULES, check_descriptor_pair, recall_at_k, similarity_blocks,
                                         top_percent_k)

__all__ = [
    "DEFAULT_BLOCK_BYTES",
    "DISTANCE_FORMULAS",
    "DEFAULT_THRESHOLDS_M",
    "EARTH_RADIUS_M",
    "VigorRanks",
    "block_rows",
    "chance_hit_rate",
    "chance_mean_error_m",
    "evaluate_vigor",
    "great_circle_distance_m",
    "hit_rate",
    "localization_errors_m",
    "metre_accuracy",
    "offset_to_latlon",
    "vigor_ranks",
]

#: Default budget of one block (float32 similarities + bool mask), bytes.
DEFAULT_BLOCK_BYTES = 256 << 20
#: Earth radius of VIGOR's ``gps2distance`` / ``Lat_Lng``, metres.
EARTH_RADIUS_M = 6371004.0
#: VIGOR offsets: half a 640 px tile at 0.114 m/px (``Lat_Lng(distance=[320*0.114]*2)``).
HALF_TILE_PX = 320.0
DEFAULT_METRES_PER_PIXEL = 0.114
#: Metre thresholds reported by :func:`evaluate_vigor` (strict ``error < t`` as VIGOR).
DEFAULT_THRESHOLDS_M = (1.0, 5.0, 10.0, 25.0, 50.0, 100.0)


@dataclasses.dataclass
class VigorRanks:
    """Per-query results of one blocked pass.

    positive_rank: int64 (N,): satellites strictly more similar than the positive.
    hit: bool (N,): all satellites strictly more similar than the positive are
      semi-positives (VIGOR's hit).
    best_index: int64 (N,): the most similar satellite (lowest row on ties).
    num_query, num_database: N, M. block_rows: query rows per block used.
    """

    positive_rank: np.ndarray
    hit: np.ndarray
    best_index: np.ndarray
    num_query: int
    num_database: int
    block_rows: int


def block_rows(num_database: int, block_bytes: int = DEFAULT_BLOCK_BYTES) -> int:
    """Query rows per block: ``max(1, block_bytes // (5 * num_database))`` (float32 block
    + bool mask = 5 bytes per similarity)."""
    if isinstance(block_bytes, bool) or not isinstance(block_bytes, (int, np.integer)) or block_bytes < 1:
        raise ValueError(f"block_bytes must be a positive integer (bytes); got {block_bytes!r}")
    return max(1, int(block_bytes) // (5 * max(int(num_database), 1)))


def _check_index(idx, name, n, m, allow_missing):
    a = np.asarray(idx)
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be integers; got dtype {a.dtype}")
    a = a.astype(np.int64)
    lo = -1 if allow_missing else 0
    if a.size and (a.min() < lo or a.max() >= m):
        raise ValueError(f"{name} values must lie in [{lo}, {m}); got [{a.min()}, {a.max()}]")
    if a.shape[0] != n:
        raise ValueError(f"{name} has {a.shape[0]} rows for {n} queries")
    return a


def _semi_columns(positive, semi):
    """Semi-positive columns with -1 for missing, duplicates and the positive itself, so
    that each satellite is excluded at most once (VIGOR's mask is set, not summed)."""
    s = semi.copy()
    s[s == positive[:, None]] = -1
    for j in range(1, s.shape[1]):
        for k in range(j):
            s[:, j][s[:, j] == s[:, k]] = -1
    return s


def vigor_ranks(query, database, positive_index, semi_positive_index=None, *,
                block_bytes: int = DEFAULT_BLOCK_BYTES) -> VigorRanks:
    """Positive ranks, VIGOR hits and the top-1 satellite, in one blocked pass.

    Args:
      query: float (N, dim) ground descriptors; database: float (M, dim) satellite
        descriptors (the whole pool). Similarity = dot product (``2 - 2 s`` is VIGOR's
        distance for unit vectors: the same order).
      positive_index: int (N,) pool row of each query's positive.
      semi_positive_index: int (N, S) pool rows of semi-positives (-1 = none), or None.
      block_bytes: memory budget of one block (module docstring).

    Returns:
      :class:`VigorRanks`.
    """
    q, d = check_descriptor_pair(query, database)
    n, m = q.shape[0], d.shape[0]
    pos = _check_index(positive_index, "positive_index", n, m, False).reshape(n)
    if semi_positive_index is None:
        semi = np.full((n, 0), -1, np.int64)
    else:
        semi = _check_index(semi_positive_index, "semi_positive_index", n, m, True).reshape(n, -1)
        semi = _semi_columns(pos, semi)
    b = min(block_rows(m, block_bytes), n)
    mask = np.empty((b, m), np.bool_)
    rank = np.empty(n, np.int64)
    hit = np.empty(n, np.bool_)
    best = np.empty(n, np.int64)
    for start, stop, s in similarity_blocks(q, d, b):
        k = stop - start
        f = mask[:k]
        rows = np.arange(k)
        t = s[rows, pos[start:stop]]
        np.greater(s, t[:, None], out=f)
        r = np.count_nonzero(f, axis=1).astype(np.int64)
        rank[start:stop] = r
        closer_semi = np.zeros(k, np.int64)
        for j in range(semi.shape[1]):
            col = semi[start:stop, j]
            ok = col >= 0
            closer_semi += ok & (s[rows, np.maximum(col, 0)] > t)
        hit[start:stop] = (r - closer_semi) < 1
        best[start:stop] = np.argmax(s, axis=1)
    return VigorRanks(rank, hit, best, n, m, b)


def hit_rate(result: VigorRanks) -> float:
    """Fraction (0..1) of queries with a VIGOR hit."""
    return float(np.count_nonzero(result.hit) / result.num_query)


# ------------------------------------------------------------------ metre level
def _unit_degrees(lat_deg, distance_m):
    """VIGOR ``Lat_Lng``: degrees (d_lat, d_lon) spanned by ``distance_m`` at ``lat``."""
    lat = np.radians(np.asarray(lat_deg, np.float64))
    c = math.cos(distance_m / EARTH_RADIUS_M)
    d_lat = np.full_like(lat, math.acos(c))
    d_lon = np.arccos(np.clip((c - np.sin(lat) ** 2) / np.cos(lat) ** 2, -1.0, 1.0))
    return np.degrees(d_lat), np.degrees(d_lon)


def offset_to_latlon(centre_latlon, offset_px, metres_per_pixel: float = DEFAULT_METRES_PER_PIXEL):
    """Position (lat, lon) degrees, float64 (N, 2), from tile centres and offsets.

    ``offset_px`` (N, 2): (d_lat, d_lon) in 640-tile pixels from the position to the
    centre (VIGOR labels' convention). ``predicted = centre - unit * offset / 320`` with
    ``unit = Lat_Lng(lat_centre, 320 * metres_per_pixel)`` (``evaluate_from_npy.py``).
    """
    c = np.asarray(centre_latlon, np.float64).reshape(-1, 2)
    o = np.asarray(offset_px, np.float64).reshape(-1, 2)
    if o.shape != c.shape:
        raise ValueError(f"offset_px has shape {o.shape}, centres {c.shape}")
    u_lat, u_lon = _unit_degrees(c[:, 0], HALF_TILE_PX * float(metres_per_pixel))
    return np.stack([c[:, 0] - u_lat * o[:, 0] / HALF_TILE_PX, c[:, 1] - u_lon * o[:, 1] / HALF_TILE_PX], 1)


DISTANCE_FORMULAS = ("vigor", "haversine")


def great_circle_distance_m(latlon_a, latlon_b, distance: str = "vigor") -> np.ndarray:
    """Great-circle distance in metres, float64 (N,), on VIGOR's sphere (R = 6,371,004 m).

    ``distance="vigor"``: the released ``gps2distance`` (spherical law of cosines; the
    cosine is clipped to [-1, 1]; error floor about 0.13 m, module docstring);
    ``"haversine"``: the same sphere, well conditioned for small distances.
    """
    if distance not in DISTANCE_FORMULAS:
        raise ValueError(f"distance must be one of {DISTANCE_FORMULAS}; got {distance!r}")
    a = np.radians(np.asarray(latlon_a, np.float64).reshape(-1, 2))
    b = np.radians(np.asarray(latlon_b, np.float64).reshape(-1, 2))
    if distance == "haversine":
        h = (np.sin((b[:, 0] - a[:, 0]) / 2) ** 2
             + np.cos(a[:, 0]) * np.cos(b[:, 0]) * np.sin((b[:, 1] - a[:, 1]) / 2) ** 2)
        return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))
    c = np.sin(a[:, 0]) * np.sin(b[:, 0]) + np.cos(a[:, 0]) * np.cos(b[:, 0]) * np.cos(a[:, 1] - b[:, 1])
    return EARTH_RADIUS_M * np.arccos(np.clip(c, -1.0, 1.0))


def localization_errors_m(best_index, query_latlon, satellite_latlon, predicted_offsets_px=None,
                          metres_per_pixel: float = DEFAULT_METRES_PER_PIXEL, distance: str = "vigor") -> np.ndarray:
    """Metre error of each query's retrieved tile (plus optional predicted offsets).

    Args:
      best_index: int (N,) retrieved pool row (e.g. :attr:`VigorRanks.best_index`).
      query_latlon: (N, 2) true positions (degrees, from the panorama names).
      satellite_latlon: (M, 2) tile centres (degrees, from the satellite names).
      predicted_offsets_px: optional (N, 2) predicted (d_lat, d_lon) offsets in 640-tile
        pixels; None = 0 (the tile centre is the prediction, VIGOR's retrieval-only rows).
      distance: "vigor" (released formula) or "haversine" (:func:`great_circle_distance_m`).

    Returns:
      float64 (N,) metres (VIGOR ``generate_distances``).
    """
    best = np.asarray(best_index, np.int64).reshape(-1)
    centres = np.asarray(satellite_latlon, np.float64).reshape(-1, 2)[best]
    if predicted_offsets_px is None:
        predicted = centres
    else:
        predicted = offset_to_latlon(centres, predicted_offsets_px, metres_per_pixel)
    return great_circle_distance_m(query_latlon, predicted, distance)


def metre_accuracy(errors_m, thresholds_m: Sequence[float]) -> np.ndarray:
    """Fraction of queries with ``error < t`` (strict, VIGOR ``distance_accuracy``) per
    threshold, float64 (len(thresholds_m),)."""
    e = np.sort(np.asarray(errors_m, np.float64).reshape(-1))
    if e.size == 0:
        raise ValueError("errors_m is empty")
    t = np.asarray(thresholds_m, np.float64)
    return np.searchsorted(e, t, side="left") / e.size


def evaluate_vigor(query, database, positive_index, semi_positive_index=None, *,
                   ks: Iterable[int] = (1, 5, 10), top_percent_rule: str = "cvm_net",
                   query_latlon=None, satellite_latlon=None, predicted_offsets_px=None,
                   metres_per_pixel: float = DEFAULT_METRES_PER_PIXEL,
                   thresholds_m: Sequence[float] = DEFAULT_THRESHOLDS_M, distance: str = "vigor",
                   block_bytes: int = DEFAULT_BLOCK_BYTES) -> Dict[str, float]:
    """VIGOR's metrics (fractions 0..1) in one blocked pass.

    Keys (all numbers): ``recall@<k>`` (positive only), ``recall@1%`` (K =
    ``top_percent_k``), ``hit_rate``, ``median_rank_fraction`` (median positive rank / M:
    0.5 for a random ranking), ``num_query``, ``num_database``, ``top_percent_k``; with
    ``query_latlon`` and ``satellite_latlon`` also ``meter/mean_error_m``,
    ``meter/median_error_m`` and ``meter/accuracy@<t>m`` (error < t). What to compare
    with (a random ranking): ``chance/recall@<k>`` = k / M, ``chance/recall@1%`` =
    ``top_percent_k`` / M, ``chance/hit_rate`` (:func:`chance_hit_rate`) and
    ``chance/mean_error_m`` (:func:`chance_mean_error_m`).
    """
    if top_percent_rule not in TOP_PERCENT_RULES:
        raise ValueError(f"top_percent_rule must be one of {TOP_PERCENT_RULES}; got {top_percent_rule!r}")
    result = vigor_ranks(query, database, positive_index, semi_positive_index, block_bytes=block_bytes)
    m = result.num_database
    k_pct = top_percent_k(m, 1.0, top_percent_rule)
    out: Dict[str, float] = {"num_query": result.num_query, "num_database": m, "top_percent_k": k_pct}
    for k in ks:
        out[f"recall@{k}"] = recall_at_k(result.positive_rank, k)
        out[f"chance/recall@{k}"] = min(1.0, k / m)
    out["recall@1%"] = recall_at_k(result.positive_rank, k_pct)
    out["chance/recall@1%"] = min(1.0, k_pct / m)
    out["hit_rate"] = hit_rate(result)
    out["chance/hit_rate"] = chance_hit_rate(positive_index, semi_positive_index, m)
    out["median_rank_fraction"] = float(np.median(result.positive_rank) / m)
    if (query_latlon is None) != (satellite_latlon is None):
        raise ValueError("metre-level errors need both query_latlon and satellite_latlon")
    if query_latlon is not None:
        errors = localization_errors_m(result.best_index, query_latlon, satellite_latlon, predicted_offsets_px,
                                       metres_per_pixel, distance)
        out["meter/mean_error_m"] = float(errors.mean())
        out["meter/median_error_m"] = float(np.median(errors))
        for t, acc in zip(thresholds_m, metre_accuracy(errors, thresholds_m)):
            out[f"meter/accuracy@{float(t):g}m"] = float(acc)
        out["chance/mean_error_m"] = chance_mean_error_m(query_latlon, satellite_latlon, distance=distance)
    return out


def chance_hit_rate(positive_index, semi_positive_index, num_database: int) -> float:
    """Expected VIGOR hit rate of a uniformly random ranking of ``num_database`` images.

    With the positive at a uniform position r (0-based) among M, a hit needs the r images
    above it to be semi-positives: P(hit) = (1/M) sum_{r=0..s} C(s, r) / C(M-1, r) for a
    query with s distinct valid semi-positives; averaged over queries.
    """
    pos = np.asarray(positive_index, np.int64).reshape(-1)
    m = int(num_database)
    if semi_positive_index is None:
        s_count = np.zeros(len(pos), np.int64)
    else:
        semi = _semi_columns(pos, np.asarray(semi_positive_index, np.int64).reshape(len(pos), -1))
        s_count = np.count_nonzero(semi >= 0, axis=1)
    probs = {}
    for s in np.unique(s_count):
        total, term = 0.0, 1.0
        for r in range(int(s) + 1):
            total += term                         # C(s, r) / C(M-1, r)
            term *= (s - r) / max(m - 1 - r, 1)
        probs[int(s)] = total / m
    return float(np.mean([probs[int(s)] for s in s_count])) if len(pos) else 0.0


def chance_mean_error_m(query_latlon, satellite_latlon, *, max_satellites: int = 1000, distance: str = "vigor",
                        seed: int = 0) -> float:
    """Mean metre error of a random tile: the mean distance from each query to the pool's
    tile centres, over a fixed random sample of at most ``max_satellites`` tiles (exact
    when the pool is smaller); queries in blocks of 256 (memory O(256 x sample))."""
    q = np.asarray(query_latlon, np.float64).reshape(-1, 2)
    sat = np.asarray(satellite_latlon, np.float64).reshape(-1, 2)
    if len(sat) > max_satellites:
        sat = sat[np.random.default_rng(seed).choice(len(sat), max_satellites, replace=False)]
    total = 0.0
    for start in range(0, len(q), 256):
        block = q[start:start + 256]
        a = np.repeat(block, len(sat), axis=0)
        b = np.tile(sat, (len(block), 1))
        total += float(great_circle_distance_m(a, b, distance).sum())
    return total / max(len(q) * len(sat), 1)
