"""VIGOR loader (Zhu, Yang, Chen, CVPR 2021) for the layout the dataset is distributed in.

Layout (github Jeff-Zilence/VIGOR ``data/DATASET.md``; lists read as its ``dataloader.py``
reads them)::

    <data_dir>/<City>/panorama/<prefix>,<lat>,<lon>,.jpg       ground panoramas (2048 x 1024)
    <data_dir>/<City>/satellite/satellite_<lat>_<lon>.png      aerial tiles (640 x 640)
    <data_dir>/splits/<City>/satellite_list.txt                one satellite file name a line
    <data_dir>/splits/<City>/same_area_balanced_train.txt      same-area labels (train)
    <data_dir>/splits/<City>/same_area_balanced_test.txt       same-area labels (test)
    <data_dir>/splits/<City>/pano_label_balanced.txt           cross-area labels (all of a city)

Cities: Chicago, NewYork, SanFrancisco, Seattle. A label line has 13 whitespace-separated
fields::

    <panorama file> <positive sat> <d_lat> <d_lon> <semi 1> <d_lat> <d_lon> <semi 2> ... <semi 3> ...

the first satellite is the positive (the query lies in its central quarter), the three
others are semi-positives (they also cover the query). ``(d_lat, d_lon)`` is the offset
in pixels of the 640 x 640 tile FROM THE QUERY TO THE TILE CENTRE (DATASET.md's Delta
figure; ``evaluate_from_npy.py`` computes ``prediction = centre - unit * delta / 320``):
``d_lat > 0``: the tile centre is north of the query; ``d_lon > 0``: it is east of it. So
the query sits at pixel ``row = 320 + d_lat``, ``col = 320 - d_lon`` of the tile (the
released visualisation plots it at ``(320 - delta[1], 320 + delta[0])``). The nominal
resolution is 0.114 m per pixel (see :data:`METRES_PER_PIXEL`; the SliceMatch authors
measured other per-city values and publish corrected labels, ``splits__corrected/`` with
``*__corrected.txt`` files: ``load_vigor_split(..., corrected_labels=True)``).

Splits (as VIGOR's ``DataLoader(same_area=...)`` and Sample4Geo's
``sample4geo/dataset/vigor.py``):

- same-area: train and test both use all four cities; queries from
  ``same_area_balanced_{train,test}.txt``; the satellite pool is every satellite of the
  four cities (``satellite_list.txt``, about 90,000 images) for both.
- cross-area: train = NewYork + Seattle, test = SanFrancisco + Chicago, queries from
  ``pano_label_balanced.txt`` of those cities; the pool is those cities' satellites.

City order (and so database row order) is the released loader's: same-area NewYork,
Seattle, SanFrancisco, Chicago; cross-area train NewYork, Seattle, test SanFrancisco,
Chicago. Satellite row i of the pool is line i of the concatenated satellite lists.

Missing files: a missing city/split folder or list file raises FileNotFoundError naming
the path; a malformed line or a label naming a satellite absent from
``satellite_list.txt`` raises ValueError naming file and line. Missing images (checked
by ``os.path.isfile`` when ``check_files``): a missing satellite image is dropped from the
pool (the pool is re-indexed); a panorama whose image or whose POSITIVE satellite is
missing is dropped; a missing semi-positive becomes index -1 (it cannot be retrieved, so
it changes nothing in the hit rate). Everything dropped is in ``VigorSplit.dropped`` with
its path and logged. Unreadable (corrupt) images are found when images are decoded; use
:meth:`VigorSplit.without_satellites` / :meth:`VigorSplit.without_panoramas` to remove
the ones a descriptor extraction skipped, keeping every index consistent.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Iterable, Sequence

import numpy as np

from .splits import DroppedItem, LabelledImages, PairSplit, RetrievalSplit, require_dir, require_file

log = logging.getLogger("cvmnet_tf.data")

CITIES = ("NewYork", "Seattle", "SanFrancisco", "Chicago")
CROSS_AREA_TRAIN_CITIES = ("NewYork", "Seattle")
CROSS_AREA_TEST_CITIES = ("SanFrancisco", "Chicago")
AREAS = ("same", "cross")
SPLITS = ("train", "test")
#: Ground resolution of a 640 x 640 VIGOR tile, metres per pixel (``evaluate_from_npy.py``).
METRES_PER_PIXEL = 0.114
#: Side of a distributed satellite tile in pixels; offsets are in this tile's pixels.
TILE_SIZE_PX = 640
SATELLITE_LIST = "satellite_list.txt"
NUM_LABEL_FIELDS = 13


def label_file_name(area: str, split: str, corrected: bool = False) -> str:
    """The label list of one city: ``same_area_balanced_<split>.txt`` (same-area) or
    ``pano_label_balanced.txt`` (cross-area); ``__corrected`` before ``.txt`` for the
    SliceMatch labels."""
    stem = f"same_area_balanced_{split}" if area == "same" else "pano_label_balanced"
    return stem + ("__corrected" if corrected else "") + ".txt"


def split_cities(area: str, split: str) -> tuple:
    """Cities of an area split, in the released loader's order."""
    _check_choice("area", area, AREAS)
    _check_choice("split", split, SPLITS)
    if area == "same":
        return CITIES
    return CROSS_AREA_TRAIN_CITIES if split == "train" else CROSS_AREA_TEST_CITIES


