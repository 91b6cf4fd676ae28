"""Geo-aware metrics: CVACT_test geo-recall and localization error.

Geo-recall (OriCNN's ``Matlab/RecallGeo.m``, used for CVACT_test): for every
query it retrieves the top-K satellite images (yael_nn, squared L2 = ranking by
dot product for unit vectors) and counts a hit at K when ANY of them lies
within 5 m (``<= 5``, Euclidean UTM distance, metres) of the query's position;
the curve is averaged over queries for K = 1..200. Here, equivalently, the geo
rank of a query is the number of database rows strictly more similar than its
most similar database row within ``threshold_m``, and a query is a hit at K
when geo rank < K. Ties are counted in the query's favour, as the released
CVM-Net rule (MATLAB's sort would break them by index). Sample4Geo instead
counts exact id matches on CVACT_test: that is plain recall@K
(:mod:`cvmnet_tf.evaluation.metrics`).

Localization (paper section 5.5, Fig. 8): each query is assigned its single
most similar database row; the error is the UTM distance in metres between the
query's position and that row's position; recall at d metres is the fraction of
queries with error <= d (paper: 67.1 % within 100 m, mean error 676.7 m).

Chance level (:func:`random_tile_baseline`): the same figures for a query assigned a
uniformly random database row (map tile) instead, computed exactly from the positions:
recall at d is the mean over queries of the fraction of rows within d, the mean error the
mean distance over all (query, row) pairs, the median error the median of all those
distances. Every localization summary carries them ("random_tile/..."), since a small map
makes a chance-level model look close to its target.
"""
from __future__ import annotations

from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

from cvmnet_tf.evaluation import metrics

__all__ = [
    "DEFAULT_GEO_THRESHOLD_M",
    "DEFAULT_LOCALIZATION_THRESHOLDS_M",
    "check_utm",
    "errors_from_best",
    "geo_ranks",
    "geo_recall",
    "localization_errors",
    "localization_summary",
    "near_sets",
    "random_tile_baseline",
    "random_tile_mean_errors",
    "recall_at_distance",
]

#: OriCNN RecallGeo.m threshold (metres); a 25 m value in its loaders is not used there.
DEFAULT_GEO_THRESHOLD_M = 5.0
#: Distances (metres) of the localization recall (paper Fig. 8 spans 0..1000 m).
DEFAULT_LOCALIZATION_THRESHOLDS_M = (25.0, 50.0, 100.0, 200.0, 500.0, 1000.0)


def check_utm(utm, num_rows: int, name: str) -> np.ndarray:
    """Validate UTM coordinates: float64 (num_rows, 2) easting/northing in metres."""
    arr = np.asarray(utm)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name}: UTM coordinates must have shape (N, 2) in metres; got {arr.shape}")
    if arr.shape[0] != num_rows:
        raise ValueError(f"{name}: has {arr.shape[0]} rows but the descriptors have {num_rows}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name}: UTM coordinates must be numeric; got dtype {arr.dtype}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name}: UTM coordinates contain NaN or inf")
    return arr


def _check_threshold(threshold_m) -> float:
    t = float(threshold_m)
    if not np.isfinite(t) or t < 0:
        raise ValueError(f"threshold_m must be a finite distance >= 0 metres; got {threshold_m!r}")
    return t


def near_sets(query_utm, database_utm, threshold_m: float = DEFAULT_GEO_THRESHOLD_M
              ) -> Tuple[np.ndarray, np.ndarray]:
    """Database rows within ``threshold_m`` metres of each query, as CSR lists.

    A row counts when ``sqrt(dx^2 + dy^2) <= threshold_m`` (as RecallGeo.m).

    Args:
      query_utm: (Nq, 2) metres; database_utm: (Ndb, 2) metres.

    Returns:
      (indptr int64 (Nq+1,), indices int64 (nnz,)): the rows near query i are
      ``indices[indptr[i]:indptr[i+1]]`` in increasing order.
    """
    from scipy.spatial import cKDTree

    q = np.asarray(query_utm, np.float64)
    d = np.asarray(database_utm, np.float64)
    t = _check_threshold(threshold_m)
    # A slightly larger radius for the tree, then the exact RecallGeo test.
    radius = t * (1 + 1e-9) + 1e-9
    pairs = cKDTree(q).sparse_distance_matrix(cKDTree(d), radius, output_type="ndarray")
    qi = pairs["i"].astype(np.int64)
    dj = pairs["j"].astype(np.int64)
    diff = q[qi] - d[dj]
    keep = np.sqrt(diff[:, 0] ** 2 + diff[:, 1] ** 2) <= t
    qi, dj = qi[keep], dj[keep]
    order = np.lexsort((dj, qi))
    qi, dj = qi[order], dj[order]
    indptr = np.zeros(len(q) + 1, np.int64)
    np.cumsum(np.bincount(qi, minlength=len(q)), out=indptr[1:])
    return indptr, dj


