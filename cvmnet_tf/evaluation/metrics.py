"""Retrieval metrics for cross-view matching: ranks, recall@K, recall@top-1%.

Conventions (shared with the rest of the package):

- Descriptors are float32 arrays of shape (N, dim), one row per image.
  Query ``i`` (a ground panorama) has its true match at database row
  ``true_index[i]``, by default row ``i``; database rows after the first
  ``N_query`` are distractors (satellite images without a ground query).
- Similarity is the dot product ``s = q . d``; for unit vectors the released
  code's distance ``2 - 2 s`` is a decreasing function of it, so "closer" means
  "higher dot product".
- The rank of a query is the number of database rows STRICTLY more similar than
  its true match (the released ``validate()`` counts ``dist < gt_dist``): ties
  count in the query's favour. A query is correct at K when ``rank < K``.
- Ties: collapsed (constant or near-constant) descriptors would read as perfect under
  that rule, so the same scan also counts the rows at least as similar as the true
  match up to float32 resolution (``s >= t - tau``, :func:`tie_tolerance`): the
  PESSIMISTIC rank (ties counted against the query). :func:`summarize_ranks` reports
  both ("pessimistic/recall@K", "tied_queries") and :func:`tie_warning` says when
  the tie rule decides a figure.

Everything is computed in blocks of query rows, so a 100,000 x 4,096 query set
against an equally large database needs only ``block_size x N_database``
float32 similarities (default: about 128 MiB) on top of the descriptors.
The true-match similarity is read from the same matrix-product block that the
comparison uses, so an item is never counted as closer than itself. Note that
BLAS results depend (at the 1e-7 level) on the block shape: two similarities
within float32 rounding of each other may compare differently for different
``block_size`` values; exact ties are always handled by the strict rule.

Device (``device=`` of :func:`scan_ranks`, :func:`compute_ranks`, :func:`retrieval_ranks`,
:func:`evaluate_retrieval`; :data:`RETRIEVAL_DEVICES`): "cpu" runs the blocks with
NumPy/BLAS; "tf" / "jax" run the same blocked products and counts with TensorFlow / JAX on
its first GPU (else its CPU): the database stays on the device, each block of
``block_size`` query rows is one float32 product there (TF32 off, JAX precision HIGHEST),
the counts against the same thresholds (the true-match similarity read from the same
block, the tie tolerance of :func:`tie_tolerance`) come back as integers, so the outputs
are those of the NumPy path up to the 1e-7 reordering of the dot products (identical ranks
when no two similarities are within float32 rounding; exact ties follow the same rule).
Device memory: the database plus about 2.5x one block of similarities. "auto" (the default)
uses "tf" or "jax" when that framework is already imported and sees a GPU, else "cpu".
:func:`benchmark_retrieval` times it (``benchmarks/gpu_benchmark.py``).
"""
from __future__ import annotations

import dataclasses
import sys
import time
from typing import Dict, Iterable, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "TOP_PERCENT_RULES",
    "RETRIEVAL_DEVICES",
    "retrieval_device",
    "benchmark_retrieval",
    "RankResult",
    "check_descriptors",
    "check_descriptor_pair",
    "check_positive_int",
    "resolve_block_size",
    "TIE_ULPS",
    "TIE_WARNING_GAP",
    "tie_tolerance",
    "count_rank_rows",
    "tie_warning",
    "similarity_blocks",
    "scan_ranks",
    "compute_ranks",
    "evaluate_retrieval",
    "recall_at_k",
    "recall_at_top_percent",
    "retrieval_ranks",
    "summarize_ranks",
    "top_k_curve",
    "top_k_indices",
    "top_percent_k",
]

#: Default similarity-block budget in bytes (one float32 block of
#: ``block_size x N_database`` similarities).
DEFAULT_BLOCK_BYTES = 128 << 20

#: Top-1% cut-off rules of different codebases: a query is correct when
#: ``rank < K`` with K computed from the database size N and ``percent``.
#: "cvm_net" (also OriCNN): K = int(N * 0.01 * percent) + 1;
#: "safa": K = int(N * 0.01 * percent);
#: "sample4geo": K = (N * percent) // 100.
TOP_PERCENT_RULES = ("cvm_net", "safa", "sample4geo")

#: Two similarities closer than TIE_ULPS * eps32 * sqrt(dim) * |q| * max|d| are tied (a
#: float32 dot product of that size carries rounding of about eps32 * sqrt(dim) * |q| |d|,
#: and another BLAS block shape can order such a pair either way).
TIE_ULPS = 4.0
#: tie_warning() speaks when a recall differs by at least this (a fraction) between the
#: released tie rule and ties counted against the query.
TIE_WARNING_GAP = 0.01

#: Where the blocked scan runs (module docstring).
RETRIEVAL_DEVICES = ("auto", "cpu", "tf", "jax")

GROUND_TO_SATELLITE = "ground_to_satellite"
SATELLITE_TO_GROUND = "satellite_to_ground"
DIRECTIONS = (GROUND_TO_SATELLITE, SATELLITE_TO_GROUND)


