"""The dataset registry: one entry per dataset, read by every tool.

A :class:`DatasetSpec` says everything the package needs to know about a dataset:

- ``loader``: the function that reads a split from its distributed layout (imported on
  first use, so the registry itself stays light);
- ``splits`` and ``validation_split`` (the split evaluated after every training epoch);
- ``ground_rule``: how its ground images are preprocessed
  (:data:`cvmnet_tf.data.preprocessing.GROUND_RULES`);
- ``image_sizes``: the named input sizes of ``--image_size`` (``paper``, ``half``,
  ``small``, ``tiny``);
- ``loader_options``: training options that go to the loader (config field -> loader
  keyword, e.g. University-1652's ``task`` and ``distractor_dir``);
- ``published``: its dataset names in :mod:`cvmnet_tf.evaluation.published`;
- ``synthetic``: its writer in the synthetic world (``--synthetic``, ``cvmnet-synthetic``);
- ``panoramic``: its ground images are 360-degree panoramas, so a limited field of view
  and an unknown orientation can be simulated by cropping them (``--fov``,
  ``--random_orientation``: :mod:`cvmnet_tf.data.fov`).

Training flags, export, extraction, localization, evaluation and the synthetic command
read this table; a new dataset is its loader module, one entry here and its training
script.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from typing import Mapping, Optional

__all__ = ["DatasetSpec", "SyntheticSpec", "DATASETS", "DATASET_NAMES", "TRAINABLE_DATASETS", "get_dataset",
           "load_split", "resolve_target", "parse_size", "image_sizes", "STANDARD_SIZES"]

# (satellite (H, W), ground (H, W)) per size name: panoramas (CVUSA, CVACT)
STANDARD_SIZES = {
    "paper": ((512, 512), (224, 1232)),
    "half": ((256, 256), (112, 616)),
    "small": ((128, 128), (64, 320)),
    "tiny": ((64, 64), (32, 128)),
}


def resolve_target(target: str):
    """The object ``"module:name"`` names (imported now)."""
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """How the synthetic world writes a dataset in this layout.

    ``writer``: "module:function" with the arguments of
    :func:`cvmnet_tf.data.synthetic.write_dataset` minus ``layout``; ``pairs_per_item``:
    training pairs per written item (University-1652: drone views per building;
    ``--synthetic_train_pairs`` counts pairs). For ``--synthetic`` training the images are
    written at the network's input sizes (nothing is resized, and small renders are fast),
    except: ``min_side`` (University-1652: images are square and rendered at least this
    large, then area-resized by the pipeline: oblique drone views alias when rendered at
    64 px) and ``ground_rows_factor`` (CVACT: its loader keeps the central half of the
    panorama rows, so the written panorama has twice the input height). ``tile_offset``:
    the layout's tiles are centred on the camera (CVUSA, CVACT), so ``--synthetic_tile_offset_m``
    can move its training tiles off the camera.

    The world is :class:`cvmnet_tf.data.synthetic.WorldConfig` ``()``: the two views of a
    place share its geometry and surface colours only, never a per-pair or per-place label
    (``tests/test_synthetic_no_shared_label.py``).
    """

    writer: str
    pairs_per_item: int = 1
    min_side: int = 0
    ground_rows_factor: int = 1
    tile_offset: bool = False

    def write(self, out_dir: str, num_train: int, num_val: int, **kwargs) -> dict:
        """``writer(out_dir, num_train, num_val, **kwargs)``."""
        return resolve_target(self.writer)(out_dir, num_train, num_val, **kwargs)

    def training_sizes(self, satellite_size, ground_size) -> tuple:
        """(satellite (H, W), ground (H, W)) of the images written for training at these
        network input sizes (class docstring)."""
        sat, grd = tuple(int(v) for v in satellite_size), tuple(int(v) for v in ground_size)
        if self.min_side:
            side = max(self.min_side, *sat, *grd)
            return (side, side), (side, side)
        return sat, (grd[0] * self.ground_rows_factor, grd[1])

    def write_for_training(self, out_dir: str, num_train_pairs: int, num_val_pairs: int, seed: int,
                           satellite_size, ground_size, training_tile_offset_m: float = 0.0) -> dict:
        """The dataset ``--synthetic`` trains on: ``num_*_pairs`` pairs (at least 2 items per
        split when ``pairs_per_item`` > 1) at :meth:`training_sizes` of the input sizes;
        training tiles up to ``training_tile_offset_m`` metres off the camera (layouts with
        ``tile_offset`` only; validation tiles stay centred)."""
        sat, grd = self.training_sizes(satellite_size, ground_size)
        kwargs = {"seed": seed, "satellite_size": sat, "ground_size": grd}
        if training_tile_offset_m:
            if not self.tile_offset:
                raise ValueError(f"{self.writer}: this layout's tiles are not centred on the camera; "
                                 "no training tile offset")
            from cvmnet_tf.data.synthetic.config import WorldConfig

            kwargs["config"] = WorldConfig(tile_offset_m=float(training_tile_offset_m), tile_offset_splits=("train",))
        n_train, n_val = num_train_pairs, num_val_pairs
        if self.pairs_per_item > 1:
            n_train, n_val = (max(2, n // self.pairs_per_item) for n in (num_train_pairs, num_val_pairs))
            kwargs["views_per_class"] = self.pairs_per_item
        return self.write(out_dir, n_train, n_val, **kwargs)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """One dataset (module docstring)."""

    name: str
    title: str
    loader: str
    splits: tuple
    validation_split: str
    ground_rule: str
    image_sizes: Mapping[str, tuple]
    summary: str
    loader_options: Mapping[str, str] = dataclasses.field(default_factory=dict)
    published: tuple = ()
    synthetic: Optional[SyntheticSpec] = None
    trainable: bool = True
    panoramic: bool = False

    def load(self, data_dir: str, split: str, **kwargs):
        """``loader(data_dir, split, **kwargs)``: a PairSplit (or a RetrievalSplit)."""
        return resolve_target(self.loader)(data_dir, split, **kwargs)

    def sizes(self, name: str):
        """The ``(satellite (H, W), ground (H, W))`` of the size name ``name`` or ``"HxW,HxW"``."""
        return image_sizes(name, self.name)


DATASETS = {
    "cvusa": DatasetSpec(
        name="cvusa", title="CVUSA", loader="cvmnet_tf.data.cvusa:load_cvusa_split",
        splits=("train", "val", "test"), validation_split="val", ground_rule="panorama",
        image_sizes=STANDARD_SIZES, published=("cvusa",),
        summary="CVUSA (CVM-Net subset): 35,532 train / 8,884 val pairs, 224x1232 panoramas",
        synthetic=SyntheticSpec("cvmnet_tf.data.synthetic.writers.cvusa:write_cvusa", tile_offset=True),
        panoramic=True),
    "cvact": DatasetSpec(
        name="cvact", title="CVACT", loader="cvmnet_tf.data.cvact:load_cvact_split",
        splits=("train", "val", "test"), validation_split="val", ground_rule="central_rows",
        image_sizes=STANDARD_SIZES, published=("cvact_val", "cvact_test"),
        summary="CVACT (OriCNN): ACT_small train/val, ACT_test with UTM geo-recall",
        synthetic=SyntheticSpec("cvmnet_tf.data.synthetic.writers.cvact:write_cvact", ground_rows_factor=2,
                                tile_offset=True),
        panoramic=True),
    "vohays": DatasetSpec(
        name="vohays", title="Vo & Hays", loader="cvmnet_tf.data.vohays:load_vohays_split",
        splits=("train", "val", "test"), validation_split="test", ground_rule="resize_crop",
        # ground images are square crops of panoramas, not panoramas
        image_sizes={"paper": ((512, 512), (224, 224)), "half": ((256, 256), (112, 112)),
                     "small": ((128, 128), (64, 64)), "tiny": ((64, 64), (48, 48))},
        loader_options={"test_city": "test_city"}, published=("vohays",),
        summary="Vo & Hays (gt-crossview): 8 training cities, Denver test; square ground crops",
        synthetic=SyntheticSpec("cvmnet_tf.data.synthetic.writers.vohays:write_vohays")),
    "university1652": DatasetSpec(
        name="university1652", title="University-1652", loader="cvmnet_tf.data.university1652:load_university1652_split",
        splits=("train", "test"), validation_split="test", ground_rule="resize",
        # drone and satellite images are square; 256x256 is the benchmark's input size
        image_sizes={"paper": ((256, 256), (256, 256)), "half": ((128, 128), (128, 128)),
                     "small": ((96, 96), (96, 96)), "tiny": ((64, 64), (64, 64))},
        loader_options={"task": "task", "distractor_dir": "distractor_dir"}, published=("university1652",),
        summary="University-1652: drone <-> satellite retrieval of 1,652 buildings (drone = ground branch)",
        # 4 drone views per building, rendered at least 128 px
        synthetic=SyntheticSpec("cvmnet_tf.data.synthetic.writers.university1652:write_university1652_split",
                                pairs_per_item=4, min_side=128)),
    "vigor": DatasetSpec(
        name="vigor", title="VIGOR", loader="cvmnet_tf.data.vigor:load_vigor_split",
        splits=("train", "test"), validation_split="test", ground_rule="resize",
        # 2:1 panoramas (1024x2048), 640x640 tiles; "paper" = the VIGOR authors' own input sizes
        image_sizes={"paper": ((320, 320), (320, 640)), "half": ((160, 160), (160, 320)),
                     "small": ((128, 128), (64, 128)), "tiny": ((64, 64), (32, 64))},
        loader_options={"vigor_area": "area"}, published=("vigor_same", "vigor_cross"), panoramic=True,
        summary="VIGOR (Zhu et al. 2021): 4 US cities, same-/cross-area, positive + 3 semi-positive tiles",
        synthetic=SyntheticSpec("cvmnet_tf.data.synthetic.writers.vigor:write_vigor_dataset")),
    "pairs": DatasetSpec(
        name="pairs", title="pair list", loader="cvmnet_tf.data.vohays:load_pair_list_split",
        splits=(), validation_split="", ground_rule="resize_crop", image_sizes=STANDARD_SIZES,
        summary="a plain '<ground path> <satellite path>' list file (the split is the list file)",
        trainable=False),
}
DATASET_NAMES = tuple(DATASETS)
TRAINABLE_DATASETS = tuple(name for name, spec in DATASETS.items() if spec.trainable)


def get_dataset(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name``; ValueError listing the choices otherwise."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}")
    return DATASETS[name]


_HW = r"\s*(\d+)\s*x\s*(\d+)\s*"


def parse_size(value: str, what: str = "size") -> tuple:
    """``"HxW"`` -> (H, W) pixels, both > 0 (height first); ValueError naming ``what``."""
    m = re.fullmatch(_HW, str(value).lower())
    if not m or min(int(g) for g in m.groups()) < 1:
        raise ValueError(f"{what}={value!r}: expected HxW in pixels (height first), e.g. 512x512")
    return int(m.group(1)), int(m.group(2))


def image_sizes(value: str, dataset: str = "cvusa", what: str = "--image_size") -> tuple:
    """``(satellite (H, W), ground (H, W))`` of a size name of ``dataset`` ("paper", "half",
    "small", "tiny") or of ``"HxW,HxW"`` (satellite,ground); ValueError naming ``what``."""
    spec = get_dataset(dataset)
    if value in spec.image_sizes:
        return spec.image_sizes[value]
    m = re.fullmatch(_HW + "," + _HW, str(value).lower())
    if not m or min(int(g) for g in m.groups()) < 1:
        raise ValueError(f"{what}={value!r}: use one of {', '.join(spec.image_sizes)} or 'HxW,HxW' "
                         "(satellite,ground in pixels, height first)")
    a, b, c, d = (int(g) for g in m.groups())
    return (a, b), (c, d)


def load_split(dataset: str, data_dir: str, split: str, **kwargs):
    """Load ``split`` of ``dataset`` (a :data:`DATASETS` name).

    Returns a :class:`~cvmnet_tf.data.splits.PairSplit`; University-1652's "test" split is
    a :class:`~cvmnet_tf.data.splits.RetrievalSplit` (labelled query set and gallery).
    ``dataset="pairs"`` reads a plain "<ground path> <satellite path>" list: pass the list
    file as ``split`` (relative to ``data_dir`` or absolute). Extra keyword arguments go to
    the dataset's loader.
    """
    return get_dataset(dataset).load(data_dir, split, **kwargs)
