"""Export a trained model as a self-contained TensorFlow SavedModel for serving.

The SavedModel (``tf.saved_model.save`` of a ``tf.Module``) has two serving signatures,
one per branch, each taking RAW images and doing the package's evaluation preprocessing
(:mod:`cvmnet_tf.data.preprocessing`) inside the graph:

- ``"ground"``:    ``images``: uint8 (batch, H, W, 3) RGB, any H, W -> ``descriptor``:
  float32 (batch, dim). Preprocessing: the dataset's ground rule (CVACT: central half of
  the rows; Vo & Hays: resize 230/224 + centre crop; CVUSA: panoramas of exactly the
  model's size pass unchanged, any other size is area-resized; University-1652: area
  resize), then RGB -> BGR minus the caffe means.
- ``"satellite"``: the same for satellite tiles (area resize to satellite_size).

Both are also callable after loading as ``loaded.ground(images)`` /
``loaded.satellite(images)``. Loading needs only TensorFlow (not cvmnet_tf, not Keras)::

    m = tf.saved_model.load("export/cvm_net_i")
    d = m.signatures["ground"](images=tf.constant(uint8_batch))["descriptor"]

A ``cvmnet_export.json`` beside ``saved_model.pb`` records the model name, input sizes
(height, width in pixels), dataset, descriptor size, the model fingerprint
(:func:`cvmnet_tf.inference.fingerprint.model_fingerprint`) and, for a model trained with a
limited field of view (``--fov``), its FoV: the ``ground`` signature of such a model takes
the limited-FoV photo (resized to the network's ground input), not a panorama. The folder is written under a
temporary name and renamed when complete: a failed export leaves nothing behind. An
existing ``output`` is replaced only when it is an earlier export of this package (both
files present) or empty; any other folder (a training run, a user's files) is refused.
"""

from __future__ import annotations

import json
import os
from typing import Optional

from cvmnet_tf.utils import atomic_io

__all__ = ["EXPORT_INFO_FILE", "make_serving_module", "export_saved_model", "is_saved_model", "is_export",
           "check_export_output", "read_export_info"]

EXPORT_INFO_FILE = "cvmnet_export.json"


def _check_dataset(dataset: str, flag: str = "--dataset") -> str:
    from cvmnet_tf.data import DATASET_NAMES
    if dataset not in DATASET_NAMES:
        raise ValueError(f"{flag}={dataset!r}: choose one of {', '.join(DATASET_NAMES)}")
    return dataset


def make_serving_module(model, satellite_size, ground_size, dataset: str = "cvusa"):
    """A ``tf.Module`` with ``ground(images)`` / ``satellite(images)`` tf.functions.

    Each takes uint8 RGB (batch, H, W, 3), any H, W, and returns
    ``{"descriptor": float32 (batch, dim)}`` (inference mode, dropout off).
    """
    import tensorflow as tf

    from cvmnet_tf import models
    from cvmnet_tf.data import preprocessing as pp

    _check_dataset(dataset)
    sat_size = tuple(int(v) for v in satellite_size)
    grd_size = tuple(int(v) for v in ground_size)
    sat_encoder = models.satellite_encoder(model)
    grd_encoder = models.ground_encoder(model)
    exact_size_only = pp.ground_rule(dataset) == "panorama" and grd_size == pp.PAPER_PANORAMA_SIZE

    def preprocess_ground_one(image):
        if exact_size_only:
            # The released rule needs an exact-size panorama; the server resizes others.
            same = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.constant(grd_size)))
            return tf.cond(same, lambda: pp.preprocess_ground(image, grd_size, dataset),
                           lambda: pp.preprocess_ground(image, grd_size, "resize"))
        return pp.preprocess_ground(image, grd_size, dataset)

    def preprocess_satellite_one(image):
        return pp.preprocess_satellite(image, sat_size, training=False)

    spec = tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")

    class CVMNetServing(tf.Module):
        def __init__(self):
            super().__init__(name="cvmnet_serving")
            self.satellite_encoder = sat_encoder
            self.ground_encoder = grd_encoder
            # Kept as plain trackable values so a loaded model can tell its configuration.
            self.satellite_size = tf.constant(sat_size, tf.int32)
            self.ground_size = tf.constant(grd_size, tf.int32)
            self.dataset = tf.constant(dataset)

        @tf.function(input_signature=[spec])
        def ground(self, images):
            x = tf.map_fn(preprocess_ground_one, images,
                          fn_output_signature=tf.TensorSpec(grd_size + (3,), tf.float32))
            return {"descriptor": tf.cast(self.ground_encoder(x, training=False), tf.float32)}

        @tf.function(input_signature=[spec])
        def satellite(self, images):
            x = tf.map_fn(preprocess_satellite_one, images,
                          fn_output_signature=tf.TensorSpec(sat_size + (3,), tf.float32))
            return {"descriptor": tf.cast(self.satellite_encoder(x, training=False), tf.float32)}

    return CVMNetServing()