# --------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------
def check_descriptors(x, name: str, *, chunk_rows: int = 8192) -> np.ndarray:
    """Validate a descriptor array and return it as C-contiguous float32.

    Args:
      x: array-like of shape (N, dim), N >= 1, dim >= 1, finite values.
      name: how the array is called in error messages (argument, flag or file).
      chunk_rows: rows checked for NaN/inf at a time (bounds temporary memory).

    Returns:
      np.ndarray float32 (N, dim); no copy when ``x`` already is one.

    Raises:
      ValueError naming ``name`` for a wrong rank, an empty array, a non-numeric
      dtype or NaN/inf values (the first bad row is reported).
    """
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name}: descriptors must be a 2-D array (N, dim); got shape {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name}: descriptors must be non-empty (N >= 1, dim >= 1); got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise ValueError(f"{name}: descriptors must be numeric; got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    for start in range(0, arr.shape[0], chunk_rows):
        chunk = arr[start:start + chunk_rows]
        if not np.isfinite(chunk).all():
            bad = start + int(np.flatnonzero(~np.isfinite(chunk).all(axis=1))[0])
            raise ValueError(f"{name}: descriptors contain NaN or inf (first bad row {bad})")
    return arr


def check_descriptor_pair(query, database, query_name="query", database_name="database"):
    """Both descriptor arrays checked (:func:`check_descriptors`) and of the same dim."""
    query = check_descriptors(query, query_name)
    database = check_descriptors(database, database_name)
    if query.shape[1] != database.shape[1]:
        raise ValueError(
            f"descriptor dimensions differ: {query_name} has dim {query.shape[1]}, "
            f"{database_name} has dim {database.shape[1]}")
    return query, database


def _check_true_index(true_index, num_query: int, num_database: int, database_name="database"):
    if true_index is None:
        if num_database < num_query:
            raise ValueError(
                f"{database_name} has {num_database} rows but there are {num_query} queries: with the "
                "default true_index (query i matches database row i) the database needs at least as many rows")
        return None
    idx = np.asarray(true_index)
    if idx.shape != (num_query,):
        raise ValueError(f"true_index must have shape ({num_query},); got {idx.shape}")
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"true_index must be integers; got dtype {idx.dtype}")
    if idx.size and (idx.min() < 0 or idx.max() >= num_database):
        raise ValueError(f"true_index values must lie in [0, {num_database}); got range "
                         f"[{idx.min()}, {idx.max()}]")
    return idx.astype(np.int64)


def resolve_block_size(block_size, num_query: int, num_database: int) -> int:
    """Query rows per block: ``block_size`` checked, or (None) about
    :data:`DEFAULT_BLOCK_BYTES` of float32 similarities (16 .. 4096 rows)."""
    if block_size is None:
        block_size = DEFAULT_BLOCK_BYTES // (4 * max(num_database, 1))
        block_size = max(16, min(block_size, 4096))
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer; got {block_size!r}")
    return int(min(block_size, num_query))


# --------------------------------------------------------------------------
# The blocked engine
# --------------------------------------------------------------------------
@dataclasses.dataclass
class RankResult:
    """Per-query ranks from one blocked pass.

    Attributes:
      ground_to_satellite: int64 (Nq,), database rows strictly more similar than
        the true match, over the whole database (distractors included).
      ground_to_satellite_no_distractors: int64 (Nq,), the same counted over the
        first Nq database rows only (equal to the above when there are none).
      satellite_to_ground: int64 (Nq,) or None; for satellite i (database row
        i < Nq), the number of ground queries strictly more similar than ground i.
      geo: int64 (Nq,) or None; number of database rows strictly more similar
        than the most similar database row within the geo threshold of the
        query (``num_database`` when no row is that close: never a hit).
      best_index: int64 (Nq,) or None; the most similar database row (lowest
        index on ties).
      num_query, num_database, num_distractors: sizes.
      ground_to_satellite_pessimistic, ground_to_satellite_no_distractors_pessimistic:
        int64 (Nq,) or None; the rows OTHER than the true match at least as similar as
        it up to float32 resolution (ties counted against the query; >= the ranks above).
    """

    ground_to_satellite: np.ndarray
    ground_to_satellite_no_distractors: np.ndarray
    satellite_to_ground: Optional[np.ndarray]
    geo: Optional[np.ndarray]
    best_index: Optional[np.ndarray]
    num_query: int
    num_database: int
    ground_to_satellite_pessimistic: Optional[np.ndarray] = None
    ground_to_satellite_no_distractors_pessimistic: Optional[np.ndarray] = None

    @property
    def num_distractors(self) -> int:
        return self.num_database - self.num_query


def _count_greater_rows(block: np.ndarray, thresholds: np.ndarray, buf: np.ndarray) -> np.ndarray:
    """Per row of ``block`` (b, n), how many entries are > thresholds (b,)."""
    np.greater(block, thresholds[:, None], out=buf)
    return np.count_nonzero(buf, axis=1).astype(np.int64)


def tie_tolerance(query: np.ndarray, database: np.ndarray) -> np.ndarray:
    """float32 (Nq,): tau_i = TIE_ULPS * eps32 * sqrt(dim) * |q_i| * max_j |d_j|; a database
    similarity within tau_i of query i's true match is a tie at float32 resolution (0 for
    a zero query or database: only exact ties)."""
    eps = float(np.finfo(np.float32).eps)
    q_norm = np.sqrt(np.einsum("ij,ij->i", query, query, dtype=np.float64))
    d_max = float(np.sqrt(np.einsum("ij,ij->i", database, database, dtype=np.float64).max()))
    return (TIE_ULPS * eps * np.sqrt(query.shape[1]) * q_norm * d_max).astype(np.float32)