def parse_panorama_name(name: str) -> tuple:
    """``"<prefix>,<lat>,<lon>,.jpg"`` -> (lat, lon) degrees (WGS84, as in the file name)."""
    parts = os.path.basename(name).split(",")
    try:
        return float(parts[1]), float(parts[2])
    except (IndexError, ValueError):
        raise ValueError(f"VIGOR panorama name {name!r} is not '<prefix>,<lat>,<lon>,.jpg'") from None


def parse_satellite_name(name: str) -> tuple:
    """``"satellite_<lat>_<lon>.png"`` -> (lat, lon) degrees."""
    stem = os.path.splitext(os.path.basename(name))[0]
    parts = stem.split("_")
    try:
        return float(parts[-2]), float(parts[-1])
    except (IndexError, ValueError):
        raise ValueError(f"VIGOR satellite name {name!r} is not 'satellite_<lat>_<lon>.png'") from None


@dataclasses.dataclass
class VigorSplit:
    """One VIGOR split: a satellite pool and the query panoramas with their labels.

    Attributes (N queries, M satellite images):
      name: e.g. ``"vigor/same/test"``; area "same" | "cross"; split "train" | "test".
      cities: cities in pool order.
      satellite_paths: M paths; satellite_latlon float64 (M, 2) degrees from the names;
        satellite_city int64 (M,) index into ``cities``.
      panorama_paths: N paths; panorama_latlon float64 (N, 2) degrees from the names;
        panorama_city int64 (N,).
      positive_index: int64 (N,) pool row of the positive.
      semi_positive_index: int64 (N, 3) pool rows of the semi-positives, -1 where the
        image is missing.
      offsets_px: float64 (N, 4, 2): (d_lat, d_lon) in 640-tile pixels from the query to
        the centre of the positive ([:, 0]) and of each semi-positive ([:, 1:]) (module
        docstring for the sign convention).
      metres_per_pixel: 0.114 (the released value) for offsets -> metres.
      dropped: :class:`DroppedItem` s (index = the query row, or the pool row, in the split
        it was removed from).
      source: the label files read.
    """

    name: str
    area: str
    split: str
    cities: tuple
    satellite_paths: list
    satellite_latlon: np.ndarray
    satellite_city: np.ndarray
    panorama_paths: list
    panorama_latlon: np.ndarray
    panorama_city: np.ndarray
    positive_index: np.ndarray
    semi_positive_index: np.ndarray
    offsets_px: np.ndarray
    metres_per_pixel: float = METRES_PER_PIXEL
    dropped: list = dataclasses.field(default_factory=list)
    source: str = ""

    def __post_init__(self):
        n, m = len(self.panorama_paths), len(self.satellite_paths)
        self.satellite_latlon = np.asarray(self.satellite_latlon, np.float64).reshape(m, 2)
        self.satellite_city = np.asarray(self.satellite_city, np.int64).reshape(m)
        self.panorama_latlon = np.asarray(self.panorama_latlon, np.float64).reshape(n, 2)
        self.panorama_city = np.asarray(self.panorama_city, np.int64).reshape(n)
        self.positive_index = np.asarray(self.positive_index, np.int64).reshape(n)
        self.semi_positive_index = np.asarray(self.semi_positive_index, np.int64).reshape(n, 3)
        self.offsets_px = np.asarray(self.offsets_px, np.float64).reshape(n, 4, 2)
        if n and (self.positive_index.min() < 0 or self.positive_index.max() >= m):
            raise ValueError(f"VigorSplit {self.name!r}: positive_index outside the pool of {m}")
        if n and (self.semi_positive_index.min() < -1 or self.semi_positive_index.max() >= m):
            raise ValueError(f"VigorSplit {self.name!r}: semi_positive_index outside the pool of {m}")

    def __len__(self) -> int:
        return len(self.panorama_paths)

    @property
    def num_satellites(self) -> int:
        return len(self.satellite_paths)

    @property
    def offsets_m(self) -> np.ndarray:
        """float64 (N, 4, 2) offsets query -> tile centre in metres, (north, east)."""
        return self.offsets_px * self.metres_per_pixel

    def query_pixel(self, which: int = 0, tile_size: int = TILE_SIZE_PX) -> np.ndarray:
        """float64 (N, 2) (row, col) of the query in tile ``which`` (0 = positive, 1..3 the
        semi-positives), in pixels of a ``tile_size`` tile (offsets are scaled from 640)."""
        d = self.offsets_px[:, which] * (tile_size / TILE_SIZE_PX)
        c = tile_size / 2.0
        return np.stack([c + d[:, 0], c - d[:, 1]], axis=1)

    @property
    def covers(self) -> np.ndarray:
        """int64 (N, 4): pool rows of the positive and the semi-positives (-1 missing)."""
        return np.concatenate([self.positive_index[:, None], self.semi_positive_index], axis=1)

    def as_pair_split(self) -> PairSplit:
        """(positive satellite, panorama) pairs for the pair pipelines (training,
        positive-only retrieval). ``dataset="vigor"``: the ground branch area-resizes.
        ``covers`` = positive + semi-positive rows: training batches are overlap-free
        (VIGOR's ``check_overlap``: no two panoramas of a batch share one of them)."""
        return PairSplit(name=self.name, satellite_paths=[self.satellite_paths[i] for i in self.positive_index],
                         ground_paths=list(self.panorama_paths), dataset="vigor",
                         ids=[os.path.basename(p) for p in self.panorama_paths],
                         dropped=list(self.dropped), source=self.source, covers=self.covers)

    def subset_queries(self, rows: Iterable[int]) -> "VigorSplit":
        """A copy with only the query panoramas ``rows`` (in that order); the pool is kept
        whole (evaluating on fewer queries against the full database)."""
        return self._replace_queries(np.asarray([int(r) for r in rows], np.int64), list(self.dropped))

    def as_retrieval_split(self) -> RetrievalSplit:
        """Queries labelled with their positive's pool row against the labelled pool
        (label = row): :func:`cvmnet_tf.evaluation.labelled_retrieval` then gives VIGOR's
        positive-only recall@K (semi-positives need :mod:`cvmnet_tf.evaluation.vigor_metrics`)."""
        query = LabelledImages(f"{self.name}/panorama", list(self.panorama_paths), self.positive_index,
                               "ground", dataset="vigor", dropped=list(self.dropped), source=self.source)
        gallery = LabelledImages(f"{self.name}/satellite", list(self.satellite_paths),
                                 np.arange(self.num_satellites), "satellite", dataset="vigor",
                                 source=self.source)
        return RetrievalSplit(self.name, query, gallery, task="ground_to_satellite", dataset="vigor")

    def without_panoramas(self, rows: Iterable[int], reason: str = "unreadable image") -> "VigorSplit":
        """A copy without query rows ``rows`` (recorded in ``dropped`` with ``reason``)."""
        rows = sorted({int(r) for r in rows})
        keep = np.setdiff1d(np.arange(len(self)), rows)
        dropped = self.dropped + [DroppedItem(r, self.panorama_paths[r], reason) for r in rows]
        return self._replace_queries(keep, dropped)

    def without_satellites(self, rows: Iterable[int], reason: str = "unreadable image") -> "VigorSplit":
        """A copy without pool rows ``rows``: the pool is re-indexed, queries whose
        positive is removed are dropped, removed semi-positives become -1."""
        rows = sorted({int(r) for r in rows})
        if not rows:
            return dataclasses.replace(self, dropped=list(self.dropped))
        keep_sat = np.setdiff1d(np.arange(self.num_satellites), rows)
        new_row = np.full(self.num_satellites, -1, np.int64)
        new_row[keep_sat] = np.arange(len(keep_sat))
        dropped = self.dropped + [DroppedItem(r, self.satellite_paths[r], reason) for r in rows]
        lost_positive = np.flatnonzero(new_row[self.positive_index] < 0)
        dropped += [DroppedItem(int(q), self.panorama_paths[q],
                                f"positive satellite removed ({reason}): {self.satellite_paths[self.positive_index[q]]}")
                    for q in lost_positive]
        semi = np.where(self.semi_positive_index >= 0, new_row[np.maximum(self.semi_positive_index, 0)], -1)
        out = dataclasses.replace(
            self, satellite_paths=[self.satellite_paths[i] for i in keep_sat],
            satellite_latlon=self.satellite_latlon[keep_sat], satellite_city=self.satellite_city[keep_sat],
            positive_index=new_row[self.positive_index].clip(min=0), semi_positive_index=semi, dropped=dropped)
        keep_q = np.setdiff1d(np.arange(len(self)), lost_positive)
        return out._replace_queries(keep_q, dropped)

    def restrict(self, satellite_rows: Iterable[int], panorama_rows: Iterable[int],
                 reason: str = "unreadable image") -> tuple:
        """Keep only pool rows ``satellite_rows`` and query rows ``panorama_rows`` (e.g. the
        images a descriptor extraction could read; both ascending). Returns ``(split,
        positions)``: the restricted split (queries whose positive is gone are dropped too)
        and, for each of its queries, its position in ``panorama_rows``, so that
        ``descriptors[positions]`` lines up with the split's queries."""
        sat_rows = np.asarray(sorted({int(r) for r in satellite_rows}), np.int64)
        pano_rows = np.asarray(list(panorama_rows), np.int64)
        if np.any(np.diff(pano_rows) <= 0):
            raise ValueError("restrict: panorama_rows must be strictly ascending")
        out = self.without_panoramas(np.setdiff1d(np.arange(len(self)), pano_rows), reason)
        positions = np.flatnonzero(np.isin(out.positive_index, sat_rows))
        out = out.without_satellites(np.setdiff1d(np.arange(self.num_satellites), sat_rows), reason)
        return out, positions

    def _replace_queries(self, keep: np.ndarray, dropped: list) -> "VigorSplit":
        return dataclasses.replace(
            self, panorama_paths=[self.panorama_paths[i] for i in keep], panorama_latlon=self.panorama_latlon[keep],
            panorama_city=self.panorama_city[keep], positive_index=self.positive_index[keep],
            semi_positive_index=self.semi_positive_index[keep], offsets_px=self.offsets_px[keep],
            dropped=dropped)


