"""One PNG per query: the query, its top-K tiles, and the similarity over the database.

Layout (about 1500 x 1300 px): the query image and a summary line on top; the top-K
tiles with rank, similarity and coordinates (and the distance to the true position when
known); then, for a map index, the similarity of every tile drawn over the map (each tile
centre's cell coloured, the map visible underneath), for a tile-folder index a scatter of
the tile centres coloured by similarity. The best tile is a red cross, the other top-K
are numbered, the true position (when known) is a white star. The summary states what to
compare with: the similarity spread over the database (a collapsed model shows a spread
near 0), how many tiles tie with the best, and, when the truth is known, the mean error of
a random tile.
"""
from __future__ import annotations

import io
import os
from typing import Optional

import numpy as np

from cvmnet_tf.utils import atomic_io
from cvmnet_tf.georef.index import TileIndex
from cvmnet_tf.georef.maps import GeoRaster, read_map
from cvmnet_tf.georef.search import QueryResult

_MAX_MAP_PX = 1600  # the map is drawn subsampled to at most this many pixels a side


def load_map_for(index: TileIndex) -> Optional[GeoRaster]:
    """The map a map index was built from (for drawing), or None for a tile folder."""
    if index.kind != "map":
        return None
    return read_map(index.meta["source"], index.crs)


def _read_rgb(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), np.uint8)


def tile_image(index: TileIndex, row: int, raster: Optional[GeoRaster]) -> np.ndarray:
    """uint8 (h, w, 3) image of tile ``row``: cut from the map, or read from its file."""
    if index.kind == "map":
        if raster is None:
            raise ValueError("drawing map tiles needs the map (load_map_for(index))")
        grid = index.tile_grid()
        r0, c0 = grid.pixel_origin(row)
        return raster.image[r0:r0 + grid.tile_px, c0:c0 + grid.tile_px]
    return _read_rgb(index.names[row])


def _coord_text(index: TileIndex, row: int) -> str:
    lat, lon = index.latlon[row]
    if np.isfinite(lat):
        return f"{lat:.5f}, {lon:.5f}"
    x, y = index.xy[row]
    return f"E {x:.0f}  N {y:.0f}"


def _decimals(r: QueryResult) -> int:
    """Digits that tell the similarities apart: 3, more when they span little."""
    spread = float(r.similarities.max() - r.similarities.min()) if r.similarities is not None else 1.0
    return int(min(8, max(3, np.ceil(-np.log10(max(spread, 1e-12))) + 2)))


def _summary(index: TileIndex, r: QueryResult) -> str:
    best = r.best_index
    dec = _decimals(r)
    parts = [f"best tile {index.names[best] if index.kind == 'map' else os.path.basename(index.names[best])}"
             f" (similarity {r.top_similarity[0]:.{dec}f}) at {_coord_text(index, best)}"]
    if r.true_xy is not None:
        err = float(np.hypot(*(index.xy[best] - r.true_xy)))
        rand = float(np.mean(np.hypot(index.xy[:, 0] - r.true_xy[0], index.xy[:, 1] - r.true_xy[1])))
        parts.append(f"error {err:.1f} m (a random tile: {rand:.0f} m on average)")
    if r.similarities is not None:
        s = r.similarities
        ties = int(np.count_nonzero(s == r.top_similarity[0]))
        spread = float(s.max() - s.min())
        parts.append(f"similarity over {index.num_tiles} tiles: {s.min():.{dec}f} .. {s.max():.{dec}f}"
                     + (f" (spread {spread:.1e}: nearly constant, the model hardly tells tiles apart)"
                        if spread < 0.01 else "")
                     + (f"; {ties} tiles tie with the best" if ties > 1 else ""))
    return "\n".join(parts)


def _colorbar(fig, ax, mappable, r: QueryResult):
    from matplotlib.ticker import FormatStrFormatter

    cb = fig.colorbar(mappable, ax=ax, label="similarity of the tile centred here", shrink=0.85)
    cb.formatter = FormatStrFormatter(f"%.{_decimals(r)}f")   # plain numbers, no offset notation
    cb.update_ticks()
    return cb


