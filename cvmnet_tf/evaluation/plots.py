"""Evaluation figures as PNG files (matplotlib Agg, imported lazily).

- :func:`plot_top_k_curve`: recall (%) versus K, several curves on one plot
  (paper Fig. 5, and Fig. 6 with/without distractors).
- :func:`plot_retrieval_examples`: query + its top-5 satellite images, the true
  match framed in green, others in red (paper Fig. 9).
- :func:`plot_recall_vs_distance`: localization recall (%) versus distance
  threshold in metres (paper Fig. 8).
- :func:`plot_heatmap`: exp(similarity) of every map tile over the map (paper Fig. 10).
- :func:`plot_learning_curve`: validation recall@1 and recall@1% (%) per training epoch,
  each with its chance level (a random ranking) as a dashed line.

Every function writes ``<path>.tmp-<pid>`` and renames it over ``path``, draws
on a ``matplotlib.figure.Figure`` (no pyplot global state) and produces an image
of exactly ``size_px`` = (width, height) pixels.
"""
from __future__ import annotations

import os
from typing import Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from cvmnet_tf.utils import atomic_io

__all__ = ["plot_top_k_curve", "plot_retrieval_examples", "plot_recall_vs_distance", "plot_heatmap",
           "plot_learning_curve"]

ImageLike = Union[str, os.PathLike, np.ndarray]
_DPI = 100


def _figure(size_px: Tuple[int, int]):
    # The Agg canvas directly: no pyplot, no change to the user's backend.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    w, h = size_px
    if int(w) < 50 or int(h) < 50:
        raise ValueError(f"size_px must be at least 50x50 pixels; got {size_px!r}")
    fig = Figure(figsize=(int(w) / _DPI, int(h) / _DPI), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path) -> str:
    path = os.fspath(path)
    with atomic_io.atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI)
    return path


