"""Export a trained model as a self-contained TensorFlow SavedModel for serving.

Usage::

    python -m cvmnet_tf.export --checkpoint runs/Model/cvm_net_i/12 --output export/cvm_net_i
    python -m cvmnet_tf.export --checkpoint converted.keras --output export/x --dataset cvact

The SavedModel (``tf.saved_model.save`` of a ``tf.Module``) has two serving signatures,
one per branch, each taking RAW images and doing the package's evaluation preprocessing
(:mod:`cvmnet_tf.data.preprocessing`) inside the graph:

- ``"ground"``:    ``images``: uint8 (batch, H, W, 3) RGB, any H, W -> ``descriptor``:
  float32 (batch, dim). Preprocessing: ``preprocess_ground(image, ground_size, dataset)``
  (CVACT: central half of the rows; Vo & Hays: resize 230/224 + centre crop; CVUSA:
  panoramas of exactly the model's size pass unchanged, any other size is area-resized),
  then RGB -> BGR minus the caffe means.
- ``"satellite"``: the same for satellite tiles (area resize to satellite_size).

Both are also callable after loading as ``loaded.ground(images)`` /
``loaded.satellite(images)``. Loading needs only TensorFlow (not cvmnet_tf, not Keras)::

    m = tf.saved_model.load("export/cvm_net_i")
    d = m.signatures["ground"](images=tf.constant(uint8_batch))["descriptor"]

A ``cvmnet_export.json`` beside ``saved_model.pb`` records the model name, input sizes
(height, width in pixels), dataset and descriptor size. The folder is written under a
temporary name and renamed when complete: a failed export leaves nothing behind.

Checkpoints accepted (:func:`load_model`): a training checkpoint folder
``<output_dir>/Model/<model>/<epoch>/`` (``model.keras`` + ``state.json``) or a ``.keras``
file (e.g. from :mod:`cvmnet_tf.convert_tf1`); its ``state.json``, if one lies beside it,
supplies the dataset.
"""

from __future__ import annotations

import json
import os
from typing import Optional, Tuple

EXPORT_INFO_FILE = "cvmnet_export.json"
MODEL_FILE = "model.keras"
STATE_FILE = "state.json"
DATASETS = ("cvusa", "cvact", "vohays", "university1652")
MODEL_NAMES = ("cvm_net_i", "cvm_net_ii", "siamese_vgg", "siamese_alexnet")


class ModelLoadError(ValueError):
    """A checkpoint / model path that is missing, of an unknown layout or of another model."""


def _model_info(model, source: str) -> dict:
    inputs = model.input if isinstance(model.input, dict) else None
    outputs = model.output if isinstance(model.output, dict) else None
    if not inputs or not outputs or set(inputs) != {"satellite", "ground"} or set(outputs) != {"satellite", "ground"}:
        raise ModelLoadError(
            f"{source}: model {model.name!r} is not a cvmnet_tf two-branch model (expected dict "
            "inputs and outputs 'satellite' and 'ground', as built by cvmnet_tf.models)")
    sat_shape = tuple(inputs["satellite"].shape[1:3])
    grd_shape = tuple(inputs["ground"].shape[1:3])
    if None in sat_shape or None in grd_shape:
        raise ModelLoadError(f"{source}: model inputs need fixed sizes, got satellite {sat_shape}, "
                             f"ground {grd_shape}")
    dims = {k: outputs[k].shape[-1] for k in ("satellite", "ground")}
    if dims["satellite"] != dims["ground"]:
        raise ModelLoadError(f"{source}: branch descriptor sizes differ: {dims}")
    return {"model": model.name, "satellite_size": [int(v) for v in sat_shape],
            "ground_size": [int(v) for v in grd_shape], "descriptor_dim": int(dims["ground"])}


def load_model(path: str, expected_model: Optional[str] = None) -> Tuple[object, dict]:
    """Load a trained two-branch model from a checkpoint folder or a ``.keras`` file.

    Args:
      path: ``Model/<model>/<epoch>`` folder (``model.keras`` + ``state.json``) or a
        ``.keras`` file.
      expected_model: if given, the model name it must be (e.g. "cvm_net_i").

    Returns:
      ``(model, info)``: the ``keras.Model`` and a dict with ``model`` (name),
      ``satellite_size`` / ``ground_size`` ([height, width] pixels), ``descriptor_dim``,
      ``dataset`` (from state.json's config, else None) and ``source`` (the path).

    Raises:
      ModelLoadError naming ``path`` for a missing file, an unknown layout, a model that
      is not a cvmnet_tf two-branch model or one that contradicts its state.json.
    """
    import keras

    import cvmnet_tf.layers  # noqa: F401 - registers the custom layers for deserialisation
    import cvmnet_tf.models  # noqa: F401 - registers the model classes

    if os.path.isdir(path):
        model_file = os.path.join(path, MODEL_FILE)
        if not os.path.isfile(model_file):
            hint = (" (it looks like a SavedModel export; pass the training checkpoint instead)"
                    if os.path.isfile(os.path.join(path, "saved_model.pb")) else "")
            raise ModelLoadError(f"--checkpoint={path!r}: not a checkpoint folder: {MODEL_FILE} is "
                                 f"missing (expected <output_dir>/Model/<model>/<epoch>/){hint}")
        state_file = os.path.join(path, STATE_FILE)
        if not os.path.isfile(state_file):
            raise ModelLoadError(f"--checkpoint={path!r}: incomplete checkpoint, {STATE_FILE} is missing")
    elif os.path.isfile(path):
        if not path.endswith(".keras"):
            raise ModelLoadError(f"--checkpoint={path!r}: expected a checkpoint folder or a .keras file")
        model_file = path
        state_file = os.path.join(os.path.dirname(os.path.abspath(path)), STATE_FILE)
    else:
        raise ModelLoadError(f"--checkpoint={path!r} does not exist")

    config = {}
    if os.path.isfile(state_file):
        try:
            with open(state_file, encoding="utf-8") as f:
                config = dict(json.load(f).get("config") or {})
        except (OSError, ValueError, AttributeError) as exc:
            raise ModelLoadError(f"{state_file}: unreadable checkpoint state: {exc}") from exc
    try:
        model = keras.saving.load_model(model_file, compile=False)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported with the file
        raise ModelLoadError(f"{model_file}: cannot load the Keras model: {exc}") from exc
    info = _model_info(model, model_file)
    checks = [("model", info["model"]), ("satellite_size", info["satellite_size"]),
              ("ground_size", info["ground_size"]), ("descriptor_dim", info["descriptor_dim"])]
    diffs = [f"{k}: {STATE_FILE} says {config[k]!r}, model.keras has {v!r}"
             for k, v in checks if k in config and _norm(config[k]) != _norm(v)]
    if diffs:
        raise ModelLoadError(f"{path}: {STATE_FILE} and {MODEL_FILE} disagree ({'; '.join(diffs)})")
    if expected_model is not None and info["model"] != expected_model:
        raise ModelLoadError(f"{path} holds model {info['model']!r}, expected {expected_model!r}")
    info["dataset"] = config.get("dataset")
    info["source"] = os.path.abspath(path)
    return model, info