def count_rank_rows(block: np.ndarray, true_sim: np.ndarray, tol: np.ndarray, buf: np.ndarray):
    """Both tie rules' counts for one block of similarities.

    Args:
      block: float32 (b, n) similarities; true_sim: (b,) each row's true-match similarity;
      tol: (b,) tie tolerances (:func:`tie_tolerance`); buf: bool scratch (>= b, n).

    Returns:
      ``(greater, at_least)`` int64 (b,): entries ``> true_sim`` (strictly more similar,
      the released rule) and ``>= true_sim - tol`` (as similar up to float32 resolution;
      counts the true match itself when it lies in the block).
    """
    b = block.shape[0]
    np.greater(block, true_sim[:, None], out=buf[:b])
    greater = np.count_nonzero(buf[:b], axis=1).astype(np.int64)
    np.greater_equal(block, (true_sim - tol)[:, None], out=buf[:b])
    at_least = np.count_nonzero(buf[:b], axis=1).astype(np.int64)
    return greater, at_least


def similarity_blocks(query: np.ndarray, database: np.ndarray, block_size: int):
    """Yield ``(start, stop, s)`` over blocks of query rows: ``s`` float32 (stop - start,
    Ndb) = ``query[start:stop] @ database.T``, written into ONE reused buffer (valid until
    the next block; callers may modify it in place). Inputs: checked float32 arrays;
    ``block_size``: rows per block (see :func:`resolve_block_size`)."""
    nq, ndb = query.shape[0], database.shape[0]
    sim = np.empty((min(block_size, max(nq, 1)), ndb), np.float32)
    db_t = database.T
    for start in range(0, nq, block_size):
        stop = min(start + block_size, nq)
        s = sim[:stop - start]
        np.matmul(query[start:stop], db_t, out=s)
        yield start, stop, s


def scan_ranks(query: np.ndarray, database: np.ndarray, *, true_index=None, block_size=None,
               satellite_to_ground: bool = False, near=None, want_best: bool = False,
               split_distractors: bool = True, pessimistic: bool = True, device: str = "auto") -> RankResult:
    """Every rank of :class:`RankResult` from ONE blocked pass over the (Nq, Ndb) similarity
    matrix; inputs already checked (:func:`check_descriptor_pair`).

    ``true_index``: database row of each query's true match (None: row i);
    ``near``: optional (indptr (Nq+1,), indices) CSR lists of database rows within the geo
    threshold of each query; ``want_best``: also the most similar row per query;
    ``split_distractors``: also the ranks over the first Nq database rows only;
    ``pessimistic``: also the ranks with ties counted against the query (same blocks);
    ``device``: one of :data:`RETRIEVAL_DEVICES` (module docstring).
    """
    nq, ndb = query.shape[0], database.shape[0]
    b = resolve_block_size(block_size, nq, ndb)
    where = retrieval_device(device)
    if where != "cpu":
        return _scan_ranks_on_device(_DEVICE_OPS[where](), query, database, b, true_index=true_index,
                                     satellite_to_ground=satellite_to_ground, near=near, want_best=want_best,
                                     split_distractors=split_distractors, pessimistic=pessimistic)
    ranks = np.empty(nq, np.int64)
    ranks_true_only = np.empty(nq, np.int64) if (split_distractors and true_index is None and ndb > nq) else None
    tol = tie_tolerance(query, database) if pessimistic else None
    pess = np.empty(nq, np.int64) if pessimistic else None
    pess_true_only = np.empty(nq, np.int64) if (pessimistic and ranks_true_only is not None) else None
    geo = np.empty(nq, np.int64) if near is not None else None
    best = np.empty(nq, np.int64) if want_best else None
    s2g = None
    if satellite_to_ground:
        # Threshold for ground query j as seen from satellite j: s(q_j, d_j), by a
        # row-wise dot; the self term counted against it is corrected below with
        # the matrix-product value so that an item never outranks itself.
        col_threshold = np.einsum("ij,ij->i", query, database[:nq]).astype(np.float32)
        s2g = np.zeros(nq, np.int64)
    flags = np.empty((b, ndb), np.bool_)
    for start, stop, s in similarity_blocks(query, database, b):
        m = stop - start
        rows = np.arange(m)
        cols = np.arange(start, stop) if true_index is None else true_index[start:stop]
        t = s[rows, cols]
        if pess is not None and ranks_true_only is not None:
            greater, at_least = count_rank_rows(s[:, :nq], t, tol[start:stop], flags[:, :nq])
            greater_d, at_least_d = count_rank_rows(s[:, nq:], t, tol[start:stop], flags[:, nq:])
            ranks_true_only[start:stop] = greater
            ranks[start:stop] = greater + greater_d
            pess_true_only[start:stop] = at_least - 1          # the true match itself is not against it
            pess[start:stop] = at_least - 1 + at_least_d
        elif pess is not None:
            greater, at_least = count_rank_rows(s, t, tol[start:stop], flags)
            ranks[start:stop] = greater
            pess[start:stop] = at_least - 1
        elif ranks_true_only is not None:
            np.greater(s, t[:, None], out=flags[:m])
            ranks_true_only[start:stop] = np.count_nonzero(flags[:m, :nq], axis=1)
            ranks[start:stop] = ranks_true_only[start:stop] + np.count_nonzero(flags[:m, nq:], axis=1)
        else:
            ranks[start:stop] = _count_greater_rows(s, t, flags[:m])
        if s2g is not None:
            sq = s[:, :nq]
            fl = flags[:m, :nq]
            np.greater(sq, col_threshold[None, :], out=fl)
            s2g += np.count_nonzero(fl, axis=0)
            diag = np.arange(start, stop)
            s2g[diag] -= (sq[rows, diag] > col_threshold[diag])
        if geo is not None:
            indptr, indices = near
            lo, hi = indptr[start], indptr[stop]
            counts = np.diff(indptr[start:stop + 1])
            best_near = np.full(m, np.inf, np.float32)
            if hi > lo:
                vals = s[np.repeat(rows, counts), indices[lo:hi]]
                has = counts > 0
                starts = (indptr[start:stop] - lo)[has]
                best_near[has] = np.maximum.reduceat(vals, starts)
            g = _count_greater_rows(s, best_near, flags[:m])
            g[counts == 0] = ndb
            geo[start:stop] = g
        if best is not None:
            best[start:stop] = np.argmax(s, axis=1)
    if ranks_true_only is None:
        ranks_true_only = ranks
        pess_true_only = pess
    return RankResult(ground_to_satellite=ranks, ground_to_satellite_no_distractors=ranks_true_only,
                      satellite_to_ground=s2g, geo=geo, best_index=best, num_query=nq, num_database=ndb,
                      ground_to_satellite_pessimistic=pess,
                      ground_to_satellite_no_distractors_pessimistic=pess_true_only)


