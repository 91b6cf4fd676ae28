"""Large-area localization on a geo-referenced map (paper section 5.5, Fig. 8 and Fig. 10).

The map is tessellated at a stride (metres) into square tiles of a given ground size
(metres); every tile gets a satellite descriptor; every ground panorama is assigned to the
tile with the most similar descriptor (dot product; descriptors are unit vectors) and its
error is the distance in metres between the panorama's true position and that tile's centre.
The paper used a 10 x 5 km Singapore map at 5 m steps, 512 x 512 patches, CVM-Net-I trained
on CVUSA: 67.1 % of the queries within 100 m, mean error 676.7 m.

Usage::

    python -m cvmnet_tf.localization --model runs/Model/cvm_net_i/12 --map_dir world_map \\
        --stride_m 5 --tile_m 100 --output_dir out/localization

Map folder (as written by :func:`cvmnet_tf.data.synthetic.write_map`):

- ``map.png`` (or .jpg): the map, north up, RGB;
- ``map.json``: ``metres_per_pixel``, ``origin_easting`` / ``origin_northing`` (metres) of
  the NORTH-WEST corner of pixel (0, 0); column = east, row = south; optional
  ``tile_extent_m`` (default tile size);
- ``panoramas.csv``: header ``path,easting,northing[,...]``, paths relative to the folder.

Pixel geometry: pixel (row, col) covers easting [E0 + col*m, E0 + (col+1)*m) and northing
(N0 - (row+1)*m, N0 - row*m]. Tile (r, c) covers pixel rows [r*s, r*s + n) and columns
[c*s, c*s + n) (n = round(tile_m / m), s = round(stride_m / m) pixels); its centre is
(E0 + (c*s + n/2)*m, N0 - (r*s + n/2)*m). Only tiles lying fully inside the map are used.

Outputs (``--output_dir``, each file written atomically after everything is computed):
``localization.json`` (metrics, grid, parameters), ``predictions.csv`` (per query: true
and predicted position, error in metres, best similarity), ``recall_vs_distance.png``
(Fig. 8), ``heatmap_<query>.png`` (Fig. 10: exp(similarity) over the map for the first
``--num_heatmaps`` queries), optionally ``tile_descriptors.npy`` + ``tile_centres.npy``.
Tile descriptors are computed batch by batch and never all held in memory (unless saved,
then through a memory-mapped file): memory is O(batch * tile pixels + queries * dim +
heatmap queries * tiles).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import contextlib
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from cvmnet_tf.utils import atomic_io

DEFAULT_THRESHOLDS_M = (25.0, 50.0, 100.0, 200.0, 500.0, 1000.0)
DEFAULT_TILE_M = 100.0  # the synthetic world's WorldConfig.tile_extent_m
PAPER_POINT = (100.0, 0.671)  # paper: 67.1 % within 100 m


@dataclasses.dataclass
class GeoMap:
    """A geo-referenced map: ``image`` uint8 (H, W, 3) RGB, north up; ``metres_per_pixel``;
    ``origin_easting`` / ``origin_northing``: metres of the north-west corner of pixel (0, 0)."""

    image: np.ndarray
    metres_per_pixel: float
    origin_easting: float
    origin_northing: float
    source: str = ""
    meta: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class TileGrid:
    """Tiles of ``tile_px`` x ``tile_px`` map pixels every ``stride_px`` pixels, rows x cols."""

    tile_px: int
    stride_px: int
    rows: int
    cols: int
    metres_per_pixel: float
    origin_easting: float
    origin_northing: float

    @property
    def num_tiles(self) -> int:
        return self.rows * self.cols

    @property
    def tile_m(self) -> float:
        return self.tile_px * self.metres_per_pixel

    @property
    def stride_m(self) -> float:
        return self.stride_px * self.metres_per_pixel

    def pixel_origin(self, index) -> np.ndarray:
        """(row0, col0) top-left pixel of tile ``index`` (row-major r * cols + c), int64 (..., 2)."""
        index = np.asarray(index, np.int64)
        return np.stack([(index // self.cols) * self.stride_px, (index % self.cols) * self.stride_px], -1)

    def centres(self, index=None) -> np.ndarray:
        """UTM (easting, northing) in metres of tile centres, float64 (N, 2) (all tiles by default)."""
        if index is None:
            index = np.arange(self.num_tiles)
        rc = self.pixel_origin(index).astype(np.float64) + self.tile_px / 2.0
        m = self.metres_per_pixel
        return np.stack([self.origin_easting + rc[..., 1] * m, self.origin_northing - rc[..., 0] * m], -1)

    def to_dict(self) -> dict:
        return {"tile_px": self.tile_px, "stride_px": self.stride_px, "rows": self.rows, "cols": self.cols,
                "num_tiles": self.num_tiles, "tile_m": self.tile_m, "stride_m": self.stride_m,
                "metres_per_pixel": self.metres_per_pixel}


def load_map(map_dir: str):
    """Read a map folder (module docstring). Returns ``(GeoMap, queries)`` with queries a
    list of ``(path, easting, northing)`` (absolute paths, metres)."""
    from PIL import Image

    if not os.path.isdir(map_dir):
        raise FileNotFoundError(f"--map_dir={map_dir!r} is not a folder")
    meta_file = os.path.join(map_dir, "map.json")
    if not os.path.isfile(meta_file):
        raise FileNotFoundError(f"--map_dir={map_dir!r}: map.json (the map's geo-reference) is missing")
    with open(meta_file, encoding="utf-8") as f:
        try:
            meta = json.load(f)
        except ValueError as exc:
            raise ValueError(f"{meta_file}: not valid JSON: {exc}") from None
    for key in ("metres_per_pixel", "origin_easting", "origin_northing"):
        value = meta.get(key)
        if not isinstance(value, (int, float)) or not np.isfinite(value):
            raise ValueError(f"{meta_file}: {key!r} must be a finite number, got {value!r}")
    if meta["metres_per_pixel"] <= 0:
        raise ValueError(f"{meta_file}: metres_per_pixel must be > 0, got {meta['metres_per_pixel']}")
    image_file = next((os.path.join(map_dir, n) for n in ("map.png", "map.jpg", "map.tif")
                       if os.path.isfile(os.path.join(map_dir, n))), None)
    if image_file is None:
        raise FileNotFoundError(f"--map_dir={map_dir!r}: no map.png / map.jpg / map.tif")
    Image.MAX_IMAGE_PIXELS = None  # real maps are large, and this file is the user's own
    with Image.open(image_file) as im:
        image = np.asarray(im.convert("RGB"), np.uint8)
    for key, size in (("width_px", image.shape[1]), ("height_px", image.shape[0])):
        if key in meta and int(meta[key]) != size:
            raise ValueError(f"{meta_file}: {key}={meta[key]} but {image_file} has {size}")
    geo = GeoMap(image, float(meta["metres_per_pixel"]), float(meta["origin_easting"]),
                 float(meta["origin_northing"]), source=map_dir, meta=meta)
    return geo, read_queries(os.path.join(map_dir, "panoramas.csv"))


def read_queries(csv_file: str) -> List[tuple]:
    """``panoramas.csv`` -> [(absolute path, easting, northing)]; errors name file and line."""
    if not os.path.isfile(csv_file):
        raise FileNotFoundError(f"query list {csv_file!r} is missing")
    base = os.path.dirname(os.path.abspath(csv_file))
    out = []
    with open(csv_file, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"path", "easting", "northing"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{csv_file}: header must contain path,easting,northing (missing {sorted(missing)})")
        for line, row in enumerate(reader, 2):
            try:
                e, n = float(row["easting"]), float(row["northing"])
            except (TypeError, ValueError):
                raise ValueError(f"{csv_file}:{line}: easting/northing must be numbers, got {row}") from None
            if not (np.isfinite(e) and np.isfinite(n)):
                raise ValueError(f"{csv_file}:{line}: easting/northing must be finite, got {e}, {n}")
            out.append((os.path.join(base, row["path"]), e, n))
    if not out:
        raise ValueError(f"{csv_file}: no query panoramas")
    return out


def make_tile_grid(geo: GeoMap, tile_m: float, stride_m: float) -> TileGrid:
    """The tiles of ``tile_m`` metres every ``stride_m`` metres that lie fully in the map.

    Tile and stride are rounded to whole map pixels (see :attr:`TileGrid.tile_m` /
    :attr:`TileGrid.stride_m` for the values used). Raises ValueError naming the flag.
    """
    m = geo.metres_per_pixel
    if not (np.isfinite(tile_m) and tile_m > 0):
        raise ValueError(f"--tile_m={tile_m}: must be a positive distance in metres")
    if not (np.isfinite(stride_m) and stride_m > 0):
        raise ValueError(f"--stride_m={stride_m}: must be a positive distance in metres")
    tile_px, stride_px = int(round(tile_m / m)), int(round(stride_m / m))
    if tile_px < 1:
        raise ValueError(f"--tile_m={tile_m} is less than one map pixel ({m} m)")
    if stride_px < 1:
        raise ValueError(f"--stride_m={stride_m} is less than one map pixel ({m} m)")
    h, w = geo.image.shape[:2]
    if tile_px > h or tile_px > w:
        raise ValueError(f"--tile_m={tile_m} ({tile_px} px) is larger than the map ({h} x {w} px, "
                         f"{h * m:g} x {w * m:g} m)")
    return TileGrid(tile_px, stride_px, (h - tile_px) // stride_px + 1, (w - tile_px) // stride_px + 1,
                    m, geo.origin_easting, geo.origin_northing)


def iter_tile_batches(geo: GeoMap, grid: TileGrid, batch_size: int):
    """Yield ``(indices int64 (B,), tiles uint8 (B, n, n, 3))`` in tile order (row-major)."""
    n = grid.tile_px
    for start in range(0, grid.num_tiles, batch_size):
        idx = np.arange(start, min(start + batch_size, grid.num_tiles))
        origins = grid.pixel_origin(idx)
        tiles = np.stack([geo.image[r:r + n, c:c + n] for r, c in origins])
        yield idx, tiles


def _check_descriptors(x, what: str, rows: int) -> np.ndarray:
    x = np.asarray(x, np.float32)
    if x.ndim != 2 or x.shape[0] != rows:
        raise ValueError(f"{what}: the model returned shape {x.shape}, expected ({rows}, dim)")
    if not np.isfinite(x).all():
        bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise ValueError(f"{what}: the model returned NaN or inf descriptors (row {bad})")
    return x


def encode_queries(encoder, paths: Sequence[str], batch_size: int = 16) -> np.ndarray:
    """Ground descriptors float32 (Nq, dim) of the panoramas ``paths`` (uint8 RGB read from
    disk; any size, the encoder preprocesses). Unreadable files raise ValueError naming them."""
    from cvmnet_tf.extract import _read_rgb

    out, batch = [], []

    def flush():
        if batch:
            out.append(_check_descriptors(encoder.ground(np.stack(batch)), "ground panoramas", len(batch)))
            batch.clear()

    for p in paths:
        image = _read_rgb(p)
        if image is None:
            raise ValueError(f"query panorama {p!r} cannot be read")
        if batch and (image.shape != batch[0].shape or len(batch) >= batch_size):
            flush()
        batch.append(image)
    flush()
    return np.concatenate(out)


def localize(encoder, geo: GeoMap, grid: TileGrid, query_descriptors: np.ndarray, query_utm: np.ndarray, *,
             batch_size: int = 32, heatmap_queries: Sequence[int] = (), tile_descriptor_out=None,
             progress: bool = False) -> Dict[str, np.ndarray]:
    """Assign each query to its most similar tile (streaming over tile batches).

    Args:
      encoder: object with ``satellite(uint8 (B, n, n, 3)) -> (B, dim)`` (e.g.
        :func:`cvmnet_tf.extract.load_encoder`).
      query_descriptors: float32 (Nq, dim); query_utm: (Nq, 2) metres.
      heatmap_queries: query indices whose full similarity map is kept.
      tile_descriptor_out: optional writable array (num_tiles, dim) receiving the tile descriptors.

    Returns dict: ``best_index`` int64 (Nq,) (lowest tile index on ties), ``best_similarity``
    float32 (Nq,), ``predicted_utm`` float64 (Nq, 2), ``errors_m`` float64 (Nq,),
    ``similarity_maps`` float32 (len(heatmap_queries), rows, cols).
    """
    q = _check_descriptors(query_descriptors, "query descriptors", np.asarray(query_descriptors).shape[0])
    q_utm = np.asarray(query_utm, np.float64)
    if q_utm.shape != (q.shape[0], 2) or not np.isfinite(q_utm).all():
        raise ValueError(f"query_utm must be finite (Nq={q.shape[0]}, 2) metres, got shape {q_utm.shape}")
    if batch_size < 1:
        raise ValueError(f"--batch_size={batch_size}: must be >= 1")
    heat = [int(i) for i in heatmap_queries]
    if any(not 0 <= i < q.shape[0] for i in heat):
        raise ValueError(f"heatmap query indices {heat} out of range 0..{q.shape[0] - 1}")
    best = np.zeros(q.shape[0], np.int64)
    best_sim = np.full(q.shape[0], -np.inf, np.float32)
    maps = np.zeros((len(heat), grid.num_tiles), np.float32)
    bar = None
    if progress:
        import keras
        bar = keras.utils.Progbar(grid.num_tiles, unit_name="tile")
    for idx, tiles in iter_tile_batches(geo, grid, batch_size):
        d = _check_descriptors(encoder.satellite(tiles), f"map tiles {idx[0]}..{idx[-1]}", len(idx))
        if d.shape[1] != q.shape[1]:
            raise ValueError(f"tile descriptors have dim {d.shape[1]}, query descriptors {q.shape[1]}")
        if tile_descriptor_out is not None:
            tile_descriptor_out[idx] = d
        sim = q @ d.T  # (Nq, B)
        arg = np.argmax(sim, axis=1)  # first maximum: lowest index on ties
        val = sim[np.arange(q.shape[0]), arg]
        better = val > best_sim  # strictly: an earlier tile keeps a tie
        best[better] = idx[arg[better]]
        best_sim[better] = val[better]
        if heat:
            maps[:, idx] = sim[heat]
        if bar is not None:
            bar.update(int(idx[-1]) + 1)
    pred = grid.centres(best)
    diff = pred - q_utm
    return {"best_index": best, "best_similarity": best_sim, "predicted_utm": pred,
            "errors_m": np.sqrt(diff[:, 0] ** 2 + diff[:, 1] ** 2),
            "similarity_maps": maps.reshape(len(heat), grid.rows, grid.cols)}


def summarize(errors_m: np.ndarray, thresholds_m: Sequence[float] = DEFAULT_THRESHOLDS_M) -> dict:
    """{"recall@<d>m": fraction with error <= d, "mean_error_m", "median_error_m", ...}."""
    e = np.asarray(errors_m, np.float64)
    t = np.asarray(thresholds_m, np.float64)
    if e.ndim != 1 or e.size == 0 or not np.isfinite(e).all():
        raise ValueError("errors_m must be a non-empty 1-D array of finite metres")
    if t.ndim != 1 or t.size == 0 or (t < 0).any() or not np.isfinite(t).all():
        raise ValueError(f"--thresholds_m={list(thresholds_m)}: need distances >= 0 metres")
    from cvmnet_tf.evaluation.geo import recall_at_distance
    out = {f"recall@{d:g}m": float(r) for d, r in zip(t, recall_at_distance(e, t))}
    out.update(mean_error_m=float(e.mean()), median_error_m=float(np.median(e)),
               max_error_m=float(e.max()), num_queries=int(e.size))
    return out


def plot_heatmap(geo: GeoMap, grid: TileGrid, similarity_map: np.ndarray, path: str, *,
                 true_utm=None, predicted_utm=None, title: Optional[str] = None,
                 size_px=(900, 700)) -> str:
    """Paper Fig. 10: exp(similarity) of every tile (min-max scaled) over the map (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sim = np.asarray(similarity_map, np.float64)
    if sim.shape != (grid.rows, grid.cols):
        raise ValueError(f"similarity map shape {sim.shape} != tile grid ({grid.rows}, {grid.cols})")
    heat = np.exp(sim - sim.max())
    heat = (heat - heat.min()) / max(heat.max() - heat.min(), 1e-12)
    m = geo.metres_per_pixel
    h, w = geo.image.shape[:2]
    extent = (geo.origin_easting, geo.origin_easting + w * m, geo.origin_northing - h * m, geo.origin_northing)
    c = grid.centres(np.array([0, grid.num_tiles - 1]))
    half = grid.stride_m / 2.0
    heat_extent = (c[0, 0] - half, c[1, 0] + half, c[1, 1] - half, c[0, 1] + half)
    fig = Figure(figsize=(size_px[0] / 100, size_px[1] / 100), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(geo.image, extent=extent, interpolation="nearest")
    im = ax.imshow(heat, extent=heat_extent, cmap="jet", alpha=0.55, interpolation="nearest", vmin=0, vmax=1)
    if true_utm is not None:
        ax.plot([true_utm[0]], [true_utm[1]], marker="*", color="white", markeredgecolor="black",
                markersize=16, linestyle="none", label="true position")
    if predicted_utm is not None:
        ax.plot([predicted_utm[0]], [predicted_utm[1]], marker="x", color="red", markersize=12,
                markeredgewidth=3, linestyle="none", label="best tile")
    if true_utm is not None or predicted_utm is not None:
        ax.legend(loc="upper right")
    ax.set_xlabel("easting (m)")
    ax.set_ylabel("northing (m)")
    ax.ticklabel_format(useOffset=False, style="plain")
    fig.colorbar(im, ax=ax, label="exp(similarity), scaled to 0..1")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    with atomic_io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def run_localization(model, map_dir: str, output_dir: str, stride_m: float, tile_m: Optional[float] = None, *,
                     thresholds_m: Sequence[float] = DEFAULT_THRESHOLDS_M, batch_size: int = 32,
                     num_heatmaps: int = 3, dataset: Optional[str] = None,
                     save_tile_descriptors: bool = False, progress: bool = True) -> dict:
    """The whole experiment; writes the output files (module docstring).

    Returns ``(summary, result)``: the metrics dict (plus "grid") and :func:`localize`'s dict.

    ``model``: a SavedModel / checkpoint path, or an encoder object (``satellite`` and
    ``ground`` methods on uint8 batches). ``tile_m`` default: map.json's
    ``tile_extent_m``, else 100 m.
    """
    from cvmnet_tf.extract import load_encoder

    thresholds_m = [float(t) for t in thresholds_m]
    summarize(np.zeros(1), thresholds_m)  # validates the thresholds before any work
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"--output_dir={output_dir!r} exists and is not a folder")
    geo, queries = load_map(map_dir)
    tile_m = float(tile_m if tile_m is not None else geo.meta.get("tile_extent_m", DEFAULT_TILE_M))
    grid = make_tile_grid(geo, tile_m, stride_m)
    encoder = load_encoder(model, dataset) if isinstance(model, (str, os.PathLike)) else model
    q_utm = np.array([[e, n] for _, e, n in queries], np.float64)
    q_desc = encode_queries(encoder, [p for p, _, _ in queries], batch_size)
    heat = list(range(min(int(num_heatmaps), len(queries))))
    tile_out = None
    if save_tile_descriptors:
        os.makedirs(output_dir, exist_ok=True)
    tile_file = os.path.join(output_dir, "tile_descriptors.npy")
    with contextlib.ExitStack() as stack:
        if save_tile_descriptors:
            tile_tmp = stack.enter_context(atomic_io.atomic_path(tile_file))
            tile_out = np.lib.format.open_memmap(tile_tmp, mode="w+", dtype=np.float32,
                                                 shape=(grid.num_tiles, q_desc.shape[1]))
        res = localize(encoder, geo, grid, q_desc, q_utm, batch_size=batch_size, heatmap_queries=heat,
                       tile_descriptor_out=tile_out, progress=progress)
        summary = summarize(res["errors_m"], thresholds_m)
        os.makedirs(output_dir, exist_ok=True)
        report = {"metrics": summary, "grid": grid.to_dict(), "map_dir": os.path.abspath(map_dir),
                  "requested_tile_m": tile_m, "requested_stride_m": float(stride_m),
                  "model": model if isinstance(model, str) else type(model).__name__,
                  "paper": {"recall@100m": 0.671, "mean_error_m": 676.7,
                            "setting": "10 x 5 km Singapore map, 5 m stride, CVM-Net-I trained on CVUSA"},
                  "similarity": "dot product of the descriptors; best tile = argmax (lowest index on ties)"}
        rows = ["query,true_easting,true_northing,pred_easting,pred_northing,error_m,best_tile,best_similarity"]
        for i, (p, e, n) in enumerate(queries):
            pe, pn = res["predicted_utm"][i]
            rows.append(f"{os.path.relpath(p, map_dir)},{e:.3f},{n:.3f},{pe:.3f},{pn:.3f},"
                        f"{res['errors_m'][i]:.3f},{int(res['best_index'][i])},{res['best_similarity'][i]:.6f}")
        from cvmnet_tf.evaluation import plots
        grid_t = sorted(set(thresholds_m) | set(np.linspace(0, max(thresholds_m), 41).tolist()))
        rec = [float(np.mean(res["errors_m"] <= t)) for t in grid_t]
        plots.plot_recall_vs_distance(grid_t, rec, os.path.join(output_dir, "recall_vs_distance.png"),
                                      title=f"Localization: {len(queries)} queries, {grid.num_tiles} tiles, "
                                            f"stride {grid.stride_m:g} m")
        for k, qi in enumerate(heat):
            plot_heatmap(geo, grid, res["similarity_maps"][k], os.path.join(output_dir, f"heatmap_{qi:05d}.png"),
                         true_utm=q_utm[qi], predicted_utm=res["predicted_utm"][qi],
                         title=f"query {qi}: error {res['errors_m'][qi]:.1f} m")
        if tile_out is not None:
            tile_out.flush()
            del tile_out  # the memmap is renamed onto tile_descriptors.npy when the block ends
            with atomic_io.atomic_path(os.path.join(output_dir, "tile_centres.npy")) as tmp:
                with open(tmp, "wb") as f:
                    np.save(f, grid.centres())
        atomic_io.write_text(os.path.join(output_dir, "predictions.csv"), "\n".join(rows) + "\n")
        atomic_io.write_json(os.path.join(output_dir, "localization.json"), report)
    return dict(summary, **{"grid": grid.to_dict()}), res


def main(argv=None):
    from absl import app, flags

    flags.DEFINE_string("model", None, "SavedModel folder, checkpoint folder or .keras file.")
    flags.DEFINE_string("map_dir", None, "Map folder: map.png, map.json, panoramas.csv (cvmnet_tf.data.synthetic write_map).")
    flags.DEFINE_float("stride_m", None, "Distance between tile centres in metres (paper: 5).")
    flags.DEFINE_float("tile_m", None, "Tile side on the ground in metres (default: map.json tile_extent_m, else 100).")
    flags.DEFINE_string("output_dir", None, "Folder for localization.json, predictions.csv and the PNGs.")
    flags.DEFINE_list("thresholds_m", [str(int(t)) for t in DEFAULT_THRESHOLDS_M], "Recall thresholds in metres.")
    flags.DEFINE_integer("batch_size", 32, "Tiles per forward pass.")
    flags.DEFINE_integer("num_heatmaps", 3, "Heatmaps for the first N queries.")
    flags.DEFINE_enum("dataset", None, ["cvusa", "cvact", "vohays"], "Ground preprocessing (checkpoints only).")
    flags.DEFINE_boolean("save_tile_descriptors", False, "Also write tile_descriptors.npy and tile_centres.npy.")
    flags.mark_flags_as_required(["model", "map_dir", "stride_m", "output_dir"])

    def run(_):
        f = flags.FLAGS
        try:
            thresholds = [float(t) for t in f.thresholds_m]
        except ValueError:
            raise app.UsageError(f"--thresholds_m={f.thresholds_m}: need numbers (metres)") from None
        try:
            summary, _ = run_localization(f.model, f.map_dir, f.output_dir, f.stride_m, f.tile_m,
                                          thresholds_m=thresholds, batch_size=f.batch_size,
                                          num_heatmaps=f.num_heatmaps, dataset=f.dataset,
                                          save_tile_descriptors=f.save_tile_descriptors)
        except (ValueError, FileNotFoundError) as exc:
            raise app.UsageError(str(exc)) from None
        print(json.dumps(summary, indent=1, sort_keys=True))

    app.run(run, argv=argv)


if __name__ == "__main__":
    main()
