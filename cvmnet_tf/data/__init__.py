"""Datasets and tf.data input pipelines (CVUSA, CVACT, Vo & Hays, University-1652, VIGOR;
the synthetic world in :mod:`.synthetic`).

Importing this package is light: the TensorFlow-based parts load on first use of a name.

- Registry (no TensorFlow): ``DATASETS`` (one :class:`DatasetSpec` per dataset: loader,
  splits, validation split, ground preprocessing rule, named sizes, loader options,
  synthetic writer), ``DATASET_NAMES``, ``TRAINABLE_DATASETS``, ``get_dataset``,
  ``load_split``.
- Splits (no TensorFlow): ``PairSplit``, ``ImageSizes``, ``DroppedItem``,
  ``list_distractor_images``, the loaders ``load_cvusa_split``, ``load_cvact_split``,
  ``load_vohays_split``, ``load_pair_list_split``, ``load_university1652_split``;
  University-1652's ``LabelledImages``, ``RetrievalSplit``, ``class_unique_order``
  (class-unique training batches); VIGOR's ``load_vigor_split``, ``VigorSplit``,
  ``overlap_free_order`` (no two panoramas of a batch share a positive or semi-positive).
- Limited field of view (``GroundCrop``, module :mod:`.fov`; NumPy until a crop is made).
- Pipelines (TensorFlow): ``make_pair_dataset``, ``make_image_dataset``,
  ``make_satellite_database``, ``SkipReport``, ``EpochSkips``, ``check_image``.
- Preprocessing (TensorFlow, graph-safe): ``preprocess_satellite``, ``preprocess_ground``,
  ``to_network_input``, ``CAFFE_BGR_MEAN`` (module ``cvmnet_tf.data.preprocessing``).
"""
import importlib

_NAMES = {
    "DATASETS": "registry", "DATASET_NAMES": "registry", "TRAINABLE_DATASETS": "registry",
    "DatasetSpec": "registry", "get_dataset": "registry", "load_split": "registry",
    "PairSplit": "splits", "ImageSizes": "splits", "DroppedItem": "splits",
    "list_distractor_images": "splits", "LabelledImages": "splits", "RetrievalSplit": "splits",
    "load_university1652_split": "university1652", "class_unique_order": "sampling",
    "overlap_free_order": "sampling", "load_vigor_split": "vigor", "VigorSplit": "vigor", "GroundCrop": "fov",
    "load_cvusa_split": "cvusa", "load_cvact_split": "cvact",
    "load_vohays_split": "vohays", "load_pair_list_split": "vohays",
    "make_pair_dataset": "pipeline", "make_image_dataset": "pipeline",
    "make_satellite_database": "pipeline", "SkipReport": "pipeline",
    "EpochSkips": "pipeline", "check_image": "pipeline",
    "preprocess_satellite": "preprocessing", "preprocess_ground": "preprocessing",
    "to_network_input": "preprocessing", "CAFFE_BGR_MEAN": "preprocessing",
}

__all__ = sorted(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_NAMES))