# --------------------------------------------------------------------------
# The same blocks on an accelerator (TensorFlow or JAX)
# --------------------------------------------------------------------------
def _sees_gpu(framework: str) -> bool:
    try:
        if framework == "tf":
            return bool(sys.modules["tensorflow"].config.list_physical_devices("GPU"))
        import jax
        return any(d.platform == "gpu" for d in jax.devices())
    except Exception:  # noqa: BLE001 - no backend / driver: no GPU
        return False


def retrieval_device(device: str = "auto", import_frameworks: bool = False) -> str:
    """The device ``device`` means: "cpu", "tf" or "jax" (:data:`RETRIEVAL_DEVICES`).

    "auto": "tf" when TensorFlow is imported and sees a GPU, else "jax" when JAX is imported
    and sees one, else "cpu" (``import_frameworks``: import them to look, as the GPU
    benchmark does). "tf" / "jax" are used as asked (on the framework's CPU without a GPU);
    ValueError when unknown or not installed."""
    if device not in RETRIEVAL_DEVICES:
        raise ValueError(f"device={device!r} is unknown; choose one of {', '.join(RETRIEVAL_DEVICES)}")
    if device in ("tf", "jax"):
        module = "tensorflow" if device == "tf" else "jax"
        try:
            __import__(module)
        except ImportError:
            raise ValueError(f"device={device!r}: {module} is not installed") from None
        return device
    if device == "cpu":
        return "cpu"
    for framework, module in (("tf", "tensorflow"), ("jax", "jax")):
        if module not in sys.modules and import_frameworks:
            try:
                __import__(module)
            except ImportError:
                continue
        if module in sys.modules and _sees_gpu(framework):
            return framework
    return "cpu"


class _TFOps:
    """Block operations with TensorFlow on its first GPU (else CPU); results come back as NumPy."""

    name = "tf"

    def __init__(self):
        import tensorflow as tf

        self.tf = tf
        self.device = "/GPU:0" if tf.config.list_physical_devices("GPU") else "/CPU:0"
        self.label = f"tensorflow {self.device}"

    def __enter__(self):  # float32 products: no TF32 on Ampere/Hopper while the scan runs
        self._tf32 = self.tf.config.experimental.tensor_float_32_execution_enabled()
        self.tf.config.experimental.enable_tensor_float_32_execution(False)
        self._scope = self.tf.device(self.device)
        self._scope.__enter__()
        return self

    def __exit__(self, *exc):
        self._scope.__exit__(*exc)
        self.tf.config.experimental.enable_tensor_float_32_execution(self._tf32)

    def put(self, x):
        return self.tf.constant(x)

    def similarities(self, q, db):
        return self.tf.matmul(self.put(q), db, transpose_b=True)

    def pick(self, s, rows, cols):
        return self.tf.gather_nd(s, np.stack([rows, cols], axis=1)).numpy()

    def count_rows(self, s, thresholds, lo, hi, strict=True):
        part = s if (lo, hi) == (0, s.shape[1]) else s[:, lo:hi]
        thr = self.put(np.asarray(thresholds, np.float32)[:, None])
        hits = self.tf.greater(part, thr) if strict else self.tf.greater_equal(part, thr)
        return self.tf.reduce_sum(self.tf.cast(hits, self.tf.int32), axis=1).numpy().astype(np.int64)

    def count_cols(self, s, thresholds, hi):
        hits = self.tf.greater(s[:, :hi], self.put(np.asarray(thresholds, np.float32)[None, :]))
        return self.tf.reduce_sum(self.tf.cast(hits, self.tf.int32), axis=0).numpy().astype(np.int64)

    def first_argmax(self, s):
        tf = self.tf
        top = tf.reduce_max(s, axis=1, keepdims=True)
        cols = tf.range(s.shape[1], dtype=tf.int32)[None, :]
        return tf.reduce_min(tf.where(tf.equal(s, top), cols, s.shape[1]), axis=1).numpy().astype(np.int64)