def _finish_percent_axes(fig, ax, path, xlabel, ylabel, title) -> str:
    """Labels, a 0..100 % y axis, grid, legend and title; then save the figure to ``path``."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 100)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_top_k_curve(curves: Mapping[str, Sequence[float]], path, title: Optional[str] = None,
                     size_px: Tuple[int, int] = (800, 600), top_percent_k: Optional[int] = None) -> str:
    """Recall versus K for one or more settings on one plot.

    Args:
      curves: label -> recall fractions (0..1) for K = 1..len(curve), e.g. from
        :func:`cvmnet_tf.evaluation.top_k_curve`; e.g. {"without distractors":
        ..., "with 15,643 distractors": ...}.
      path: output .png path.
      top_percent_k: optional K of the top-1% cut-off, drawn as a vertical line.
      size_px: (width, height) of the image in pixels.

    Returns:
      ``path``.
    """
    if not curves:
        raise ValueError("curves must hold at least one label -> recall curve")
    fig = _figure(size_px)
    ax = fig.add_subplot(1, 1, 1)
    for label, curve in curves.items():
        c = np.asarray(curve, np.float64)
        if c.ndim != 1 or c.size == 0:
            raise ValueError(f"curve {label!r} must be a non-empty 1-D array; got shape {c.shape}")
        ax.plot(np.arange(1, c.size + 1), 100.0 * c, label=str(label))
    if top_percent_k is not None:
        ax.axvline(top_percent_k, color="gray", linestyle="--", linewidth=1, label=f"top-1% (K={top_percent_k})")
    return _finish_percent_axes(fig, ax, path, "K (top-K retrieved satellite images)", "Recall (%)", title)


def _load_image(img: ImageLike, what: str) -> np.ndarray:
    if isinstance(img, np.ndarray):
        arr = img
    else:
        from PIL import Image

        try:
            with Image.open(os.fspath(img)) as im:
                arr = np.asarray(im.convert("RGB"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{what}: cannot read image {os.fspath(img)!r}: {exc}") from exc
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"{what}: image must be (H, W), (H, W, 3) or (H, W, 4); got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255 if arr.max() > 1.0 else 1.0)
    return arr


def plot_retrieval_examples(queries: Sequence[ImageLike], retrieved: Sequence[Sequence[ImageLike]],
                            correct: Sequence[Sequence[bool]], path, size_px: Tuple[int, int] = (1600, 900),
                            title: Optional[str] = None) -> str:
    """Query panoramas with their top retrieved satellite images (paper Fig. 9).

    Args:
      queries: Q query images (paths or RGB arrays (H, W, 3), uint8 or float 0..1).
      retrieved: per query, its top-k database images, best first (k <= 10).
      correct: per query, k booleans: True where the retrieved image is the true
        match (framed green; others red).
      path: output .png; size_px: (width, height) pixels.

    Returns:
      ``path``.
    """
    nq = len(queries)
    if nq == 0 or len(retrieved) != nq or len(correct) != nq:
        raise ValueError(f"queries ({nq}), retrieved ({len(retrieved)}) and correct ({len(correct)}) must be "
                         "non-empty and of the same length")
    k = max(len(r) for r in retrieved)
    for i, (r, c) in enumerate(zip(retrieved, correct)):
        if len(r) != len(c):
            raise ValueError(f"query {i}: {len(r)} retrieved images but {len(c)} correct flags")
    fig = _figure(size_px)
    # Query panorama spans 2 columns (wide), then k satellite tiles.
    grid = fig.add_gridspec(nq, k + 2)
    for i in range(nq):
        ax = fig.add_subplot(grid[i, :2])
        ax.imshow(_load_image(queries[i], f"queries[{i}]"), aspect="auto")
        ax.set_xticks([])
        ax.set_yticks([])
        if i == 0:
            ax.set_title("query")
        for j, (img, ok) in enumerate(zip(retrieved[i], correct[i])):
            ax = fig.add_subplot(grid[i, 2 + j])
            ax.imshow(_load_image(img, f"retrieved[{i}][{j}]"))
            ax.set_xticks([])
            ax.set_yticks([])
            color = "limegreen" if ok else "red"
            for side in ax.spines.values():
                side.set_edgecolor(color)
                side.set_linewidth(4 if ok else 1.5)
            if i == 0:
                ax.set_title(f"top-{j + 1}")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_recall_vs_distance(thresholds_m: Sequence[float], recalls: Sequence[float], path,
                            title: Optional[str] = None, size_px: Tuple[int, int] = (800, 600),
                            reference: Optional[Tuple[float, float]] = None,
                            baseline: Optional[Sequence[float]] = None) -> str:
    """Localization recall (%) versus distance threshold in metres (paper Fig. 8).

    Args:
      thresholds_m: distances d in metres; recalls: fractions (0..1) of queries
        whose best match lies within d (same length).
      reference: optional (d, recall fraction) point to mark, e.g. the paper's
        (100, 0.671).
      baseline: optional recall fractions of a random tile at the same distances
        (chance level, :func:`cvmnet_tf.evaluation.geo.random_tile_baseline`), drawn dashed.

    Returns:
      ``path``.
    """
    t = np.asarray(thresholds_m, np.float64)
    r = np.asarray(recalls, np.float64)
    if t.ndim != 1 or t.shape != r.shape or t.size == 0:
        raise ValueError(f"thresholds_m and recalls must be 1-D of the same length; got {t.shape} and {r.shape}")
    fig = _figure(size_px)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(t, 100.0 * r, marker="o", label="this run")
    if baseline is not None:
        b = np.asarray(baseline, np.float64)
        if b.shape != t.shape:
            raise ValueError(f"baseline must have the shape of thresholds_m {t.shape}; got {b.shape}")
        ax.plot(t, 100.0 * b, linestyle="--", color="gray", label="random tile (chance)")
    if reference is not None:
        ax.plot([reference[0]], [100.0 * reference[1]], marker="*", markersize=12, linestyle="none",
                label="paper")
    return _finish_percent_axes(fig, ax, path, "distance threshold (m)", "queries localized within threshold (%)",
                                title)


def plot_heatmap(geo, grid, similarity_map: np.ndarray, path: str, *,
                 true_utm=None, predicted_utm=None, title: Optional[str] = None,
                 size_px=(900, 700)) -> str:
    """Paper Fig. 10: exp(similarity) of every tile (min-max scaled) over the map (PNG).

    ``geo``, ``grid``: a :class:`~cvmnet_tf.evaluation.geomap.GeoMap` and its
    :class:`~cvmnet_tf.evaluation.geomap.TileGrid`; ``similarity_map``: (rows, cols);
    ``true_utm`` / ``predicted_utm``: (easting, northing) metres to mark.
    """
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
    fig = _figure(size_px)
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
    return _save(fig, path)


def plot_learning_curve(epochs: Sequence[int], recall_at_1: Sequence[float], recall_at_1pct: Sequence[float],
                        chance_at_1: float, chance_at_1pct: float, path, title: Optional[str] = None,
                        size_px: Tuple[int, int] = (800, 500)) -> str:
    """Validation recall@1 and recall@1% (fractions 0..1, drawn in %) versus epoch, each with
    its chance level (a random ranking) as a dashed line of the same colour and its value in
    the legend, so that a curve at chance reads as such. The recall axis is logarithmic (from
    half the lower chance level to 100 %): chance levels of 0.2 % and 1.2 % and recalls of
    tens of percent stay apart; a recall of 0 is drawn on the bottom edge.

    Returns:
      ``path``.
    """
    e = np.asarray(epochs, np.float64)
    r1 = 100.0 * np.asarray(recall_at_1, np.float64)
    rp = 100.0 * np.asarray(recall_at_1pct, np.float64)
    if e.ndim != 1 or e.size == 0 or e.shape != r1.shape or e.shape != rp.shape:
        raise ValueError("plot_learning_curve: epochs, recall_at_1 and recall_at_1pct must be non-empty 1-D and of "
                         f"equal length; got {e.shape}, {r1.shape}, {rp.shape}")
    if not 0.0 < min(chance_at_1, chance_at_1pct) <= 1.0:
        raise ValueError(f"plot_learning_curve: chance levels must be in (0, 1], got {chance_at_1}, {chance_at_1pct}")
    floor = 50.0 * min(chance_at_1, chance_at_1pct)
    fig = _figure(size_px)
    ax = fig.add_subplot(1, 1, 1)
    for values, chance, label, colour in ((rp, chance_at_1pct, "recall@1%", "tab:blue"),
                                          (r1, chance_at_1, "recall@1", "tab:orange")):
        ax.plot(e, np.maximum(values, floor), marker="o", color=colour, label=f"{label} (last: {values[-1]:.1f}%)")
        ax.axhline(100.0 * chance, color=colour, linestyle="--", linewidth=1.2,
                   label=f"{label} of a random ranking ({100.0 * chance:.2f}%)")
    ax.set_yscale("log")
    ax.set_ylim(floor, 100.0)
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100) if t >= floor]
    ax.set_yticks(ticks)
    ax.set_yticklabels([f"{t:g}%" for t in ticks])
    if e.size <= 30:
        ax.set_xticks(e)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation recall (log scale)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", framealpha=0.85)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)
