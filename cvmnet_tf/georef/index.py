"""A tile database index: descriptors of every reference tile, built once, queried often.

File format (``.npz``, an uncompressed zip of ``.npy`` members so that the descriptors
can be memory-mapped, written atomically):

- ``descriptors.npy``: float32 (N, dim), one row per tile (row i = tile i);
- ``xy.npy``: float64 (N, 2) tile centres, metres (easting, northing) in ``crs``;
- ``latlon.npy``: float64 (N, 2) WGS84 degrees (NaN in a local frame);
- ``names.npy``: unicode (N,): the tile file (tile folder) or ``r<row>_c<col>`` (map);
- ``meta.json``: ``format``, ``version``, ``kind`` ("map" | "tiles"), ``source``,
  ``crs``, ``model_fingerprint``, ``preprocessing`` (dict), ``grid`` (map tiling: rows,
  cols, tile_px, stride_px, metres_per_pixel, tile_m, stride_m, origin_x, origin_y),
  ``skipped`` (unreadable tiles: path and reason), ``num_tiles``, ``dim``, ``created``.

Encoders are callables ``uint8 (B, H, W, 3) RGB -> float32 (B, dim)`` (the model's own
preprocessing inside, e.g. ``RawImageEncoder.satellite`` of
:func:`cvmnet_tf.inference.load_encoder`), so any model loader plugs in. The model
fingerprint is :func:`cvmnet_tf.inference.fingerprint.model_fingerprint` (SHA-256 of the
architecture and the weights; ``RawImageEncoder.info["model_fingerprint"]``);
:func:`load_index` refuses an index built with another fingerprint or other preprocessing
settings, with a one-line message.

Memory while building: one batch of tiles plus the descriptors, which go to a
memory-mapped temporary file (a map of 10^6 tiles x 4096-d needs 16 GB of disk, not RAM).
"""
from __future__ import annotations

import dataclasses
import datetime
import io
import json
import logging
import os
import struct
import zipfile
from typing import Callable, Optional

import numpy as np

from cvmnet_tf.evaluation import geomap
from cvmnet_tf.utils import atomic_io
from cvmnet_tf.georef import coords
from cvmnet_tf.georef.maps import GeoRaster, read_map
from cvmnet_tf.georef.tables import LocatedImages, read_located_csv

log = logging.getLogger("cvmnet_tf.georef")

INDEX_FORMAT = "cvmnet-tile-index"
INDEX_VERSION = 1
#: Tiles of a folder encoded per call of the encoder loop (bounds the images held at once).
FILE_CHUNK = 512

Encoder = Callable[[np.ndarray], np.ndarray]


class IndexMismatchError(ValueError):
    """The index was built with another model or other preprocessing."""


def encoder_preprocessing(encoder) -> dict:
    """The preprocessing settings an index records for a
    :class:`cvmnet_tf.inference.RawImageEncoder`: network input sizes ([H, W] pixels), the
    ground rule's dataset and the ground field of view (degrees, 360 = panorama)."""
    info = encoder.info
    return {"satellite_size": [int(v) for v in info["satellite_size"]],
            "ground_size": [int(v) for v in info["ground_size"]],
            "dataset": info.get("dataset") or "cvusa", "fov": float(info.get("fov") or 360.0),
            "input": "uint8 RGB; area resize; BGR minus caffe means (cvmnet_tf.data.preprocessing)"}


@dataclasses.dataclass
class TileIndex:
    """A loaded (or just built) index; fields as the file (module docstring).

    ``descriptors`` is a read-only memory map when loaded from a file. ``path``: the file.
    """

    descriptors: np.ndarray
    xy: np.ndarray
    latlon: np.ndarray
    names: list
    meta: dict
    path: str = ""

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @property
    def crs(self) -> Optional[str]:
        return self.meta.get("crs")

    @property
    def grid(self) -> Optional[dict]:
        return self.meta.get("grid")

    @property
    def num_tiles(self) -> int:
        return int(self.descriptors.shape[0])

    def tile_grid(self) -> "geomap.TileGrid":
        """The map tiling as :class:`cvmnet_tf.evaluation.geomap.TileGrid` (map indexes only)."""
        g = self.grid
        if g is None:
            raise ValueError(f"{self.path or 'index'}: a tile-folder index has no map grid")
        return geomap.TileGrid(g["tile_px"], g["stride_px"], g["rows"], g["cols"], g["metres_per_pixel"],
                                     g["origin_x"], g["origin_y"])