def _norm(v):
    return [int(x) for x in v] if isinstance(v, (list, tuple)) else v


def make_serving_module(model, satellite_size, ground_size, dataset: str = "cvusa"):
    """A ``tf.Module`` with ``ground(images)`` / ``satellite(images)`` tf.functions.

    Each takes uint8 RGB (batch, H, W, 3), any H, W, and returns
    ``{"descriptor": float32 (batch, dim)}`` (inference mode, dropout off).
    """
    import tensorflow as tf

    from cvmnet_tf import models
    from cvmnet_tf.data import preprocessing as pp

    if dataset not in DATASETS:
        raise ValueError(f"--dataset={dataset!r}: choose one of {', '.join(DATASETS)}")
    sat_size = tuple(int(v) for v in satellite_size)
    grd_size = tuple(int(v) for v in ground_size)
    sat_encoder = models.satellite_encoder(model)
    grd_encoder = models.ground_encoder(model)

    def preprocess_ground_one(image):
        if dataset == "cvusa":
            # The released rule needs an exact-size panorama; the server resizes others.
            same = tf.reduce_all(tf.equal(tf.shape(image)[:2], tf.constant(grd_size)))
            return tf.cond(same, lambda: pp.preprocess_ground(image, grd_size, "cvusa"),
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
    """Export ``checkpoint`` (folder or .keras, see :func:`load_model`) to the SavedModel
    folder ``output`` (atomically: temporary folder, then rename).

    ``dataset`` ("cvusa" | "cvact" | "vohays") selects the ground preprocessing; default
    the checkpoint's training dataset, else "cvusa". Returns the export info dict (also
    written to ``<output>/cvmnet_export.json``).
    """
    import tensorflow as tf

    from cvmnet_tf.utils import atomic_io

    if dataset is not None and dataset not in DATASETS:
        raise ValueError(f"--dataset={dataset!r}: choose one of {', '.join(DATASETS)}")
    if os.path.exists(output) and not os.path.isdir(output):
        raise ValueError(f"--output={output!r} exists and is not a folder")
    model, info = load_model(checkpoint)
    dataset = dataset or info.get("dataset") or "cvusa"
    if dataset not in DATASETS:
        raise ValueError(f"{checkpoint}: its dataset {dataset!r} has no ground preprocessing; "
                         f"pass --dataset (one of {', '.join(DATASETS)})")
    module = make_serving_module(model, info["satellite_size"], info["ground_size"], dataset)
    signatures = {"ground": module.ground.get_concrete_function(),
                  "satellite": module.satellite.get_concrete_function()}
    export_info = dict(info, dataset=dataset, inputs="uint8 RGB (batch, H, W, 3), any H, W",
                       outputs="descriptor: float32 (batch, descriptor_dim)",
                       signatures=sorted(signatures))
    with atomic_io.atomic_path(output) as tmp:
        tf.saved_model.save(module, tmp, signatures=signatures)
        with open(os.path.join(tmp, EXPORT_INFO_FILE), "w", encoding="utf-8") as f:
            json.dump(export_info, f, indent=2, sort_keys=True)
    return export_info


def is_saved_model(path: str) -> bool:
    """True when ``path`` is a folder holding ``saved_model.pb``."""
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb"))


def main(argv=None):
    from absl import app, flags

    flags.DEFINE_string("checkpoint", None, "Checkpoint folder <output_dir>/Model/<model>/<epoch> or a .keras file.")
    flags.DEFINE_string("output", None, "SavedModel folder to write (replaced atomically if it exists).")
    flags.DEFINE_enum("dataset", None, list(DATASETS),
                      "Ground preprocessing to build in (default: the checkpoint's training dataset, else cvusa).")
    flags.mark_flags_as_required(["checkpoint", "output"])

    def run(_):
        f = flags.FLAGS
        try:
            info = export_saved_model(f.checkpoint, f.output, f.dataset)
        except (ModelLoadError, ValueError) as exc:
            raise app.UsageError(str(exc)) from None
        print(f"wrote SavedModel {f.output}: {info['model']}, satellite {info['satellite_size']}, "
              f"ground {info['ground_size']}, dataset {info['dataset']}, "
              f"{info['descriptor_dim']}-d descriptors; signatures 'ground' and 'satellite'")

    app.run(run, argv=argv)


if __name__ == "__main__":
    main()