def geo_ranks(query, database, query_utm, database_utm, threshold_m: float = DEFAULT_GEO_THRESHOLD_M,
              block_size: Optional[int] = None) -> np.ndarray:
    """Per query, the database rows strictly more similar than its best "near" row.

    Args:
      query: (Nq, dim) ground descriptors; database: (Ndb, dim) satellite
        descriptors (any order; no true_index needed).
      query_utm: (Nq, 2) metres; database_utm: (Ndb, 2) metres.
      threshold_m: "near" radius in metres (default 5, inclusive).

    Returns:
      int64 (Nq,); Ndb for a query with no database row within the threshold.
      A query is a geo hit at K when its geo rank < K.
    """
    query, database = metrics.check_descriptor_pair(query, database)
    q_utm = check_utm(query_utm, query.shape[0], "query_utm")
    d_utm = check_utm(database_utm, database.shape[0], "database_utm")
    near = near_sets(q_utm, d_utm, threshold_m)
    return metrics.scan_ranks(query, database, true_index=np.zeros(query.shape[0], np.int64),
                         block_size=block_size, near=near, split_distractors=False, pessimistic=False).geo


def geo_recall(query, database, query_utm, database_utm, ks: Iterable[int] = (1, 5, 10),
               threshold_m: float = DEFAULT_GEO_THRESHOLD_M, percent: float = 1.0,
               block_size: Optional[int] = None) -> Dict[str, float]:
    """CVACT_test geo-recall (fractions 0..1): {"geo/recall@<k>", "geo/recall@<percent>%"}.

    The top-percent cut-off is CVM-Net's, K = int(0.01 * percent * Ndb) + 1.
    """
    ranks = geo_ranks(query, database, query_utm, database_utm, threshold_m, block_size)
    n_db = np.asarray(database).shape[0]
    out = {f"geo/recall@{k}": metrics.recall_at_k(ranks, k) for k in ks}
    out[f"geo/recall@{percent:g}%"] = metrics.recall_at_top_percent(ranks, n_db, percent)
    out["geo/threshold_m"] = float(threshold_m)
    return out