def _check_output(d, rows: int, what: str, dim: Optional[int]) -> np.ndarray:
    d = np.asarray(d)
    if d.ndim != 2 or d.shape[0] != rows or not np.issubdtype(d.dtype, np.number):
        raise ValueError(f"{what}: the encoder returned {d.dtype} {d.shape}, expected float ({rows}, dim)")
    if dim is not None and d.shape[1] != dim:
        raise ValueError(f"{what}: the encoder returned dim {d.shape[1]}, earlier tiles {dim}")
    if not np.isfinite(d).all():
        raise ValueError(f"{what}: the encoder returned NaN or inf descriptors")
    return d.astype(np.float32, copy=False)


class _DescriptorFile:
    """float32 (N, dim) rows written batch by batch into a temporary .npy memory map."""

    def __init__(self, path: str, num_rows: int):
        self.path, self.num_rows, self.mm = path, num_rows, None

    def write(self, rows: np.ndarray, d: np.ndarray):
        if self.mm is None:
            self.mm = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.float32,
                                                shape=(self.num_rows, d.shape[1]))
        self.mm[rows] = d

    @property
    def dim(self):
        return None if self.mm is None else self.mm.shape[1]

    def close(self):
        if self.mm is not None:
            self.mm.flush()
            del self.mm
            self.mm = None


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.asarray(a), allow_pickle=False)
    return buf.getvalue()


def _write_index(path: str, descriptor_file: str, keep_rows: np.ndarray, xy, latlon, names, meta):
    with atomic_io.atomic_path(path) as tmp:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            src = np.load(descriptor_file, mmap_mode="r")
            with zf.open("descriptors.npy", "w", force_zip64=True) as out:
                header_shape = (len(keep_rows), src.shape[1])
                np.lib.format.write_array_header_2_0(out, {"descr": "<f4", "fortran_order": False,
                                                           "shape": header_shape})
                for start in range(0, len(keep_rows), 4096):
                    out.write(np.ascontiguousarray(src[keep_rows[start:start + 4096]], "<f4").tobytes())
            del src
            zf.writestr("xy.npy", _npy_bytes(np.asarray(xy, np.float64)))
            zf.writestr("latlon.npy", _npy_bytes(np.asarray(latlon, np.float64)))
            zf.writestr("names.npy", _npy_bytes(np.asarray(names, dtype=str)))
            zf.writestr("meta.json", json.dumps(meta, indent=1, sort_keys=True))


def _meta(kind, source, crs, fingerprint, preprocessing, num_tiles, dim, grid=None, skipped=()):
    return {"format": INDEX_FORMAT, "version": INDEX_VERSION, "kind": kind, "source": os.path.abspath(source),
            "crs": crs, "model_fingerprint": str(fingerprint), "preprocessing": dict(preprocessing),
            "grid": grid, "skipped": [list(s) for s in skipped], "num_tiles": int(num_tiles), "dim": int(dim),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "similarity": "dot product of the descriptors (cosine for unit-norm descriptors)"}


