"""Split containers shared by every dataset loader (no TensorFlow import).

A *split* is an ordered list of (satellite image, ground image) file pairs; pair ``i`` of
a split is the query/database pair with "index" ``i`` in the tf.data pipelines.

- :class:`PairSplit`: the pairs, optional UTM coordinates (metres) and the pairs that were
  dropped while loading (missing image files), each with its path and reason.
- :class:`ImageSizes`: network input sizes, ``(height, width)`` in pixels.
- :func:`list_distractor_images`: the satellite-only images of a distractor folder.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Sequence

import numpy as np

from cvmnet_tf.utils.text import first_items

log = logging.getLogger("cvmnet_tf.data")

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


@dataclasses.dataclass(frozen=True)
class DroppedItem:
    """One pair/image left out of a split or an epoch.

    ``index``: its position in the source list (split file line order, 0-based, for pairs
    dropped at load time; the split "index" for items skipped by a pipeline);
    ``path``: the offending file; ``reason``: a short human-readable cause.
    """

    index: int
    path: str
    reason: str


@dataclasses.dataclass
class PairSplit:
    """An ordered list of satellite/ground image pairs.

    Attributes:
      name: e.g. ``"cvusa/train"``.
      satellite_paths, ground_paths: absolute (or data-dir-joined) file paths, same length N;
        pair i is ``(satellite_paths[i], ground_paths[i])``.
      utm: float64 array (N, 2), easting/northing in metres (CVACT), else ``None``.
      dataset: "cvusa", "cvact", "vohays" or "pairs"; selects the ground preprocessing.
      ids: optional per-pair identifiers (CVUSA / CVACT pano ids).
      dropped: pairs removed while loading because an image file is missing (index = line /
        position in the source list, not in this split).
      source: the split/list file(s) the pairs came from (for messages).
      labels: optional int64 (N,) class label per pair (University-1652 building ids);
        pairs with the same label show the same place, so a training batch must not hold
        two of them (the pipeline then draws class-unique batches).
      covers: optional int64 (N, S) rows of the reference images that each pair's ground
        image lies in (VIGOR: its positive and semi-positive satellite images; -1 = none).
        Two pairs sharing one of them must not meet in a training batch (the pipeline then
        draws overlap-free batches, VIGOR's ``check_overlap`` rule).
    """

    name: str
    satellite_paths: list
    ground_paths: list
    utm: np.ndarray | None = None
    dataset: str = "cvusa"
    ids: list | None = None
    dropped: list = dataclasses.field(default_factory=list)
    source: str = ""
    labels: np.ndarray | None = None
    covers: np.ndarray | None = None

    def __post_init__(self):
        if self.covers is not None:
            self.covers = np.asarray(self.covers, dtype=np.int64)
            self.covers = self.covers.reshape(len(self.covers), -1)
            if len(self.covers) != len(self.satellite_paths):
                raise ValueError(f"PairSplit {self.name!r}: covers has {len(self.covers)} rows for "
                                 f"{len(self.satellite_paths)} pairs")
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
            if len(self.labels) != len(self.satellite_paths):
                raise ValueError(f"PairSplit {self.name!r}: labels has {len(self.labels)} entries for "
                                 f"{len(self.satellite_paths)} pairs")
        if len(self.satellite_paths) != len(self.ground_paths):
            raise ValueError(
                f"PairSplit {self.name!r}: {len(self.satellite_paths)} satellite paths but "
                f"{len(self.ground_paths)} ground paths")
        if self.utm is not None:
            self.utm = np.asarray(self.utm, dtype=np.float64).reshape(-1, 2)
            if len(self.utm) != len(self.satellite_paths):
                raise ValueError(f"PairSplit {self.name!r}: utm has {len(self.utm)} rows for "
                                 f"{len(self.satellite_paths)} pairs")
        if self.ids is not None and len(self.ids) != len(self.satellite_paths):
            raise ValueError(f"PairSplit {self.name!r}: ids has {len(self.ids)} entries for "
                             f"{len(self.satellite_paths)} pairs")

    def __len__(self) -> int:
        return len(self.satellite_paths)

    def subset(self, indices: Sequence[int], name: str | None = None) -> "PairSplit":
        """A new split holding pairs ``indices`` (in that order); ``dropped`` is kept."""
        idx = [int(i) for i in indices]
        return PairSplit(
            name=name or self.name,
            satellite_paths=[self.satellite_paths[i] for i in idx],
            ground_paths=[self.ground_paths[i] for i in idx],
            utm=None if self.utm is None else self.utm[idx],
            dataset=self.dataset,
            ids=None if self.ids is None else [self.ids[i] for i in idx],
            dropped=list(self.dropped),
            source=self.source,
            labels=None if self.labels is None else self.labels[idx],
            covers=None if self.covers is None else self.covers[idx])


@dataclasses.dataclass
class LabelledImages:
    """One side of a labelled retrieval split (a query set or a gallery).

    Attributes:
      name: e.g. ``"university1652/test/query_drone"``.
      paths: N image file paths.
      labels: int64 (N,) class labels; an image matches every image of the other side with
        the same label. Distractors have label -1 and match nothing.
      kind: "ground" (ground or drone images: the ground branch) or "satellite".
      dataset: selects the preprocessing (e.g. "university1652").
      dropped: images left out at load time (missing/unreadable), with reasons.
      source: the folder(s) the images came from (for messages).
    """

    name: str
    paths: list
    labels: np.ndarray
    kind: str
    dataset: str = "university1652"
    dropped: list = dataclasses.field(default_factory=list)
    source: str = ""

    def __post_init__(self):
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.labels) != len(self.paths):
            raise ValueError(f"LabelledImages {self.name!r}: {len(self.labels)} labels for "
                             f"{len(self.paths)} images")
        if self.kind not in ("ground", "satellite"):
            raise ValueError(f"LabelledImages {self.name!r}: kind must be 'ground' or 'satellite', "
                             f"got {self.kind!r}")

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, indices: Sequence[int], name: str | None = None) -> "LabelledImages":
        idx = [int(i) for i in indices]
        return LabelledImages(name=name or self.name, paths=[self.paths[i] for i in idx],
                              labels=self.labels[idx], kind=self.kind, dataset=self.dataset,
                              dropped=list(self.dropped), source=self.source)


@dataclasses.dataclass
class RetrievalSplit:
    """A labelled evaluation split: queries retrieved from a gallery, several true matches
    per query allowed (University-1652). ``task`` e.g. "drone_to_satellite"."""

    name: str
    query: LabelledImages
    gallery: LabelledImages
    task: str = ""
    dataset: str = "university1652"

    def __len__(self) -> int:
        return len(self.query)


@dataclasses.dataclass(frozen=True)
class ImageSizes:
    """Network input sizes, each ``(height, width)`` in pixels.

    ``ImageSizes()`` / ``ImageSizes.paper()`` are the CVM-Net sizes (satellite 512x512,
    ground panorama 224x1232). Smaller sizes are allowed for CPU experiments; then the
    CVUSA ground panorama is resized instead of being required to be exactly 224x1232,
    and the satellite crop rule scales with the input image (see preprocessing).
    """

    satellite: tuple = (512, 512)
    ground: tuple = (224, 1232)

    def __post_init__(self):
        for field in ("satellite", "ground"):
            value = tuple(int(v) for v in getattr(self, field))
            if len(value) != 2 or min(value) < 1:
                raise ValueError(f"ImageSizes.{field} must be (height, width) > 0, got "
                                 f"{getattr(self, field)!r}")
            object.__setattr__(self, field, value)

    @classmethod
    def named(cls, name: str, dataset: str = "cvusa") -> "ImageSizes":
        """The sizes ``--image_size=name`` gives for ``dataset`` (its registry entry:
        ``paper``, ``half``, ``small``, ``tiny``)."""
        from .registry import get_dataset
        satellite, ground = get_dataset(dataset).sizes(name)
        return cls(satellite=satellite, ground=ground)

    @classmethod
    def paper(cls, dataset: str = "cvusa") -> "ImageSizes":
        """The paper's sizes for ``dataset``: CVUSA/CVACT satellite 512x512, ground 224x1232;
        Vo & Hays ground crops 224x224 as in the gt-crossview Caffe net (our choice, the
        paper does not say); University-1652 256x256 (the benchmark's input size)."""
        return cls.named("paper", dataset)

    @classmethod
    def small(cls) -> "ImageSizes":
        """Tiny sizes for tests and CPU smoke runs: satellite 64x64, ground 32x128."""
        return cls.named("tiny")

    @property
    def is_paper_ground(self) -> bool:
        return self.ground == (224, 1232)


def require_dir(path: str, what: str) -> str:
    """Return ``path`` if it is an existing directory, else raise FileNotFoundError naming it."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what} not found: {path!r} is not a directory")
    return path


def require_file(path: str, what: str) -> str:
    """Return ``path`` if it is an existing file, else raise FileNotFoundError naming it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} not found: {path!r}")
    return path


def drop_missing(pairs: list, check_files: bool, name: str):
    """Split ``pairs`` [(source_index, sat_path, grd_path, extra)] into kept and dropped.

    A pair is dropped (and logged with its path) when one of its image files does not
    exist. Returns ``(kept_pairs, dropped_items)``.
    """
    if not check_files:
        return pairs, []
    kept, dropped = [], []
    for item in pairs:
        src, sat, grd = item[0], item[1], item[2]
        missing = [p for p in (sat, grd) if not os.path.isfile(p)]
        if missing:
            for p in missing:
                dropped.append(DroppedItem(src, p, "image file missing"))
        else:
            kept.append(item)
    if dropped:
        log.warning("%s: dropped %d pair(s) whose image file is missing:\n  %s", name,
                    len({d.index for d in dropped}), first_items([d.path for d in dropped], 10, "\n  "))
    return kept, dropped


def list_distractor_images(folder: str, extensions: Sequence[str] = IMAGE_EXTENSIONS,
                           recursive: bool = False) -> list:
    """Sorted paths of the satellite-only distractor images in ``folder``.

    They are appended after a test database (rows N.. of the database); see
    :func:`cvmnet_tf.data.pipeline.make_satellite_database`. Raises FileNotFoundError naming
    the folder when it does not exist, ValueError when it holds no image.
    """
    require_dir(folder, "distractor folder")
    exts = tuple(e.lower() for e in extensions)
    paths = []
    if recursive:
        for root, _, files in os.walk(folder):
            paths += [os.path.join(root, f) for f in files if f.lower().endswith(exts)]
    else:
        paths = [os.path.join(folder, f) for f in os.listdir(folder)
                 if f.lower().endswith(exts) and os.path.isfile(os.path.join(folder, f))]
    if not paths:
        raise ValueError(f"distractor folder {folder!r} holds no image ({', '.join(exts)})")
    return sorted(paths)
