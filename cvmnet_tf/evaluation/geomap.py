"""A geo-referenced map and its tessellation into square tiles (paper section 5.5).

Map folder (as written by :func:`cvmnet_tf.data.synthetic.write_map`):

- ``map.png`` (or .jpg / .tif): the map, north up, RGB;
- ``map.json``: ``metres_per_pixel``, ``origin_easting`` / ``origin_northing`` (metres) of
  the NORTH-WEST corner of pixel (0, 0); column = east, row = south; optional
  ``tile_extent_m`` (default tile size);
- ``panoramas.csv``: header ``path,easting,northing[,...]``, paths relative to the folder.

Pixel geometry: pixel (row, col) covers easting [E0 + col*m, E0 + (col+1)*m) and northing
(N0 - (row+1)*m, N0 - row*m]. Tile (r, c) covers pixel rows [r*s, r*s + n) and columns
[c*s, c*s + n) (n = round(tile_m / m), s = round(stride_m / m) pixels); its centre is
(E0 + (c*s + n/2)*m, N0 - (r*s + n/2)*m). Only tiles lying fully inside the map are used.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from typing import List

import numpy as np

__all__ = ["GeoMap", "TileGrid", "load_map", "read_queries", "make_tile_grid", "iter_tile_batches",
           "DEFAULT_TILE_M"]

DEFAULT_TILE_M = 100.0  # the synthetic world's WorldConfig.tile_extent_m


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