def build_map_index(output: str, raster: GeoRaster, encoder: Encoder, model_fingerprint: str, preprocessing: dict,
                    *, tile_m: float, stride_m: float, batch_size: int = 32) -> TileIndex:
    """Tile ``raster`` (``tile_m`` metre tiles every ``stride_m`` metres), encode every
    tile, write the index to ``output``."""
    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    grid = raster.tile_grid(tile_m, stride_m)
    geo = raster.as_localization_map()
    tmp = atomic_io.temporary_path(output, ".descriptors.npy")
    store = _DescriptorFile(tmp, grid.num_tiles)
    try:
        for idx, tiles in geomap.iter_tile_batches(geo, grid, batch_size):
            d = _check_output(encoder(tiles), len(idx), f"map tiles {idx[0]}..{idx[-1]}", store.dim)
            store.write(idx, d)
        dim = store.dim
        store.close()
        xy = grid.centres()
        lat, lon = coords.xy_to_latlon(xy[:, 0], xy[:, 1], raster.crs)
        names = [f"r{r:04d}_c{c:04d}" for r in range(grid.rows) for c in range(grid.cols)]
        g = dict(grid.to_dict(), origin_x=raster.origin_x, origin_y=raster.origin_y)
        meta = _meta("map", raster.source, raster.crs, model_fingerprint, preprocessing, grid.num_tiles, dim, g)
        _write_index(output, tmp, np.arange(grid.num_tiles), xy, np.stack([lat, lon], 1), names, meta)
    finally:
        store.close()
        if os.path.exists(tmp):
            os.remove(tmp)
    return load_index(output)


def build_tile_index(output: str, tiles: LocatedImages, encoder: Encoder, model_fingerprint: str,
                     preprocessing: dict, *, batch_size: int = 32) -> TileIndex:
    """Encode a folder of located tiles (unreadable images are skipped and listed in
    ``meta["skipped"]``) and write the index to ``output``."""
    from cvmnet_tf.inference.encoders import encode_image_files

    if batch_size < 1:
        raise ValueError(f"batch_size={batch_size} must be >= 1")
    tmp = atomic_io.temporary_path(output, ".descriptors.npy")
    store = _DescriptorFile(tmp, len(tiles))
    kept, skipped = [], [(d.path, d.reason) for d in tiles.dropped]

    def fn(batch):
        return _check_output(encoder(batch), len(batch), "satellite tiles", store.dim)

    try:
        for start in range(0, len(tiles), FILE_CHUNK):
            chunk = tiles.paths[start:start + FILE_CHUNK]
            try:
                d, k, bad = encode_image_files(fn, chunk, batch_size, "satellite tile")
            except ValueError as err:
                if "no readable" not in str(err):
                    raise
                d, k, bad = None, np.zeros(0, np.int64), [(i, p) for i, p in enumerate(chunk)]
            if d is not None:
                store.write(start + k, d)
                kept.extend((start + k).tolist())
            skipped += [(p, "unreadable image") for _, p in bad]
        if not kept:
            raise ValueError(f"{tiles.source}: no readable tile image among {len(tiles)}")
        dim = store.dim
        store.close()
        keep = np.asarray(kept, np.int64)
        meta = _meta("tiles", tiles.source, tiles.crs, model_fingerprint, preprocessing, len(keep), dim,
                     skipped=skipped)
        _write_index(output, tmp, keep, tiles.xy[keep], tiles.latlon[keep], [tiles.paths[i] for i in keep], meta)
    finally:
        store.close()
        if os.path.exists(tmp):
            os.remove(tmp)
    if skipped:
        log.warning("%s: %d tile(s) left out of the index: %s", tiles.source, len(skipped),
                    ", ".join(p for p, _ in skipped[:10]))
    return load_index(output)


def build_index(output: str, source: str, encoder: Encoder, model_fingerprint: str, preprocessing: dict, *,
                tile_m: Optional[float] = None, stride_m: Optional[float] = None, crs: Optional[str] = None,
                batch_size: int = 32, overwrite: bool = False) -> TileIndex:
    """Build an index from a path: a ``.csv`` tile table (:mod:`cvmnet_tf.georef.tables`)
    or a map (:func:`cvmnet_tf.georef.maps.read_map`; needs ``tile_m`` and ``stride_m``).
    Refuses to replace an existing ``output`` unless ``overwrite``."""
    if os.path.exists(output) and not overwrite:
        raise FileExistsError(f"index {output!r} exists; remove it or pass overwrite=True to rebuild it")
    if source.lower().endswith(".csv"):
        if tile_m is not None or stride_m is not None:
            raise ValueError("tile_m / stride_m tile a map; a tile table (.csv) lists its tiles already")
        return build_tile_index(output, read_located_csv(source, crs), encoder, model_fingerprint, preprocessing,
                                batch_size=batch_size)
    if tile_m is None or stride_m is None:
        raise ValueError(f"tiling the map {source!r} needs tile_m and stride_m (metres)")
    return build_map_index(output, read_map(source, crs), encoder, model_fingerprint, preprocessing,
                           tile_m=tile_m, stride_m=stride_m, batch_size=batch_size)


