"""Large-area localization on a geo-referenced map (paper section 5.5, Fig. 8 and Fig. 10).

The map (:mod:`.geomap`) is tessellated at a stride (metres) into square tiles of a given
ground size (metres); every tile gets a satellite descriptor; every ground panorama is
assigned to the tile with the most similar descriptor (dot product; descriptors are unit
vectors) and its error is the distance in metres between the panorama's true position and
that tile's centre. The paper used a 10 x 5 km Singapore map at 5 m steps, 512 x 512
patches, CVM-Net-I trained on CVUSA (:data:`cvmnet_tf.evaluation.published.LOCALIZATION`).

Outputs of :func:`run_localization` (each file written atomically after everything is
computed): ``localization.json`` (metrics, grid, parameters, the paper's figures),
``predictions.csv`` (per query: true and predicted position, error in metres, best
similarity, the expected error of a random tile), ``recall_vs_distance.png`` (Fig. 8,
with the random-tile curve), ``heatmap_<query>.png`` (Fig. 10:
exp(similarity) over the map for the first ``num_heatmaps`` queries), optionally
``tile_descriptors.npy`` + ``tile_centres.npy``. Tile descriptors are computed batch by
batch and never all held in memory (unless saved, then through a memory-mapped file):
memory is O(batch * tile pixels + queries * dim + heatmap queries * tiles).

Chance level: every figure comes with what a uniformly random tile gives
(:func:`random_tile_baseline`, exact, the summary's "random_tile" entry):
on a small map even a model at chance has a modest mean error.
"""

from __future__ import annotations

import contextlib
import os
from typing import Dict, Optional, Sequence

import numpy as np

from cvmnet_tf.evaluation import geo as geo_metrics
from cvmnet_tf.evaluation.geo import DEFAULT_LOCALIZATION_THRESHOLDS_M, errors_from_best, localization_summary
from cvmnet_tf.evaluation.geomap import DEFAULT_TILE_M, GeoMap, TileGrid, iter_tile_batches, load_map, make_tile_grid
from cvmnet_tf.evaluation.tile_votes import (DECISION_RULES, DEFAULT_VOTE_SIGMA_M, DEFAULT_VOTE_TOP_K, TopTiles,
                                             check_decision, describe_decision, vote_for_tiles)
from cvmnet_tf.utils import atomic_io

__all__ = ["DECISION_RULES", "DEFAULT_VOTE_TOP_K", "DEFAULT_VOTE_SIGMA_M", "localize", "run_localization",
           "encode_queries", "random_tile_baseline", "baseline_line", "summary_lines"]


def encode_queries(encoder, paths: Sequence[str], batch_size: int = 16) -> np.ndarray:
    """Ground descriptors float32 (Nq, dim) of the panoramas ``paths`` (uint8 RGB read from
    disk; any size, the encoder preprocesses). Unreadable files raise ValueError naming them."""
    from cvmnet_tf.inference.encoders import encode_image_files

    desc, _, _ = encode_image_files(encoder.ground, paths, batch_size, "query panorama", skip_unreadable=False)
    return desc