def export_saved_model(checkpoint: str, output: str, dataset: Optional[str] = None) -> dict:
    """Export ``checkpoint`` (folder or .keras, see :func:`cvmnet_tf.inference.load_model`) to
    the SavedModel folder ``output`` (atomically: temporary folder, then rename).

    ``dataset`` (a registry name) selects the ground preprocessing; default the
    checkpoint's training dataset, else "cvusa". Returns the export info dict (also
    written to ``<output>/cvmnet_export.json``).
    """
    import tensorflow as tf

    from cvmnet_tf.inference.checkpoints import load_model

    if dataset is not None:
        _check_dataset(dataset)
    check_export_output(output)
    model, info = load_model(checkpoint)
    dataset = dataset or info.get("dataset") or "cvusa"
    try:
        _check_dataset(dataset)
    except ValueError:
        raise ValueError(f"{checkpoint}: its dataset {dataset!r} has no ground preprocessing; "
                         "pass --dataset") from None
    from cvmnet_tf.inference.fingerprint import model_fingerprint

    module = make_serving_module(model, info["satellite_size"], info["ground_size"], dataset)
    signatures = {"ground": module.ground.get_concrete_function(),
                  "satellite": module.satellite.get_concrete_function()}
    export_info = dict(info, dataset=dataset, inputs="uint8 RGB (batch, H, W, 3), any H, W",
                       outputs="descriptor: float32 (batch, descriptor_dim)",
                       signatures=sorted(signatures), model_fingerprint=model_fingerprint(model))
    if float(info.get("fov") or 360.0) < 360.0:
        export_info["ground_input"] = (f"a limited-FoV photo of about {info['fov']:g} degrees (the model was trained "
                                       f"on {info['fov']:g}-degree crops of panoramas), resized to "
                                       f"{info['ground_size'][0]}x{info['ground_size'][1]}")
    atomic_io.remove_stale_temporaries(os.path.dirname(os.path.abspath(output)), os.path.basename(output))
    with atomic_io.atomic_path(output) as tmp:
        tf.saved_model.save(module, tmp, signatures=signatures)
        with open(os.path.join(tmp, EXPORT_INFO_FILE), "w", encoding="utf-8") as f:
            json.dump(export_info, f, indent=2, sort_keys=True)
    return export_info


def is_export(path: str) -> bool:
    """True when ``path`` is a SavedModel folder written by :func:`export_saved_model`."""
    return is_saved_model(path) and os.path.isfile(os.path.join(path, EXPORT_INFO_FILE))


def check_export_output(output: str, flag: str = "--output") -> None:
    """Raise FileExistsError naming ``flag`` unless ``output`` may be (re)written: missing,
    an empty folder or an earlier export of this package (:func:`is_export`)."""
    if not str(output).strip():
        raise FileExistsError(f"{flag} is empty: name the SavedModel folder to write")
    if not os.path.exists(output):
        return
    if not os.path.isdir(output):
        raise FileExistsError(f"{flag}={output!r} exists and is not a folder")
    if os.listdir(output) and not is_export(output):
        raise FileExistsError(
            f"{flag}={output!r} is a folder that is not an export of cvmnet-export (no saved_model.pb and "
            f"{EXPORT_INFO_FILE}); it is left alone: choose a new folder")


def is_saved_model(path: str) -> bool:
    """True when ``path`` is a folder holding ``saved_model.pb``."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb"))


def read_export_info(path: str) -> dict:
    """The ``cvmnet_export.json`` of a SavedModel folder ({} when there is none)."""
    info_file = os.path.join(path, EXPORT_INFO_FILE)
    if not os.path.isfile(info_file):
        return {}
    try:
        with open(info_file, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{info_file}: unreadable export info: {exc}") from exc