def _draw_map(ax, fig, index: TileIndex, r: QueryResult, raster: GeoRaster):
    grid = index.tile_grid()
    step = max(1, int(np.ceil(max(raster.image.shape[:2]) / _MAX_MAP_PX)))
    ax.imshow(raster.image[::step, ::step], extent=raster.extent, interpolation="bilinear")
    sim = r.similarities.reshape(grid.rows, grid.cols)
    c = index.xy[[0, index.num_tiles - 1]]
    half = grid.stride_m / 2.0
    extent = (c[0, 0] - half, c[1, 0] + half, c[1, 1] - half, c[0, 1] + half)
    im = ax.imshow(sim, extent=extent, cmap="inferno", alpha=0.6, interpolation="nearest")
    _colorbar(fig, ax, im, r)
    w, e, s, n = raster.extent
    ax.set_xlim(w, e)
    ax.set_ylim(s, n)


def _draw_scatter(ax, fig, index: TileIndex, r: QueryResult):
    order = np.argsort(r.similarities, kind="stable")  # most similar drawn last (on top)
    size = float(np.clip(20000.0 / max(index.num_tiles, 1), 12, 220))
    sc = ax.scatter(index.xy[order, 0], index.xy[order, 1], c=r.similarities[order], cmap="inferno", s=size,
                    edgecolors="grey", linewidths=0.3)
    _colorbar(fig, ax, sc, r)
    ax.set_aspect("equal", adjustable="datalim")


def plot_query_report(index: TileIndex, result: QueryResult, path: str, *, raster: Optional[GeoRaster] = None,
                      title: Optional[str] = None) -> str:
    """Write the report PNG of one query (module docstring) to ``path`` atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.gridspec import GridSpec

    if result.similarities is None:
        raise ValueError("plot_query_report needs the similarities of every tile (run_queries(keep_similarities=True))")
    k = len(result.top_index)
    cols = max(k, 3)
    fig = Figure(figsize=(15, 13.5), dpi=100)
    FigureCanvasAgg(fig)
    gs = GridSpec(3, cols, figure=fig, height_ratios=[1.05, 1.25, 4.2], hspace=0.42, wspace=0.12,
                  left=0.08, right=0.97, top=0.9, bottom=0.07)
    fig.suptitle(title or f"query: {os.path.basename(result.path)}", fontsize=16, fontweight="bold")
    axq = fig.add_subplot(gs[0, :])
    axq.imshow(_read_rgb(result.path))
    axq.set_axis_off()
    axq.set_title(_summary(index, result), fontsize=11, loc="left")
    for j, (t, s) in enumerate(zip(result.top_index, result.top_similarity)):
        ax = fig.add_subplot(gs[1, j])
        ax.imshow(tile_image(index, int(t), raster))
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_color("red" if j == 0 else "black")
            side.set_linewidth(3 if j == 0 else 1)
        label = f"#{j + 1}  similarity {s:.{_decimals(result)}f}\n{_coord_text(index, int(t))}"
        if result.true_xy is not None:
            label += f"\n{np.hypot(*(index.xy[t] - result.true_xy)):.0f} m from the truth"
        ax.set_title(label, fontsize=10)
    ax = fig.add_subplot(gs[2, :])
    if index.kind == "map":
        if raster is None:
            raster = load_map_for(index)
        _draw_map(ax, fig, index, result, raster)
    else:
        _draw_scatter(ax, fig, index, result)
    for j, t in enumerate(result.top_index[1:], 2):
        x, y = index.xy[t]
        ax.annotate(str(j), (x, y), color="white", fontsize=11, fontweight="bold", ha="center", va="center",
                    bbox={"boxstyle": "circle,pad=0.2", "fc": "black", "ec": "white", "alpha": 0.8})
    bx, by = index.xy[result.best_index]
    ax.plot([bx], [by], marker="x", color="red", markersize=18, markeredgewidth=4, linestyle="none",
            label="best tile (#1)")
    if result.true_xy is not None:
        ax.plot([result.true_xy[0]], [result.true_xy[1]], marker="*", color="white", markeredgecolor="black",
                markersize=22, linestyle="none", label="true position")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=2, fontsize=11, frameon=False)
    unit = "local metres" if index.crs is None else index.crs
    ax.set_xlabel(f"easting (m, {unit})")
    ax.set_ylabel(f"northing (m, {unit})")
    ax.ticklabel_format(useOffset=False, style="plain")
    ax.set_title("similarity of every database tile" + (" over the map" if index.kind == "map" else
                                                         " (tile centres)"), fontsize=12)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_io.write_bytes(path, buf.getvalue())
    return path