def localize(encoder, geo: GeoMap, grid: TileGrid, query_descriptors: np.ndarray, query_utm: np.ndarray, *,
             batch_size: int = 32, heatmap_queries: Sequence[int] = (), tile_descriptor_out=None,
             progress: bool = False, decision: str = "argmax", vote_top_k: int = DEFAULT_VOTE_TOP_K,
             vote_sigma_m: float = DEFAULT_VOTE_SIGMA_M) -> Dict[str, np.ndarray]:
    """Assign each query to one tile (streaming over tile batches): its most similar tile
    (``decision="argmax"``) or the tile among its ``vote_top_k`` most similar ones whose centre
    collects the most Gaussian votes of ``vote_sigma_m`` metres from the others
    (``decision="votes"``, :mod:`cvmnet_tf.evaluation.tile_votes`; memory
    O(queries x (vote_top_k + batch_size))).

    Args:
      encoder: object with ``satellite(uint8 (B, n, n, 3)) -> (B, dim)`` (e.g.
        :func:`cvmnet_tf.inference.load_encoder`).
      query_descriptors: float32 (Nq, dim); query_utm: (Nq, 2) metres.
      heatmap_queries: query indices whose full similarity map is kept.
      tile_descriptor_out: optional writable array (num_tiles, dim) receiving the tile descriptors.

    Returns dict: ``best_index`` int64 (Nq,) (the chosen tile; lowest tile index on ties),
    ``best_similarity`` float32 (Nq,) (its similarity), ``predicted_utm`` float64 (Nq, 2),
    ``errors_m`` float64 (Nq,), ``similarity_maps`` float32 (len(heatmap_queries), rows, cols).
    """
    from cvmnet_tf.evaluation.metrics import check_descriptors
    from cvmnet_tf.inference.encoders import check_encoder_output

    q = check_descriptors(query_descriptors, "query descriptors")
    q_utm = np.asarray(query_utm, np.float64)
    if q_utm.shape != (q.shape[0], 2) or not np.isfinite(q_utm).all():
        raise ValueError(f"query_utm must be finite (Nq={q.shape[0]}, 2) metres, got shape {q_utm.shape}")
    if batch_size < 1:
        raise ValueError(f"--batch_size={batch_size}: must be >= 1")
    check_decision(decision, vote_top_k, vote_sigma_m)
    heat = [int(i) for i in heatmap_queries]
    if any(not 0 <= i < q.shape[0] for i in heat):
        raise ValueError(f"heatmap query indices {heat} out of range 0..{q.shape[0] - 1}")
    maps = np.zeros((len(heat), grid.num_tiles), np.float32)
    top = TopTiles(q.shape[0], vote_top_k if decision == "votes" else 1)  # argmax: the top 1
    bar = None
    if progress:
        import keras
        bar = keras.utils.Progbar(grid.num_tiles, unit_name="tile")
    for idx, tiles in iter_tile_batches(geo, grid, batch_size):
        d = check_encoder_output(encoder.satellite(tiles), f"map tiles {idx[0]}..{idx[-1]}", len(idx))
        if d.shape[1] != q.shape[1]:
            raise ValueError(f"tile descriptors have dim {d.shape[1]}, query descriptors {q.shape[1]}")
        if tile_descriptor_out is not None:
            tile_descriptor_out[idx] = d
        sim = q @ d.T  # (Nq, B)
        top.update(sim, idx)
        if heat:
            maps[:, idx] = sim[heat]
        if bar is not None:
            bar.update(int(idx[-1]) + 1)
    column = vote_for_tiles(grid.centres(top.index), vote_sigma_m) if decision == "votes" else \
        np.zeros(q.shape[0], np.int64)
    rows = np.arange(q.shape[0])
    best, best_sim = top.index[rows, column], top.similarity[rows, column]
    pred = grid.centres(best)
    return {"best_index": best, "best_similarity": best_sim, "predicted_utm": pred,
            "errors_m": errors_from_best(np.arange(len(best)), q_utm, pred),
            "similarity_maps": maps.reshape(len(heat), grid.rows, grid.cols)}


def random_tile_baseline(grid: TileGrid, query_utm, thresholds_m: Sequence[float] = DEFAULT_LOCALIZATION_THRESHOLDS_M,
                         block: int = 64) -> Dict[str, float]:
    """What a uniformly random tile of ``grid`` scores for the queries at ``query_utm`` ((Nq, 2)
    metres), exactly (an expectation, no sampling): ``recall@<d>m`` = mean over queries of
    the fraction of tile centres within d metres, ``mean_error_m`` = mean distance to all tile
    centres, ``median_error_m`` = median of all those distances
    (:func:`cvmnet_tf.evaluation.geo.random_tile_baseline`, ``block`` queries x all tiles at a
    time). The chance level to quote beside a localization result."""
    out = geo_metrics.random_tile_baseline(query_utm, grid.centres(), thresholds_m, prefix="",
                                   max_pairs=max(int(block), 1) * grid.num_tiles)
    return {key[len("random_tile/"):]: value for key, value in out.items()}


def baseline_line(summary: dict, distance_m: float = 100.0) -> str:
    """One line: recall within ``distance_m`` and mean error, each beside a random tile's
    (``summary``: :func:`run_localization`'s, with its "random_tile" entry)."""
    key, chance = f"recall@{float(distance_m):g}m", summary["random_tile"]
    parts = []
    if key in summary:
        ratio = summary[key] / chance[key] if chance[key] > 0 else float("inf")
        parts.append(f"recall within {distance_m:g} m {100 * summary[key]:.1f}% (a random tile: "
                     f"{100 * chance[key]:.1f}%, {ratio:.2f}x)")
    parts.append(f"mean error {summary['mean_error_m']:.1f} m (a random tile: {chance['mean_error_m']:.1f} m)")
    return "; ".join(parts)