def _check_choice(what, value, choices):
    if value not in choices:
        raise ValueError(f"VIGOR {what} must be one of {choices}; got {value!r}")


def _read_satellite_list(path: str) -> list:
    with open(path, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise ValueError(f"{path}: no satellite image listed")
    return names


def _read_labels(path: str) -> list:
    """[(line_no, pano, [4 sat names], offsets (4, 2))]."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != NUM_LABEL_FIELDS:
                raise ValueError(f"{path}:{line_no}: expected {NUM_LABEL_FIELDS} fields "
                                 f"(panorama, then 4 x satellite d_lat d_lon), got {len(fields)}")
            sats = [fields[i] for i in (1, 4, 7, 10)]
            try:
                offsets = [(float(fields[i + 1]), float(fields[i + 2])) for i in (1, 4, 7, 10)]
            except ValueError:
                raise ValueError(f"{path}:{line_no}: pixel offsets must be numbers") from None
            out.append((line_no, fields[0], sats, offsets))
    return out


def load_vigor_split(data_dir: str, split: str = "test", *, area: str = "same",
                     corrected_labels: bool = False, check_files: bool = True,
                     cities: Sequence[str] | None = None) -> VigorSplit:
    """Load a VIGOR split (module docstring: layout, order, missing files).

    Args:
      data_dir: the VIGOR folder (city folders and ``splits/``).
      split: "train" | "test".
      area: "same" (same-area) | "cross" (cross-area).
      corrected_labels: read SliceMatch's ``splits__corrected/<City>/*__corrected.txt``
        (same format, measured resolutions) instead of ``splits/``.
      check_files: drop entries whose image file does not exist (else trust the lists).
      cities: override the cities (e.g. one city for a quick look), in this order.

    Returns:
      :class:`VigorSplit`.
    """
    _check_choice("area", area, AREAS)
    _check_choice("split", split, SPLITS)
    require_dir(data_dir, "VIGOR data_dir")
    cities = tuple(cities) if cities is not None else split_cities(area, split)
    unknown = [c for c in cities if c not in CITIES]
    if unknown:
        raise ValueError(f"VIGOR cities must be among {CITIES}; got {unknown}")
    splits_dir = os.path.join(data_dir, "splits__corrected" if corrected_labels else "splits")
    require_dir(splits_dir, "VIGOR splits folder")
    label_name = label_file_name(area, split, corrected_labels)

    sat_paths, sat_latlon, sat_city, sat_row = [], [], [], {}
    pano_paths, pano_latlon, pano_city, pos, semi, offsets = [], [], [], [], [], []
    dropped, sources = [], []
    for ci, city in enumerate(cities):
        city_splits = require_dir(os.path.join(splits_dir, city), f"VIGOR splits folder of {city}")
        sat_list = require_file(os.path.join(city_splits, SATELLITE_LIST), f"VIGOR satellite list of {city}")
        label_file = require_file(os.path.join(city_splits, label_name), f"VIGOR label file of {city}")
        sources.append(label_file)
        for name in _read_satellite_list(sat_list):
            if name in sat_row:
                raise ValueError(f"{sat_list}: satellite {name!r} is listed twice")
            sat_row[name] = len(sat_paths)
            sat_paths.append(os.path.join(data_dir, city, "satellite", name))
            sat_latlon.append(parse_satellite_name(name))
            sat_city.append(ci)
        for line_no, pano, sats, offs in _read_labels(label_file):
            rows = []
            for s in sats:
                if s not in sat_row:
                    raise ValueError(f"{label_file}:{line_no}: satellite {s!r} is not in the satellite lists "
                                     f"of {', '.join(cities[:ci + 1])}")
                rows.append(sat_row[s])
            if len(set(rows)) != 4:
                raise ValueError(f"{label_file}:{line_no}: the 4 satellites must differ, got {sats}")
            pano_paths.append(os.path.join(data_dir, city, "panorama", pano))
            pano_latlon.append(parse_panorama_name(pano))
            pano_city.append(ci)
            pos.append(rows[0])
            semi.append(rows[1:])
            offsets.append(offs)
    out = VigorSplit(name=f"vigor/{area}/{split}", area=area, split=split, cities=cities,
                     satellite_paths=sat_paths, satellite_latlon=np.array(sat_latlon).reshape(-1, 2),
                     satellite_city=np.array(sat_city, np.int64), panorama_paths=pano_paths,
                     panorama_latlon=np.array(pano_latlon).reshape(-1, 2), panorama_city=np.array(pano_city, np.int64),
                     positive_index=np.array(pos, np.int64), semi_positive_index=np.array(semi, np.int64).reshape(-1, 3),
                     offsets_px=np.array(offsets, np.float64).reshape(-1, 4, 2), dropped=dropped,
                     source=", ".join(sources))
    if not len(out):
        raise ValueError(f"VIGOR {area}-area {split}: the label files hold no panorama ({out.source})")
    if check_files:
        out = _drop_missing(out)
    return out


def _drop_missing(split: VigorSplit) -> VigorSplit:
    missing_sat = [i for i, p in enumerate(split.satellite_paths) if not os.path.isfile(p)]
    out = split.without_satellites(missing_sat, reason="image file missing")
    missing_pano = [i for i, p in enumerate(out.panorama_paths) if not os.path.isfile(p)]
    out = out.without_panoramas(missing_pano, reason="image file missing")
    if out.dropped:
        shown = "\n  ".join(f"{d.path} ({d.reason})" for d in out.dropped[:10])
        more = f"\n  ... and {len(out.dropped) - 10} more" if len(out.dropped) > 10 else ""
        log.warning("%s: %d satellite image(s) and %d panorama(s) dropped:\n  %s%s", out.name, len(missing_sat),
                    len(split) - len(out), shown, more)
    if not len(out):
        raise ValueError(f"{out.name}: every panorama was dropped (first: {out.dropped[0].path})")
    return out
