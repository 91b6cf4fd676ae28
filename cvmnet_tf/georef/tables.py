"""CSV tables of located images: a folder of satellite tiles, or query ground truth.

Columns (header required, any order, extra columns ignored):

- ``path``: image file, relative to the CSV's folder (or absolute);
- and EITHER ``lat``, ``lon``: WGS84 degrees (needs the ``[geo]`` extra: positions are
  converted to metres in a UTM zone chosen by pyproj, or in the ``crs`` argument);
- OR ``easting``, ``northing``: metres in the ``crs`` argument (a projected CRS such as
  "EPSG:32617"; with no ``crs`` they are a local metric frame: no lat/lon output).

Example (``tiles.csv`` beside the tiles)::

    path,lat,lon
    tiles/r000_c000.png,1.29412,103.80211

A missing CSV, a missing column, a non-numeric or non-finite value raise an error naming
the file (and line); rows whose image file does not exist are dropped, counted and
reported (``LocatedImages.dropped``).
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import os
from typing import Optional

import numpy as np

from cvmnet_tf.data.splits import DroppedItem
from cvmnet_tf.georef import coords

log = logging.getLogger("cvmnet_tf.georef")


@dataclasses.dataclass
class LocatedImages:
    """Images with positions. paths: N absolute paths; xy: float64 (N, 2) metres
    (easting, northing) in ``crs`` (None = local frame); latlon: float64 (N, 2) degrees
    (NaN in a local frame); dropped: rows left out (missing files); source: the CSV."""

    paths: list
    xy: np.ndarray
    latlon: np.ndarray
    crs: Optional[str]
    dropped: list
    source: str

    def __len__(self) -> int:
        return len(self.paths)


def _float(row, key, path, line):
    try:
        v = float(row[key])
    except (TypeError, ValueError):
        raise ValueError(f"{path}:{line}: {key} must be a number, got {row.get(key)!r}") from None
    if not np.isfinite(v):
        raise ValueError(f"{path}:{line}: {key} must be finite, got {v}")
    return v


def read_located_csv(path: str, crs: Optional[str] = None, *, check_files: bool = True,
                     what: str = "tile table") -> LocatedImages:
    """Read a located-image CSV (module docstring)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path!r} not found")
    base = os.path.dirname(os.path.abspath(path))
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = set(reader.fieldnames or [])
        if "path" not in cols:
            raise ValueError(f"{path}: the header needs a 'path' column (and lat,lon or easting,northing); "
                             f"got {sorted(cols)}")
        if {"lat", "lon"} <= cols:
            keys = ("lat", "lon")
        elif {"easting", "northing"} <= cols:
            keys = ("easting", "northing")
        else:
            raise ValueError(f"{path}: the header needs lat,lon (WGS84 degrees) or easting,northing (metres); "
                             f"got {sorted(cols)}")
        rows = [(line, os.path.join(base, row["path"]), _float(row, keys[0], path, line),
                 _float(row, keys[1], path, line)) for line, row in enumerate(reader, 2)]
    if not rows:
        raise ValueError(f"{path}: no rows")
    a = np.array([[r[2], r[3]] for r in rows], np.float64)
    if keys == ("lat", "lon"):
        if (np.abs(a[:, 0]) > 90).any() or (np.abs(a[:, 1]) > 180).any():
            raise ValueError(f"{path}: lat must be in [-90, 90] and lon in [-180, 180] degrees")
        coords.require_geo("pyproj", f"the lat/lon columns of {path!r}")
        crs = crs or coords.utm_crs(float(np.median(a[:, 0])), float(np.median(a[:, 1])))
        coords.check_metric_crs(crs, path)
        x, y = coords.latlon_to_xy(a[:, 0], a[:, 1], crs)
        xy, latlon = np.stack([x, y], 1), a
    else:
        crs = coords.check_metric_crs(crs, path)
        xy = a
        lat, lon = coords.xy_to_latlon(a[:, 0], a[:, 1], crs)
        latlon = np.stack([lat, lon], 1)
    paths = [r[1] for r in rows]
    dropped = []
    if check_files:
        exists = [os.path.isfile(p) for p in paths]
        keep = [i for i, ok in enumerate(exists) if ok]
        dropped = [DroppedItem(rows[i][0], paths[i], "image file missing") for i, ok in enumerate(exists) if not ok]
        if dropped:
            log.warning("%s: %d row(s) dropped, image file missing: %s", path, len(dropped),
                        ", ".join(d.path for d in dropped[:10]))
        if not keep:
            raise ValueError(f"{path}: none of the {len(paths)} image files exists (first: {paths[0]})")
        paths = [paths[i] for i in keep]
        xy, latlon = xy[keep], latlon[keep]
    return LocatedImages(paths, xy, latlon, crs, dropped, path)