def localization_errors(query, database, query_utm, database_utm,
                        block_size: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Best-match index and its localization error for every query.

    Returns:
      (best_index int64 (Nq,), error_m float64 (Nq,)): the most similar database
      row (lowest index on ties) and its UTM distance to the query in metres.
    """
    query, database = metrics.check_descriptor_pair(query, database)
    q_utm = check_utm(query_utm, query.shape[0], "query_utm")
    d_utm = check_utm(database_utm, database.shape[0], "database_utm")
    best = metrics.scan_ranks(query, database, true_index=np.zeros(query.shape[0], np.int64),
                         block_size=block_size, want_best=True, split_distractors=False,
                              pessimistic=False).best_index
    return best, errors_from_best(best, q_utm, d_utm)


def errors_from_best(best_index, query_utm, database_utm) -> np.ndarray:
    """UTM distance (metres, float64 (Nq,)) between each query and its best match."""
    diff = np.asarray(query_utm, np.float64) - np.asarray(database_utm, np.float64)[np.asarray(best_index)]
    return np.sqrt(diff[:, 0] ** 2 + diff[:, 1] ** 2)


def recall_at_distance(errors_m, thresholds_m: Sequence[float]) -> np.ndarray:
    """Fraction of queries with error <= d, float64 (len(thresholds_m),) (paper Fig. 8)."""
    e = np.asarray(errors_m, np.float64)
    if e.ndim != 1 or e.size == 0:
        raise ValueError(f"errors_m must be a non-empty 1-D array; got shape {e.shape}")
    t = np.asarray(thresholds_m, np.float64)
    if t.ndim != 1 or t.size == 0 or not np.isfinite(t).all() or (t < 0).any():
        raise ValueError(f"thresholds_m must be a non-empty list of distances >= 0 metres; got {thresholds_m!r}")
    e_sorted = np.sort(e)
    return np.searchsorted(e_sorted, t, side="right") / e.size


def localization_summary(errors_m, thresholds_m: Sequence[float] = DEFAULT_LOCALIZATION_THRESHOLDS_M,
                         prefix: str = "localization/") -> Dict[str, float]:
    """Localization figures from per-query errors in metres (the one summary of the package:
    ``cvmnet-evaluate`` with UTM files and ``cvmnet-localize`` both report it).

    Returns ``{prefix + key}`` for "recall@<d>m" (fraction of queries with error <= d, one
    per threshold), "mean_error_m", "median_error_m", "max_error_m" and "num_queries".
    Raises ValueError for empty / non-finite errors or bad thresholds.
    """
    e = np.asarray(errors_m, np.float64)
    if e.ndim != 1 or e.size == 0 or not np.isfinite(e).all():
        raise ValueError("errors_m must be a non-empty 1-D array of finite metres")
    rec = recall_at_distance(e, thresholds_m)
    out = {f"{prefix}recall@{float(d):g}m": float(r) for d, r in zip(thresholds_m, rec)}
    out.update({f"{prefix}mean_error_m": float(e.mean()), f"{prefix}median_error_m": float(np.median(e)),
                f"{prefix}max_error_m": float(e.max()), f"{prefix}num_queries": int(e.size)})
    return out


def _distance_chunks(query_utm: np.ndarray, tile_utm: np.ndarray, max_pairs: int):
    """Yield float64 (Nq, chunk) distances between every query and a chunk of tiles."""
    step = max(1, max_pairs // max(len(query_utm), 1))
    for start in range(0, len(tile_utm), step):
        diff = query_utm[:, None, :] - tile_utm[None, start:start + step, :]
        yield np.sqrt(diff[..., 0] ** 2 + diff[..., 1] ** 2)


def random_tile_baseline(query_utm, tile_utm, thresholds_m: Sequence[float] = DEFAULT_LOCALIZATION_THRESHOLDS_M,
                         prefix: str = "localization/", max_pairs: int = 1 << 22) -> Dict[str, float]:
    """The localization figures of a uniformly random tile per query (chance level), exactly.

    Args:
      query_utm: (Nq, 2) true query positions in metres.
      tile_utm: (T, 2) positions in metres of the candidates (map tile centres, or the
        database rows of ``cvmnet-evaluate``).
      thresholds_m: distances d of the recall figures.
      max_pairs: (query, tile) distances held at once (memory O(max_pairs)).

    Returns:
      ``{prefix + "random_tile/recall@<d>m"}``: E[fraction of queries within d] = mean over
      queries of #{tiles within d} / T; ``"random_tile/mean_error_m"``: mean distance over
      all Nq * T pairs (the expected mean error); ``"random_tile/median_error_m"``: median
      of those Nq * T distances (the median error of a random assignment in the limit of
      many queries; exact: a histogram pass finds the bin of the middle values, a second
      pass sorts only that bin).
    """
    q = check_utm(query_utm, np.asarray(query_utm).shape[0], "query positions")
    c = check_utm(tile_utm, np.asarray(tile_utm).shape[0], "tile positions")
    if q.shape[0] == 0 or c.shape[0] == 0:
        raise ValueError("random_tile_baseline needs at least one query and one tile")
    t = np.asarray([float(d) for d in thresholds_m], np.float64)
    if t.ndim != 1 or t.size == 0 or not np.isfinite(t).all() or (t < 0).any():
        raise ValueError(f"thresholds_m must be a non-empty list of distances >= 0 metres; got {thresholds_m!r}")
    within = np.zeros(t.size, np.int64)
    total, top = 0.0, 0.0
    for dist in _distance_chunks(q, c, max_pairs):
        within += np.searchsorted(np.sort(dist, axis=None), t, side="right")
        total += float(dist.sum())
        top = max(top, float(dist.max()))
    pairs = q.shape[0] * c.shape[0]
    out = {f"{prefix}random_tile/recall@{float(d):g}m": float(w / pairs) for d, w in zip(t, within)}
    out[f"{prefix}random_tile/mean_error_m"] = total / pairs
    out[f"{prefix}random_tile/median_error_m"] = _pooled_median(q, c, top, pairs, max_pairs)
    return out


def random_tile_mean_errors(query_utm, tile_utm, max_pairs: int = 1 << 22) -> np.ndarray:
    """float64 (Nq,): each query's expected error (metres) with a uniformly random tile."""
    q = np.asarray(query_utm, np.float64)
    c = np.asarray(tile_utm, np.float64)
    sums = np.zeros(q.shape[0], np.float64)
    for dist in _distance_chunks(q, c, max_pairs):
        sums += dist.sum(axis=1)
    return sums / c.shape[0]


def _pooled_median(q, c, top, pairs, max_pairs, bins: int = 1 << 16) -> float:
    """np.median of all (query, tile) distances without holding them: histogram, then the
    values of the one or two bins holding the middle ranks, sorted."""
    edges = np.linspace(0.0, top, bins + 1) if top > 0 else np.array([0.0, 1.0])
    hist = np.zeros(edges.size - 1, np.int64)
    for dist in _distance_chunks(q, c, max_pairs):
        hist += np.histogram(dist, bins=edges)[0]
    ranks = ((pairs - 1) // 2, pairs // 2)  # 0-based middle ranks (one for odd counts)
    cum = np.cumsum(hist)
    lo_bin, hi_bin = (int(np.searchsorted(cum, r, side="right")) for r in ranks)
    lo, hi = edges[lo_bin], edges[hi_bin + 1]
    below = int(cum[lo_bin - 1]) if lo_bin > 0 else 0
    last = hi_bin == hist.size - 1
    picked = []
    for dist in _distance_chunks(q, c, max_pairs):
        keep = (dist >= lo) & ((dist <= hi) if last else (dist < hi))  # np.histogram: [a, b), last [a, b]
        picked.append(dist[keep])
    values = np.sort(np.concatenate(picked))
    return float((values[ranks[0] - below] + values[ranks[1] - below]) / 2.0)