def _predictions_csv(queries, res, map_dir, random_errors) -> str:
    rows = ["query,true_easting,true_northing,pred_easting,pred_northing,error_m,best_tile,best_similarity,"
            "random_tile_mean_error_m"]
    for i, (p, e, n) in enumerate(queries):
        pe, pn = res["predicted_utm"][i]
        rows.append(f"{os.path.relpath(p, map_dir)},{e:.3f},{n:.3f},{pe:.3f},{pn:.3f},"
                    f"{res['errors_m'][i]:.3f},{int(res['best_index'][i])},{res['best_similarity'][i]:.6f},"
                    f"{random_errors[i]:.3f}")
    return "\n".join(rows) + "\n"


def summary_lines(summary: dict) -> list:
    """Human-readable lines: every figure of a :func:`run_localization` summary beside its
    random-tile value (its "random_tile" entry) and, where published, the paper's
    (:data:`cvmnet_tf.evaluation.published.LOCALIZATION`); a last WARNING line when the mean
    error is no better than 0.9 x a random tile's."""
    from cvmnet_tf.evaluation.published import LOCALIZATION

    paper = {"recall@100m": f"{LOCALIZATION['recall_within_100m_percent']:.1f}%",
             "mean_error_m": f"{LOCALIZATION['mean_error_m']:.1f} m"}
    chance_of = summary.get("random_tile") or {}
    lines = []
    for name, value in summary.items():
        chance = chance_of.get(name)
        if chance is None:
            continue
        if name.startswith("recall@"):
            text = f"{name:<14} {100 * value:6.1f}%   random tile {100 * chance:6.1f}%"
        elif name in ("mean_error_m", "median_error_m"):
            text = f"{name[:-2].replace('_', ' '):<14} {value:6.1f} m  random tile {chance:6.1f} m"
        else:
            continue
        if name in paper:
            text += f"   paper {paper[name]}"
        lines.append(text)
    mean, chance = summary.get("mean_error_m"), chance_of.get("mean_error_m")
    if mean is not None and chance and mean >= 0.9 * chance:
        lines.append(f"WARNING: the mean error {mean:.1f} m is {100 * mean / chance:.0f}% of a random tile's "
                     f"({chance:.1f} m): the model localizes at chance level here")
    return lines


def _decision_dict(decision: str, top_k: int, sigma_m: float) -> dict:
    out = {"rule": decision, "text": describe_decision(decision, top_k, sigma_m),
           "ties": "the lowest tile index" if decision == "argmax" else "the more similar tile"}
    if decision == "votes":
        out.update(top_k=int(top_k), sigma_m=float(sigma_m))
    return out


def _report(summary, grid, map_dir, tile_m, stride_m, model, decision: dict) -> dict:
    from cvmnet_tf.evaluation.published import LOCALIZATION, LOCALIZATION_SETTING

    return {"metrics": summary, "grid": grid.to_dict(), "map_dir": os.path.abspath(map_dir),
            "requested_tile_m": tile_m, "requested_stride_m": float(stride_m),
            "model": model if isinstance(model, str) else type(model).__name__,
            "paper": {"recall@100m": LOCALIZATION["recall_within_100m_percent"] / 100.0,
                      "mean_error_m": LOCALIZATION["mean_error_m"], "setting": LOCALIZATION_SETTING},
            "random_tile": "metrics.random_tile: the figures for a uniformly random tile per query (chance "
                           "level), exact expectations over the tile grid",
            "similarity": "dot product of the descriptors", "decision": decision}


def _plots(output_dir, geo, grid, queries, res, q_utm, heat, thresholds_m, rule: str) -> None:
    from cvmnet_tf.evaluation import plots

    grid_t = sorted(set(thresholds_m) | set(np.linspace(0, max(thresholds_m), 41).tolist()))
    rec = [float(np.mean(res["errors_m"] <= t)) for t in grid_t]
    chance = geo_metrics.random_tile_baseline(q_utm, grid.centres(), grid_t, prefix="")
    plots.plot_recall_vs_distance(grid_t, rec, os.path.join(output_dir, "recall_vs_distance.png"),
                                  title=f"Localization: {len(queries)} queries, {grid.num_tiles} tiles, "
                                        f"stride {grid.stride_m:g} m, {rule}",
                                  baseline=[chance[f"random_tile/recall@{t:g}m"] for t in grid_t])
    for k, qi in enumerate(heat):
        plots.plot_heatmap(geo, grid, res["similarity_maps"][k], os.path.join(output_dir, f"heatmap_{qi:05d}.png"),
                           true_utm=q_utm[qi], predicted_utm=res["predicted_utm"][qi],
                           title=f"query {qi}: error {res['errors_m'][qi]:.1f} m")