class _JaxOps:
    """Block operations with JAX on its default device (a GPU when there is one)."""

    name = "jax"

    def __init__(self):
        import jax
        import jax.numpy as jnp

        self.jax, self.jnp = jax, jnp
        self.device = jax.devices()[0]
        self.label = f"jax {self.device.platform}:{self.device.id}"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def put(self, x):
        return self.jax.device_put(np.asarray(x), self.device)

    def similarities(self, q, db):
        # q @ db.T without materialising the transpose; HIGHEST: float32, not TF32 / bf16 passes
        return self.jax.lax.dot_general(self.put(q), db, (((1,), (1,)), ((), ())),
                                        precision=self.jax.lax.Precision.HIGHEST)

    def pick(self, s, rows, cols):
        return np.asarray(s[self.put(rows), self.put(cols)])

    def count_rows(self, s, thresholds, lo, hi, strict=True):
        part = s if (lo, hi) == (0, s.shape[1]) else s[:, lo:hi]
        thr = self.put(np.asarray(thresholds, np.float32)[:, None])
        hits = part > thr if strict else part >= thr
        return np.asarray(self.jnp.sum(hits, axis=1, dtype=self.jnp.int32)).astype(np.int64)

    def count_cols(self, s, thresholds, hi):
        hits = s[:, :hi] > self.put(np.asarray(thresholds, np.float32)[None, :])
        return np.asarray(self.jnp.sum(hits, axis=0, dtype=self.jnp.int32)).astype(np.int64)

    def first_argmax(self, s):
        return np.asarray(self.jnp.argmax(s, axis=1)).astype(np.int64)  # the first maximum, as NumPy


_DEVICE_OPS = {"tf": _TFOps, "jax": _JaxOps}


def _scan_ranks_on_device(ops, query, database, b, *, true_index, satellite_to_ground, near, want_best,
                          split_distractors, pessimistic) -> RankResult:
    """:func:`scan_ranks` with the similarity blocks and their counts on ``ops``' device; every
    threshold is computed on the host exactly as the NumPy path does (same float32 values)."""
    nq, ndb = query.shape[0], database.shape[0]
    split = split_distractors and true_index is None and ndb > nq
    tol = tie_tolerance(query, database) if pessimistic else None
    col_threshold = (np.einsum("ij,ij->i", query, database[:nq]).astype(np.float32)
                     if satellite_to_ground else None)
    ranks, ranks_true_only = np.empty(nq, np.int64), (np.empty(nq, np.int64) if split else None)
    pess = np.empty(nq, np.int64) if pessimistic else None
    pess_true_only = np.empty(nq, np.int64) if (pessimistic and split) else None
    geo = np.empty(nq, np.int64) if near is not None else None
    best = np.empty(nq, np.int64) if want_best else None
    s2g = np.zeros(nq, np.int64) if satellite_to_ground else None
    parts = ((0, nq), (nq, ndb)) if split else ((0, ndb),)
    with ops:
        db = ops.put(database)
        for start in range(0, nq, b):
            stop = min(start + b, nq)
            m = stop - start
            rows = np.arange(m)
            s = ops.similarities(query[start:stop], db)
            cols = np.arange(start, stop) if true_index is None else true_index[start:stop]
            t = ops.pick(s, rows, cols)
            greater = [ops.count_rows(s, t, lo, hi) for lo, hi in parts]
            ranks[start:stop] = sum(greater)
            if split:
                ranks_true_only[start:stop] = greater[0]
            if pessimistic:
                at_least = [ops.count_rows(s, t - tol[start:stop], lo, hi, strict=False) for lo, hi in parts]
                pess[start:stop] = sum(at_least) - 1          # the true match itself is not against it
                if split:
                    pess_true_only[start:stop] = at_least[0] - 1
            if s2g is not None:
                diag = np.arange(start, stop)
                s2g += ops.count_cols(s, col_threshold, nq)
                s2g[diag] -= ops.pick(s, rows, diag) > col_threshold[diag]
            if geo is not None:
                indptr, indices = near
                lo, hi = indptr[start], indptr[stop]
                counts = np.diff(indptr[start:stop + 1])
                best_near = np.full(m, np.inf, np.float32)
                if hi > lo:
                    vals = ops.pick(s, np.repeat(rows, counts), indices[lo:hi])
                    has = counts > 0
                    best_near[has] = np.maximum.reduceat(vals, (indptr[start:stop] - lo)[has])
                g = ops.count_rows(s, best_near, 0, ndb)
                g[counts == 0] = ndb
                geo[start:stop] = g
            if best is not None:
                best[start:stop] = ops.first_argmax(s)
    if not split:
        ranks_true_only, pess_true_only = ranks, pess
    return RankResult(ground_to_satellite=ranks, ground_to_satellite_no_distractors=ranks_true_only,
                      satellite_to_ground=s2g, geo=geo, best_index=best, num_query=nq, num_database=ndb,
                      ground_to_satellite_pessimistic=pess,
                      ground_to_satellite_no_distractors_pessimistic=pess_true_only)


