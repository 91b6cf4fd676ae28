"""Geo-referenced maps: a GeoTIFF, or a plain image with its geo-reference beside it.

Readers (:func:`read_map` picks one from the path):

- GeoTIFF (``.tif`` / ``.tiff``), through rasterio (``[geo]`` extra): bands 1-3 as RGB
  (one band: grey), 8-bit only, north-up (no rotation terms); the transform and CRS come
  from the file.
- A folder with ``map.json`` + ``map.png`` / ``map.jpg`` / ``map.tif`` (what
  ``python -m cvmnet_tf.data.synthetic --map`` writes).
- A plain image (PNG / JPEG / ...) with a sidecar: ``<image>.json`` (the JSON below) or a
  world file ``<stem>.pgw`` / ``.jgw`` / ``.tfw`` / ``.wld``.

The JSON geo-reference (``map.json`` or ``<image>.json``) is one of::

    {"metres_per_pixel": 0.5, "origin_easting": 350000.0, "origin_northing": 140000.0,
     "crs": "EPSG:32648"}                          # origin = NORTH-WEST CORNER of pixel (0, 0)

    {"bounds": {"west": 350000.0, "south": 139744.0, "east": 350384.0, "north": 140000.0},
     "crs": "EPSG:32648"}                          # outer edges of the whole image

in metres of ``crs``; ``crs`` is optional (omitted: a local metric frame, no lat/lon
output) and, when given, must be projected in metres (reproject geographic maps first).
Pixels must be square (x and y pixel sizes equal to 0.1 %). A world file holds six lines
A, D, B, E, C, F (pixel size x, rotation, rotation, -pixel size y, x and y of the CENTRE
of pixel (0, 0)); its CRS comes from the ``crs`` argument.

Pixel geometry (as :mod:`cvmnet_tf.localization`): column = east, row = south; pixel
(row, col) covers x in [x0 + col m, x0 + (col + 1) m), y in (y0 - (row + 1) m, y0 - row m].
Tiling reuses :func:`cvmnet_tf.evaluation.geomap.make_tile_grid` (tiles of ``tile_m`` metres
every ``stride_m`` metres, rounded to whole pixels, fully inside the map).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Optional

import numpy as np

from cvmnet_tf.evaluation import geomap
from cvmnet_tf.georef import coords

GEOTIFF_EXTENSIONS = (".tif", ".tiff")
WORLD_FILE_EXTENSIONS = (".pgw", ".jgw", ".tfw", ".wld", ".pngw", ".jpgw", ".tifw")
MAP_FOLDER_IMAGES = ("map.png", "map.jpg", "map.tif")


@dataclasses.dataclass
class GeoRaster:
    """A north-up RGB map.

    image: uint8 (H, W, 3); metres_per_pixel: ground size of a pixel;
    origin_x, origin_y: metres of the north-west corner of pixel (0, 0) in ``crs``;
    crs: CRS string, or None for a local metric frame; source: the file read.
    """

    image: np.ndarray
    metres_per_pixel: float
    origin_x: float
    origin_y: float
    crs: Optional[str] = None
    source: str = ""

    def __post_init__(self):
        self.image = np.asarray(self.image)
        if self.image.ndim != 3 or self.image.shape[2] != 3 or self.image.dtype != np.uint8:
            raise ValueError(f"{self.source or 'map'}: image must be uint8 (H, W, 3); got "
                             f"{self.image.dtype} {self.image.shape}")
        for name in ("metres_per_pixel", "origin_x", "origin_y"):
            v = float(getattr(self, name))
            if not math.isfinite(v):
                raise ValueError(f"{self.source or 'map'}: {name} must be finite, got {v}")
            setattr(self, name, v)
        if self.metres_per_pixel <= 0:
            raise ValueError(f"{self.source or 'map'}: metres_per_pixel must be > 0, got {self.metres_per_pixel}")
        self.crs = coords.check_metric_crs(self.crs, self.source or "map")

    @property
    def extent(self) -> tuple:
        """(west, east, south, north) outer edges, metres (matplotlib ``extent`` order)."""
        h, w = self.image.shape[:2]
        m = self.metres_per_pixel
        return (self.origin_x, self.origin_x + w * m, self.origin_y - h * m, self.origin_y)

    def as_localization_map(self) -> "geomap.GeoMap":
        """The same map as :class:`cvmnet_tf.evaluation.geomap.GeoMap` (its tiling functions)."""
        return geomap.GeoMap(self.image, self.metres_per_pixel, self.origin_x, self.origin_y, source=self.source,
                                   meta={"crs": self.crs})

    def tile_grid(self, tile_m: float, stride_m: float) -> "geomap.TileGrid":
        """Tiles of ``tile_m`` metres every ``stride_m`` metres (ValueError naming the
        argument when they do not fit)."""
        return geomap.make_tile_grid(self.as_localization_map(), tile_m, stride_m)


def _rgb(arr: np.ndarray, path: str) -> np.ndarray:
    if arr.dtype != np.uint8:
        raise ValueError(f"{path}: only 8-bit maps are supported, got {arr.dtype} (convert, e.g. "
                         "gdal_translate -ot Byte -scale)")
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.shape[2] < 3:
        raise ValueError(f"{path}: needs 1 or >= 3 bands, got {arr.shape[2]}")
    return np.ascontiguousarray(arr[..., :3])


def _square_pixels(px: float, py: float, path: str) -> float:
    if px <= 0 or py <= 0 or abs(px - py) > 1e-3 * max(px, py):
        raise ValueError(f"{path}: pixels must be square and north-up (pixel size {px} x {py})")
    return px


def read_geotiff(path: str) -> GeoRaster:
    """A GeoTIFF through rasterio (module docstring)."""
    rasterio = coords.require_geo("rasterio", f"reading the GeoTIFF {path!r}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"map {path!r} not found")
    try:
        with rasterio.open(path) as ds:
            t = ds.transform
            if t.b != 0 or t.d != 0:
                raise ValueError(f"{path}: rotated rasters are not supported (transform {tuple(t)[:6]}); warp it north-up")
            bands = [1] if ds.count < 3 else [1, 2, 3]
            arr = np.moveaxis(ds.read(bands), 0, -1)
            crs = ds.crs.to_string() if ds.crs else None
    except rasterio.errors.RasterioIOError as err:
        raise ValueError(f"{path}: cannot be read as a GeoTIFF: {str(err).splitlines()[0]}") from None
    m = _square_pixels(t.a, -t.e, path)
    return GeoRaster(_rgb(arr, path), m, t.c, t.f, crs, source=path)


def _read_image(path: str) -> np.ndarray:
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None  # the user's own map; real maps are large
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"), np.uint8)
    except (OSError, ValueError) as err:
        raise ValueError(f"map image {path!r} cannot be read: {err}") from None


def geo_reference_from_json(meta: dict, width: int, height: int, where: str) -> tuple:
    """(metres_per_pixel, origin_x, origin_y, crs) from a JSON geo-reference (module docstring)."""
    crs = meta.get("crs")
    if crs is not None and not isinstance(crs, str):
        raise ValueError(f"{where}: 'crs' must be a string like 'EPSG:32617', got {crs!r}")
    if "bounds" in meta:
        b = meta["bounds"]
        try:
            west, south, east, north = (float(b[k]) for k in ("west", "south", "east", "north"))
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{where}: 'bounds' must hold numbers west, south, east, north (metres)") from None
        if not (east > west and north > south):
            raise ValueError(f"{where}: bounds need east > west and north > south, got {b}")
        m = _square_pixels((east - west) / width, (north - south) / height, where)
        return m, west, north, crs
    for key in ("metres_per_pixel", "origin_easting", "origin_northing"):
        v = meta.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ValueError(f"{where}: {key!r} must be a finite number (or give 'bounds'), got {v!r}")
    return float(meta["metres_per_pixel"]), float(meta["origin_easting"]), float(meta["origin_northing"]), crs


def _load_json(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        try:
            meta = json.load(f)
        except ValueError as err:
            raise ValueError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: must hold a JSON object")
    return meta


def read_world_file(path: str) -> tuple:
    """(metres_per_pixel, origin_x, origin_y) from a six-line world file (pixel-centre
    convention converted to the north-west corner)."""
    try:
        with open(path, encoding="utf-8") as f:
            a, d, b, e, c, f_ = (float(line) for line in f.read().split()[:6])
    except ValueError:
        raise ValueError(f"{path}: a world file holds six numbers (A D B E C F), one a line") from None
    if b != 0 or d != 0:
        raise ValueError(f"{path}: rotated world files are not supported")
    m = _square_pixels(a, -e, path)
    return m, c - a / 2.0, f_ - e / 2.0


def read_image_with_sidecar(path: str, crs: Optional[str] = None) -> GeoRaster:
    """A plain image and its ``<image>.json`` or world file (module docstring)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"map {path!r} not found")
    image = _read_image(path)
    h, w = image.shape[:2]
    stem = os.path.splitext(path)[0]
    json_file = next((p for p in (path + ".json", stem + ".json") if os.path.isfile(p)), None)
    if json_file:
        m, x0, y0, json_crs = geo_reference_from_json(_load_json(json_file), w, h, json_file)
        return GeoRaster(image, m, x0, y0, crs or json_crs, source=path)
    world = next((stem + e for e in WORLD_FILE_EXTENSIONS if os.path.isfile(stem + e)), None)
    if world:
        m, x0, y0 = read_world_file(world)
        return GeoRaster(image, m, x0, y0, crs, source=path)
    raise FileNotFoundError(f"map {path!r} has no geo-reference: add {os.path.basename(path)}.json "
                            f"(metres_per_pixel/origin_easting/origin_northing or bounds) or a world file {stem}.pgw")


