"""Query a tile index with ground images: top-K tiles with coordinates, CSV / JSON / PNG.

Similarity is the dot product of descriptors (cosine for the unit-norm descriptors of
cvmnet_tf's models); the ranked list is by decreasing similarity, ties by increasing
tile row (the stable order), so the top-1 is ``argmax`` with the lowest row on ties.
The database is scanned in blocks of tile rows (``block_bytes`` bounds the float32
query x block similarities), with a running top-K per query.

Outputs of :func:`query_index_files` (each written atomically, after every query is done):

- ``results.csv``: one row per (query, rank): ``query,rank,tile,similarity,easting,
  northing,lat,lon,true_easting,true_northing,distance_to_truth_m`` (metres in the
  index CRS; empty cells where unknown);
- ``results.json``: the index, model fingerprint, similarity rule, per query the top-K
  (tile, similarity, easting/northing, lat/lon), the error of the top-1 when the true
  position is known, and the skipped (unreadable) query images;
- ``report_<n>_<query name>.png`` per query (:mod:`cvmnet_tf.georef.report`).
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
from typing import Callable, List, Optional, Sequence

import numpy as np

from cvmnet_tf.utils import atomic_io
from cvmnet_tf.data.splits import IMAGE_EXTENSIONS
from cvmnet_tf.georef.index import TileIndex, load_index
from cvmnet_tf.georef.tables import LocatedImages, read_located_csv

log = logging.getLogger("cvmnet_tf.georef")
DEFAULT_BLOCK_BYTES = 128 << 20


@dataclasses.dataclass
class QueryResult:
    """One query. top_index int64 (K,) tile rows, best first; top_similarity float32 (K,);
    similarities float32 (N,) over every tile (kept for reports) or None; true_xy float64
    (2,) metres in the index CRS or None."""

    path: str
    top_index: np.ndarray
    top_similarity: np.ndarray
    similarities: Optional[np.ndarray] = None
    true_xy: Optional[np.ndarray] = None

    @property
    def best_index(self) -> int:
        return int(self.top_index[0])


def list_query_images(path: str) -> List[str]:
    """A file -> [file]; a folder -> its images (.jpg/.jpeg/.png, any case), sorted."""
    if os.path.isfile(path):
        return [os.path.abspath(path)]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"query {path!r} is neither an image file nor a folder")
    files = sorted(os.path.join(path, f) for f in os.listdir(path)
                   if f.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(path, f)))
    if not files:
        raise ValueError(f"query folder {path!r} holds no image ({', '.join(IMAGE_EXTENSIONS)})")
    return [os.path.abspath(f) for f in files]


def top_k_search(index: TileIndex, queries: np.ndarray, top_k: int, *, keep_similarities: bool = True,
                 block_bytes: int = DEFAULT_BLOCK_BYTES):
    """Blocked exact search. Returns ``(top_index int64 (Nq, K), top_similarity float32
    (Nq, K), similarities float32 (Nq, N) or None)``; K = min(top_k, N)."""
    q = np.ascontiguousarray(queries, np.float32)
    d = index.descriptors
    if q.ndim != 2 or q.shape[1] != d.shape[1]:
        raise ValueError(f"query descriptors {q.shape} do not match the index's dim {d.shape[1]}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k={top_k!r} must be a positive integer")
    n, k = d.shape[0], min(int(top_k), d.shape[0])
    b = max(1, int(block_bytes) // (4 * max(len(q), 1)))
    top_i = np.zeros((len(q), 0), np.int64)
    top_s = np.zeros((len(q), 0), np.float32)
    sims = np.empty((len(q), n), np.float32) if keep_similarities else None
    for start in range(0, n, b):
        block = np.asarray(d[start:start + b], np.float32)
        s = q @ block.T
        if sims is not None:
            sims[:, start:start + len(block)] = s
        cand_s = np.concatenate([top_s, s], axis=1)
        cand_i = np.concatenate([top_i, np.broadcast_to(np.arange(start, start + len(block)), s.shape)], axis=1)
        # stable sort of -similarity: equal similarities keep the lower tile row first
        order = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        top_s = np.take_along_axis(cand_s, order, 1)
        top_i = np.take_along_axis(cand_i, order, 1)
    return top_i, top_s, sims


def _match_truth(paths: Sequence[str], truth: Optional[LocatedImages]):
    if truth is None:
        return [None] * len(paths)
    by_path = {os.path.realpath(p): xy for p, xy in zip(truth.paths, truth.xy)}
    by_name = {}
    for p, xy in zip(truth.paths, truth.xy):
        by_name.setdefault(os.path.basename(p), []).append(xy)
    out = []
    for p in paths:
        xy = by_path.get(os.path.realpath(p))
        if xy is None and len(by_name.get(os.path.basename(p), [])) == 1:
            xy = by_name[os.path.basename(p)][0]
        out.append(None if xy is None else np.asarray(xy, np.float64))
    return out


def run_queries(index: TileIndex, encoder: Callable[[np.ndarray], np.ndarray], paths: Sequence[str], *,
                top_k: int = 5, truth: Optional[LocatedImages] = None, batch_size: int = 16,
                keep_similarities: bool = True, block_bytes: int = DEFAULT_BLOCK_BYTES):
    """Encode ground images (``encoder``: uint8 (B, H, W, 3) RGB -> float (B, dim)) and
    search the index. Returns ``(results [QueryResult], skipped [(path, reason)])``;
    unreadable images are skipped and reported."""
    from cvmnet_tf.inference.encoders import encode_image_files

    desc, kept, bad = encode_image_files(lambda x: np.asarray(encoder(x), np.float32), list(paths), batch_size,
                                         "query")
    if not np.isfinite(desc).all():
        raise ValueError("the ground encoder returned NaN or inf descriptors")
    kept_paths = [paths[i] for i in kept]
    top_i, top_s, sims = top_k_search(index, desc, top_k, keep_similarities=keep_similarities,
                                      block_bytes=block_bytes)
    truths = _match_truth(kept_paths, truth)
    results = [QueryResult(p, top_i[j], top_s[j], None if sims is None else sims[j], truths[j])
               for j, p in enumerate(kept_paths)]
    return results, [(p, "unreadable image") for _, p in bad]


def _fmt(v, spec):
    return "" if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, spec)


def result_rows(index: TileIndex, result: QueryResult) -> List[dict]:
    """The top-K of one query as dicts (the CSV/JSON fields)."""
    rows = []
    for rank, (t, s) in enumerate(zip(result.top_index, result.top_similarity), 1):
        x, y = index.xy[t]
        lat, lon = index.latlon[t]
        dist = None if result.true_xy is None else float(np.hypot(x - result.true_xy[0], y - result.true_xy[1]))
        rows.append({"rank": rank, "tile": index.names[t], "tile_index": int(t), "similarity": float(s),
                     "easting": float(x), "northing": float(y),
                     "lat": None if not np.isfinite(lat) else float(lat),
                     "lon": None if not np.isfinite(lon) else float(lon), "distance_to_truth_m": dist})
    return rows


def write_results(index: TileIndex, results: Sequence[QueryResult], skipped, output_dir: str) -> dict:
    """Write ``results.csv`` and ``results.json`` (module docstring); returns their paths
    (``csv``, ``json``), the ``summary`` and the per-query ``queries`` (as in the JSON)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["query", "rank", "tile", "similarity", "easting", "northing", "lat", "lon", "true_easting",
                "true_northing", "distance_to_truth_m"])
    queries = []
    for r in results:
        rows = result_rows(index, r)
        tx, ty = (None, None) if r.true_xy is None else (float(r.true_xy[0]), float(r.true_xy[1]))
        for row in rows:
            w.writerow([r.path, row["rank"], row["tile"], f"{row['similarity']:.6f}", f"{row['easting']:.3f}",
                        f"{row['northing']:.3f}", _fmt(row["lat"], ".7f"), _fmt(row["lon"], ".7f"),
                        _fmt(tx, ".3f"), _fmt(ty, ".3f"), _fmt(row["distance_to_truth_m"], ".3f")])
        queries.append({"query": r.path, "top_k": rows, "true_easting": tx, "true_northing": ty,
                        "error_m": rows[0]["distance_to_truth_m"]})
    errors = [q["error_m"] for q in queries if q["error_m"] is not None]
    summary = {"num_queries": len(queries), "num_skipped": len(skipped), "num_tiles": index.num_tiles,
               "num_distinct_best_tiles": len({q["top_k"][0]["tile_index"] for q in queries})}
    if errors:
        # what a random tile gives: the mean distance from the truth to every tile centre
        chance = [float(np.mean(np.hypot(index.xy[:, 0] - r.true_xy[0], index.xy[:, 1] - r.true_xy[1])))
                  for r in results if r.true_xy is not None]
        summary.update(mean_error_m=float(np.mean(errors)), median_error_m=float(np.median(errors)),
                       num_with_truth=len(errors), chance_mean_error_m=float(np.mean(chance)))
    doc = {"index": os.path.abspath(index.path), "kind": index.kind, "crs": index.crs,
           "model_fingerprint": index.meta["model_fingerprint"], "preprocessing": index.meta["preprocessing"],
           "similarity": "dot product; ranked by decreasing similarity, ties by tile row",
           "coordinates": "easting/northing: metres in the index CRS (tile centres); lat/lon: WGS84 degrees",
           "summary": summary, "queries": queries, "skipped": [{"path": p, "reason": why} for p, why in skipped]}
    paths = {"csv": os.path.join(output_dir, "results.csv"), "json": os.path.join(output_dir, "results.json")}
    with atomic_io.atomic_paths(paths) as tmp:
        with open(tmp["csv"], "w", encoding="utf-8") as f:
            f.write(buf.getvalue())
        with open(tmp["json"], "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
    return dict(paths, summary=summary, queries=queries)


def query_index_files(index_path: str, encoder, queries: str, output_dir: str, *, model_fingerprint: str,
                      preprocessing: dict, top_k: int = 5, truth_csv: Optional[str] = None, crs: Optional[str] = None,
                      reports: bool = True, max_reports: Optional[int] = None, batch_size: int = 16,
                      block_bytes: int = DEFAULT_BLOCK_BYTES) -> dict:
    """The whole query step (what ``cvmnet-query search`` runs): load the index (refusing
    another model), encode ``queries`` (a file or folder), write CSV/JSON and one PNG
    report per query (up to ``max_reports``). ``truth_csv`` (optional): true positions
    (:mod:`cvmnet_tf.georef.tables` columns; ``crs`` for its easting/northing, default the
    index CRS). Returns the written paths (``csv``, ``json``, ``reports``), the
    ``summary`` and the per-query results (``queries``)."""
    index = load_index(index_path, model_fingerprint, preprocessing)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"output folder {output_dir!r} exists and is not a folder")
    paths = list_query_images(queries)
    truth = None
    if truth_csv is not None:
        truth = read_located_csv(truth_csv, crs if crs is not None else index.crs, check_files=False,
                                 what="true positions")
        if (truth.crs or None) != (index.crs or None):
            raise ValueError(f"{truth_csv}: positions are in {truth.crs or 'a local frame'}, the index in "
                             f"{index.crs or 'a local frame'}; give easting/northing in the index CRS")
    results, skipped = run_queries(index, encoder, paths, top_k=top_k, truth=truth, batch_size=batch_size,
                                   keep_similarities=reports, block_bytes=block_bytes)
    out = write_results(index, results, skipped, output_dir)
    out["reports"] = []
    if reports:
        from cvmnet_tf.georef import report

        raster = report.load_map_for(index)
        for j, r in enumerate(results[:max_reports]):
            name = os.path.splitext(os.path.basename(r.path))[0]
            png = os.path.join(output_dir, f"report_{j:04d}_{name}.png")
            report.plot_query_report(index, r, png, raster=raster)
            out["reports"].append(png)
    return out