def run_localization(model, map_dir: str, output_dir: str, stride_m: float, tile_m: Optional[float] = None, *,
                     thresholds_m: Sequence[float] = DEFAULT_LOCALIZATION_THRESHOLDS_M, batch_size: int = 32,
                     num_heatmaps: int = 3, dataset: Optional[str] = None,
                     save_tile_descriptors: bool = False, progress: bool = True, precision: Optional[str] = None,
                     decision: str = "argmax", vote_top_k: int = DEFAULT_VOTE_TOP_K,
                     vote_sigma_m: float = DEFAULT_VOTE_SIGMA_M):
    """The whole experiment; writes the output files (module docstring).

    Returns ``(summary, result)``: the metrics dict (plus "random_tile": the same figures for a
    uniformly random tile, :func:`random_tile_baseline`, and "grid") and :func:`localize`'s dict.

    ``model``: a SavedModel / checkpoint path, or an encoder object (``satellite`` and
    ``ground`` methods on uint8 batches). ``tile_m`` default: map.json's
    ``tile_extent_m``, else 100 m. ``precision``: none / fp16 / bf16 for a checkpoint
    (:func:`cvmnet_tf.inference.encoders.load_encoder`; None: the model's own).
    ``decision``, ``vote_top_k``, ``vote_sigma_m``: the decision rule (:func:`localize`).
    """
    from cvmnet_tf.inference.encoders import load_encoder

    thresholds_m = [float(t) for t in thresholds_m]
    localization_summary(np.zeros(1), thresholds_m)  # validates the thresholds before any work
    check_decision(decision, vote_top_k, vote_sigma_m)
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"--output_dir={output_dir!r} exists and is not a folder")
    geo, queries = load_map(map_dir)
    tile_m = float(tile_m if tile_m is not None else geo.meta.get("tile_extent_m", DEFAULT_TILE_M))
    grid = make_tile_grid(geo, tile_m, stride_m)
    encoder = load_encoder(model, dataset, precision) if isinstance(model, (str, os.PathLike)) else model
    q_utm = np.array([[e, n] for _, e, n in queries], np.float64)
    q_desc = encode_queries(encoder, [p for p, _, _ in queries], batch_size)
    heat = list(range(min(int(num_heatmaps), len(queries))))
    tile_out = None
    if save_tile_descriptors:
        os.makedirs(output_dir, exist_ok=True)
    with contextlib.ExitStack() as stack:
        if save_tile_descriptors:
            tile_tmp = stack.enter_context(atomic_io.atomic_path(os.path.join(output_dir, "tile_descriptors.npy")))
            tile_out = np.lib.format.open_memmap(tile_tmp, mode="w+", dtype=np.float32,
                                                 shape=(grid.num_tiles, q_desc.shape[1]))
        res = localize(encoder, geo, grid, q_desc, q_utm, batch_size=batch_size, heatmap_queries=heat,
                       tile_descriptor_out=tile_out, progress=progress, decision=decision,
                       vote_top_k=vote_top_k, vote_sigma_m=vote_sigma_m)
        summary = localization_summary(res["errors_m"], thresholds_m, prefix="")
        summary["random_tile"] = random_tile_baseline(grid, q_utm, thresholds_m)
        os.makedirs(output_dir, exist_ok=True)
        _plots(output_dir, geo, grid, queries, res, q_utm, heat, thresholds_m,
               "argmax" if decision == "argmax" else f"votes of the top {int(vote_top_k)}, {float(vote_sigma_m):g} m")
        if tile_out is not None:
            tile_out.flush()
            del tile_out  # the memmap is renamed onto tile_descriptors.npy when the block ends
            with atomic_io.atomic_path(os.path.join(output_dir, "tile_centres.npy")) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, grid.centres())
        chance_errors = geo_metrics.random_tile_mean_errors(q_utm, grid.centres())
        atomic_io.write_text(os.path.join(output_dir, "predictions.csv"),
                             _predictions_csv(queries, res, map_dir, chance_errors))
        atomic_io.write_json(os.path.join(output_dir, "localization.json"),
                             _report(summary, grid, map_dir, tile_m, stride_m, model,
                                     _decision_dict(decision, vote_top_k, vote_sigma_m)))
    return dict(summary, **{"grid": grid.to_dict()}), res