def benchmark_retrieval(num_query: int = 92802, num_database: Optional[int] = None, dim: int = 4096, *,
                        device: str = "auto", block_size: Optional[int] = None, repeats: int = 1,
                        seed: int = 0) -> dict:
    """Time :func:`compute_ranks` (one blocked scan, both tie rules) on random unit
    descriptors (database = query + noise, normalised, so ranks are spread out).

    Default sizes: CVACT_test (92,802 x 4,096). ``device``: :data:`RETRIEVAL_DEVICES`
    ("auto" imports TensorFlow / JAX to look for a GPU). Returns a dict: "device" (the
    framework and device used), "num_query", "num_database", "dim", "block_size", "seconds"
    (median of ``repeats`` scans, descriptors already in host memory; the transfer of the
    database to the device included), "tflop" (2 Nq Ndb dim / 1e12 of the products),
    "tflop_per_s", "recall@1" and "recall@1%" (a check that it ran). Host memory: about
    2 x 4 x (Nq + Ndb) x dim bytes (3 GiB at the default sizes). Used by
    ``benchmarks/gpu_benchmark.py`` and ``benchmarks/retrieval_recall.py``.
    """
    num_database = num_query if num_database is None else int(num_database)
    where = retrieval_device(device, import_frameworks=device == "auto")
    rng = np.random.default_rng(seed)
    query = rng.standard_normal((num_query, dim), dtype=np.float32)
    query /= np.linalg.norm(query, axis=1, keepdims=True)
    database = rng.standard_normal((num_database, dim), dtype=np.float32)
    database *= np.float32(1.5 / np.sqrt(dim))
    database[:min(num_query, num_database)] += query[:num_database]
    database /= np.linalg.norm(database, axis=1, keepdims=True)
    b = resolve_block_size(block_size, num_query, num_database)
    times, result = [], None
    for _ in range(max(1, int(repeats))):
        t0 = time.perf_counter()
        result = compute_ranks(query, database, block_size=b, device=where)
        times.append(time.perf_counter() - t0)
    seconds = float(np.median(times))
    tflop = 2.0 * num_query * num_database * dim / 1e12
    label = "numpy/BLAS cpu" if where == "cpu" else _DEVICE_OPS[where]().label
    summary = summarize_ranks(result)
    return {"device": label, "num_query": int(num_query), "num_database": int(num_database), "dim": int(dim),
            "block_size": b, "seconds": seconds, "tflop": tflop, "tflop_per_s": tflop / seconds,
            "recall@1": summary["recall@1"], "recall@1%": summary["recall@1%"]}


# --------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------
def retrieval_ranks(query, database, true_index=None, block_size: Optional[int] = None,
                    device: str = "auto") -> np.ndarray:
    """Number of database rows strictly more similar than each query's true match.

    Args:
      query: float (Nq, dim) query descriptors (ground).
      database: float (Ndb, dim) database descriptors (satellite), distractors
        (if any) appended after the true matches.
      true_index: int (Nq,) database row of each query's true match; default
        ``arange(Nq)`` (then Ndb >= Nq is required).
      block_size: query rows per block; default keeps one float32 block of
        similarities near 128 MiB.
      device: :data:`RETRIEVAL_DEVICES` (module docstring).

    Returns:
      int64 (Nq,) ranks; 0 means the true match is (jointly) the most similar.
    """
    query, database = check_descriptor_pair(query, database)
    idx = _check_true_index(true_index, query.shape[0], database.shape[0])
    return scan_ranks(query, database, true_index=idx, block_size=block_size, split_distractors=False,
                      pessimistic=False, device=device).ground_to_satellite


def _check_ranks(ranks) -> np.ndarray:
    r = np.asarray(ranks)
    if r.ndim != 1 or r.size == 0:
        raise ValueError(f"ranks must be a non-empty 1-D array; got shape {r.shape}")
    if not np.issubdtype(r.dtype, np.integer) or r.min() < 0:
        raise ValueError("ranks must be non-negative integers")
    return r