def _memmap_member(path: str, zf: zipfile.ZipFile, name: str) -> np.ndarray:
    """A stored (uncompressed) ``.npy`` member of a zip as a read-only memory map."""
    info = zf.getinfo(name)
    if info.compress_type != zipfile.ZIP_STORED:
        raise ValueError(f"{path}: {name} is compressed; not an index written by build_index")
    with open(path, "rb") as f:
        f.seek(info.header_offset)
        local = f.read(30)
        if local[:4] != b"PK\x03\x04":
            raise ValueError(f"{path}: corrupt zip header for {name}")
        n, m = struct.unpack("<HH", local[26:30])
        f.seek(info.header_offset + 30 + n + m)
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        offset = f.tell()
    if fortran:
        raise ValueError(f"{path}: {name} is Fortran-ordered; not an index written by build_index")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)


def load_index(path: str, model_fingerprint: Optional[str] = None, preprocessing: Optional[dict] = None,
               mmap: bool = True) -> TileIndex:
    """Read an index; with ``model_fingerprint`` / ``preprocessing`` given, refuse one built
    with another model or other settings (:class:`IndexMismatchError`, one line)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"index {path!r} not found")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise ValueError(f"{path}: not a tile index (not a zip/npz file)") from None
    with zf:
        names = set(zf.namelist())
        need = {"descriptors.npy", "xy.npy", "latlon.npy", "names.npy", "meta.json"}
        if need - names:
            raise ValueError(f"{path}: not a tile index (missing {sorted(need - names)})")
        meta = json.loads(zf.read("meta.json"))
        if meta.get("format") != INDEX_FORMAT:
            raise ValueError(f"{path}: not a tile index (format {meta.get('format')!r})")
        if meta.get("version") != INDEX_VERSION:
            raise ValueError(f"{path}: index version {meta.get('version')} is not {INDEX_VERSION}; rebuild it")
        if model_fingerprint is not None and meta["model_fingerprint"] != str(model_fingerprint):
            raise IndexMismatchError(
                f"{path}: built with model {meta['model_fingerprint'][:16]}..., this model is "
                f"{str(model_fingerprint)[:16]}...: rebuild the index with this model or query with the one it was built with")
        if preprocessing is not None and meta["preprocessing"] != json.loads(json.dumps(dict(preprocessing))):
            diff = sorted(k for k in set(meta["preprocessing"]) | set(preprocessing)
                          if meta["preprocessing"].get(k) != json.loads(json.dumps(preprocessing.get(k))))
            raise IndexMismatchError(f"{path}: built with other preprocessing ({', '.join(diff)}: "
                                     f"{ {k: meta['preprocessing'].get(k) for k in diff} }); rebuild the index")
        if mmap:
            desc = _memmap_member(path, zf, "descriptors.npy")
        else:
            desc = np.load(io.BytesIO(zf.read("descriptors.npy")))
        xy = np.load(io.BytesIO(zf.read("xy.npy")))
        latlon = np.load(io.BytesIO(zf.read("latlon.npy")))
        tile_names = np.load(io.BytesIO(zf.read("names.npy"))).tolist()
    if desc.shape != (meta["num_tiles"], meta["dim"]) or xy.shape != (meta["num_tiles"], 2):
        raise ValueError(f"{path}: corrupt index (descriptors {desc.shape}, xy {xy.shape}, meta {meta['num_tiles']})")
    return TileIndex(desc, xy, latlon, tile_names, meta, path)