def read_map_folder(folder: str, crs: Optional[str] = None) -> GeoRaster:
    """``map.json`` + ``map.png`` (the synthetic writer's map folder)."""
    meta_file = os.path.join(folder, "map.json")
    if not os.path.isfile(meta_file):
        raise FileNotFoundError(f"map folder {folder!r}: map.json (its geo-reference) is missing")
    image_file = next((os.path.join(folder, n) for n in MAP_FOLDER_IMAGES if os.path.isfile(os.path.join(folder, n))),
                      None)
    if image_file is None:
        raise FileNotFoundError(f"map folder {folder!r}: no {' / '.join(MAP_FOLDER_IMAGES)}")
    image = _read_image(image_file)
    meta = _load_json(meta_file)
    m, x0, y0, json_crs = geo_reference_from_json(meta, image.shape[1], image.shape[0], meta_file)
    for key, size in (("width_px", image.shape[1]), ("height_px", image.shape[0])):
        if key in meta and int(meta[key]) != size:
            raise ValueError(f"{meta_file}: {key}={meta[key]} but {image_file} has {size}")
    return GeoRaster(image, m, x0, y0, crs or json_crs, source=image_file)


def default_tile_m(path: str) -> Optional[float]:
    """The tile side (metres) a map implies: a map folder's ``map.json`` ``tile_extent_m``,
    else the synthetic world's (:data:`cvmnet_tf.evaluation.geomap.DEFAULT_TILE_M`, 100 m);
    None for any other map (a user's map must say its tiles' size)."""
    meta_file = os.path.join(path, "map.json") if os.path.isdir(path) else None
    if meta_file is None or not os.path.isfile(meta_file):
        return None
    value = _load_json(meta_file).get("tile_extent_m")
    return float(value) if isinstance(value, (int, float)) and value > 0 else geomap.DEFAULT_TILE_M


def read_map(path: str, crs: Optional[str] = None) -> GeoRaster:
    """Any supported map (module docstring). ``crs`` overrides/sets the CRS of a plain
    image (ignored for a GeoTIFF, which carries its own)."""
    if os.path.isdir(path):
        return read_map_folder(path, crs)
    if path.lower().endswith(GEOTIFF_EXTENSIONS) and not os.path.isfile(path + ".json"):
        return read_geotiff(path)
    return read_image_with_sidecar(path, crs)