def check_positive_int(k, name="k") -> int:
    """``k`` as a positive int (K of recall@K, block sizes); ValueError naming ``name``."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"{name} must be a positive integer; got {k!r}")
    return int(k)


def recall_at_k(ranks, k: int) -> float:
    """Fraction (0..1) of queries whose true match is in the top k (rank < k)."""
    r = _check_ranks(ranks)
    return float(np.count_nonzero(r < check_positive_int(k)) / r.size)


def top_percent_k(num_database: int, percent: float = 1.0, rule: str = "cvm_net") -> int:
    """The K of "recall@top-percent" for a database of ``num_database`` rows.

    rule "cvm_net" (CVM-Net's ``validate()`` and OriCNN): int(N * 0.01 * percent) + 1
    (N = 8,884 gives K = 89); "safa": int(N * 0.01 * percent);
    "sample4geo": (N * percent) // 100. A query counts when rank < K.
    """
    if isinstance(num_database, bool) or not isinstance(num_database, (int, np.integer)) or num_database < 1:
        raise ValueError(f"num_database must be a positive integer; got {num_database!r}")
    if not (0 < percent <= 100):
        raise ValueError(f"percent must be in (0, 100]; got {percent!r}")
    if rule == "cvm_net":
        return int(num_database * 0.01 * percent) + 1
    if rule == "safa":
        return int(num_database * 0.01 * percent)
    if rule == "sample4geo":
        return int((num_database * percent) // 100)
    raise ValueError(f"rule must be one of {TOP_PERCENT_RULES}; got {rule!r}")


def recall_at_top_percent(ranks, num_database: int, percent: float = 1.0, rule: str = "cvm_net") -> float:
    """Recall@top-``percent``% (fraction 0..1) with CVM-Net's cut-off by default.

    K = int(0.01 * percent * num_database) + 1 and a query counts when rank < K,
    as CVM-Net's and OriCNN's code. SAFA (rank < int(N * 0.01)) and Sample4Geo
    (rank < N // 100) use one less or so: pass ``rule="safa"`` / ``"sample4geo"``.
    """
    r = _check_ranks(ranks)
    k = top_percent_k(num_database, percent, rule)
    return float(np.count_nonzero(r < k) / r.size)


def top_k_curve(ranks, max_k: int) -> np.ndarray:
    """Recall (fraction) at k = 1..max_k as float64 (max_k,) (paper Fig. 5/6)."""
    r = _check_ranks(ranks)
    max_k = check_positive_int(max_k, "max_k")
    hist = np.bincount(np.minimum(r, max_k), minlength=max_k + 1)[:max_k]
    return np.cumsum(hist) / r.size


def top_k_indices(query, database, k: int, rows: Optional[Sequence[int]] = None,
                  block_size: Optional[int] = None) -> np.ndarray:
    """Database rows of the k most similar items for some queries, best first.

    Args:
      query: (Nq, dim); database: (Ndb, dim); k <= Ndb.
      rows: which query rows (default all); each costs a full sort of Ndb
        similarities, so keep it small for big databases (e.g. a few examples).

    Returns:
      int64 (len(rows), k); ties broken by the lower database index.
    """
    query, database = check_descriptor_pair(query, database)
    k = check_positive_int(k)
    if k > database.shape[0]:
        raise ValueError(f"k={k} exceeds the database size {database.shape[0]}")
    rows = np.arange(query.shape[0]) if rows is None else np.asarray(rows, np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= query.shape[0]):
        raise ValueError(f"rows must lie in [0, {query.shape[0]})")
    b = resolve_block_size(block_size, max(len(rows), 1), database.shape[0])
    out = np.empty((len(rows), k), np.int64)
    for start in range(0, len(rows), b):
        s = query[rows[start:start + b]] @ database.T
        # A stable sort of -s keeps database order among equal similarities.
        out[start:start + len(s)] = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return out


def summarize_ranks(result: RankResult, ks: Iterable[int] = (1, 5, 10), percent: float = 1.0,
                    geo_ks: Optional[Iterable[int]] = None) -> Dict[str, float]:
    """Recall dictionary (fractions 0..1) from a :class:`RankResult`.

    Keys: "recall@<k>" for k in ks and "recall@<percent>%" (CVM-Net cut-off
    K = int(0.01 * percent * Ndb) + 1), ground -> satellite over the full
    database; with distractors also "no_distractors/recall@...";
    "satellite_to_ground/recall@..." when computed; "geo/recall@<k>" and
    "geo/recall@<percent>%" for the geo ranks. Plus "num_query",
    "num_database", "top_percent_k". With pessimistic ranks (the default of
    :func:`compute_ranks`): "pessimistic/recall@..." (and
    "no_distractors/pessimistic/recall@...") with ties counted against the query,
    and "tied_queries", the fraction of queries whose rank depends on the tie rule.
    """
    ks = [check_positive_int(k, "ks") for k in ks]
    pct_key = f"recall@{percent:g}%"
    out: Dict[str, float] = {"num_query": result.num_query, "num_database": result.num_database,
                             "top_percent_k": top_percent_k(result.num_database, percent)}

    def add(prefix, ranks, n_db):
        for k in ks:
            out[f"{prefix}recall@{k}"] = recall_at_k(ranks, k)
        out[f"{prefix}{pct_key}"] = recall_at_top_percent(ranks, n_db, percent)

    add("", result.ground_to_satellite, result.num_database)
    pessimistic = result.ground_to_satellite_pessimistic
    if pessimistic is not None:
        add("pessimistic/", pessimistic, result.num_database)
        out["tied_queries"] = float(np.count_nonzero(pessimistic != result.ground_to_satellite) / result.num_query)
    if result.num_distractors > 0:
        out["num_distractors"] = result.num_distractors
        add("no_distractors/", result.ground_to_satellite_no_distractors, result.num_query)
        if result.ground_to_satellite_no_distractors_pessimistic is not None:
            add("no_distractors/pessimistic/", result.ground_to_satellite_no_distractors_pessimistic,
                result.num_query)
    if result.satellite_to_ground is not None:
        add("satellite_to_ground/", result.satellite_to_ground, result.num_query)
    if result.geo is not None:
        for k in (ks if geo_ks is None else [check_positive_int(k, "geo_ks") for k in geo_ks]):
            out[f"geo/recall@{k}"] = recall_at_k(result.geo, k)
        out[f"geo/{pct_key}"] = recall_at_top_percent(result.geo, result.num_database, percent)
    return out


def tie_warning(metrics: Dict[str, float], what: str = "this ranking") -> Optional[str]:
    """A one-line warning when the tie rule decides a figure of ``metrics`` (a dict of
    :func:`summarize_ranks` or of the training validation): some "recall@..." differs by
    at least :data:`TIE_WARNING_GAP` from its "pessimistic/recall@..." (ties counted
    against the query), as for collapsed or near-constant descriptors. None otherwise."""
    gaps = [(key, metrics[key], metrics[f"pessimistic/{key}"]) for key in metrics
            if key.startswith("recall@") and f"pessimistic/{key}" in metrics]
    worst = [g for g in gaps if g[1] - g[2] >= TIE_WARNING_GAP]
    if not worst:
        return None
    key, optimistic, against = max(worst, key=lambda g: g[1] - g[2])
    tied = metrics.get("tied_queries")
    share = f"{100 * tied:.1f}% of the queries have" if tied is not None else "queries have"
    return (f"ties decide {what}: {share} their true match tied with another database row at float32 "
            f"resolution (collapsed or near-constant descriptors?): {key} is {100 * optimistic:.2f}% with the "
            f"released rule (ties in the query's favour) but {100 * against:.2f}% with ties counted against the "
            "query; see the pessimistic/ figures")


def compute_ranks(query, database, *, directions: Sequence[str] = (GROUND_TO_SATELLITE,),
                  near=None, want_best: bool = False, block_size: Optional[int] = None,
                  query_name: str = "query", database_name: str = "database",
                  device: str = "auto") -> RankResult:
    """All ranks needed by :func:`evaluate_retrieval` in ONE blocked pass.

    Query i matches database row i; rows >= Nq are distractors. ``near`` is the
    CSR neighbour structure from :func:`cvmnet_tf.evaluation.geo.near_sets`.
    ``device``: :data:`RETRIEVAL_DEVICES` (module docstring).
    """
    directions = _check_directions(directions)
    query, database = check_descriptor_pair(query, database, query_name, database_name)
    _check_true_index(None, query.shape[0], database.shape[0], database_name)
    if near is not None:
        indptr, indices = near
        if len(indptr) != query.shape[0] + 1:
            raise ValueError(f"near: indptr must have {query.shape[0] + 1} entries; got {len(indptr)}")
        if len(indices) and (indices.min() < 0 or indices.max() >= database.shape[0]):
            raise ValueError("near: database indices out of range")
    return scan_ranks(query, database, block_size=block_size,
                      satellite_to_ground=SATELLITE_TO_GROUND in directions, near=near, want_best=want_best,
                      device=device)


def _check_directions(directions) -> Tuple[str, ...]:
    if isinstance(directions, str):
        directions = (directions,)
    directions = tuple(directions)
    bad = [d for d in directions if d not in DIRECTIONS]
    if bad or not directions:
        raise ValueError(f"directions must be a non-empty subset of {DIRECTIONS}; got {directions!r}")
    if GROUND_TO_SATELLITE not in directions:
        raise ValueError(f"directions must include {GROUND_TO_SATELLITE!r} (the paper's setting)")
    return directions


def evaluate_retrieval(query, database, ks: Iterable[int] = (1, 5, 10), percent: float = 1.0,
                       directions: Sequence[str] = (GROUND_TO_SATELLITE,),
                       block_size: Optional[int] = None, device: str = "auto") -> Dict[str, float]:
    """Recall@K and recall@top-1% of ground -> satellite retrieval.

    Args:
      query: float (Nq, dim) ground descriptors; query i matches database row i.
      database: float (Ndb, dim) satellite descriptors, Ndb >= Nq; rows after the
        first Nq are distractors (paper Fig. 6).
      ks: the K of recall@K.
      percent: the top-percent cut-off; K = int(0.01 * percent * Ndb) + 1 as
        CVM-Net/OriCNN (SAFA and Sample4Geo count one fewer or so).
      directions: ("ground_to_satellite",) or both directions; the
        satellite -> ground keys get the prefix "satellite_to_ground/"
        (queries: database rows 0..Nq-1; database: the Nq ground descriptors).
      block_size: query rows per block (see :func:`retrieval_ranks`).
      device: :data:`RETRIEVAL_DEVICES` (module docstring).

    Returns:
      dict of fractions 0..1, e.g. {"recall@1", "recall@5", "recall@10",
      "recall@1%", ...}; see :func:`summarize_ranks` for all keys.
    """
    result = compute_ranks(query, database, directions=directions, block_size=block_size, device=device)
    return summarize_ranks(result, ks=ks, percent=percent)
