"""Where a training run keeps its checkpoints, and loading a trained model from one.

Layout under a run's ``output_dir`` (as the released TF1 code: ``Model/`` and ``Result/``)::

    Model/<model>/0/                     the initial model (before any training)
    Model/<model>/<epoch>/model.keras    the Keras model (architecture + weights)
    Model/<model>/<epoch>/optimizer.npz  the optimizer's variables, in ``optimizer.variables`` order
    Model/<model>/<epoch>/state.json     epoch, global step, the run's config, validation record
    Result/<model>_accuracy.txt          "<epoch> <iter> : <recall@1%>" one line per epoch
    Result/<model>_metrics.jsonl         every metric of every epoch, one JSON object a line
    Result/<model>_flags.json            the resolved configuration of the run
    Result/<model>_learning_curve.png    validation recall@1 / recall@1% per epoch, with chance

A checkpoint folder appears under its final name only once complete (written under a
temporary name, then renamed), so "the last complete checkpoint" is the highest numbered
folder holding a ``state.json``. The file names and the ``state.json`` parsing live here
only; training (save / restore / resume), export, extraction and localization use them.

Accepted by :func:`load_model`: a checkpoint folder ``Model/<model>/<epoch>/`` or a
``.keras`` file (e.g. written by the TF1 converter); its ``state.json``, if one lies beside
it, supplies the dataset and is checked against the model. The ``.keras`` file describes
its own architecture (:class:`cvmnet_tf.models.CrossViewModel`), so nothing is guessed.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from typing import Optional, Tuple

__all__ = ["MODEL_FILE", "OPTIMIZER_FILE", "STATE_FILE", "CheckpointError", "model_dir", "checkpoint_path",
           "result_paths", "list_checkpoints", "read_state", "load_model"]

MODEL_FILE = "model.keras"
OPTIMIZER_FILE = "optimizer.npz"
STATE_FILE = "state.json"


class CheckpointError(ValueError):
    """A checkpoint or model file is missing, incomplete, unreadable or of another model."""


def model_dir(output_dir: str, model_name: str) -> str:
    """``<output_dir>/Model/<model_name>``."""
    return os.path.join(output_dir, "Model", model_name)


def checkpoint_path(output_dir: str, model_name: str, epoch: int) -> str:
    """``<output_dir>/Model/<model_name>/<epoch>``."""
    return os.path.join(model_dir(output_dir, model_name), str(epoch))


def result_paths(output_dir: str, model_name: str) -> dict:
    """``{"accuracy", "metrics", "flags", "curve"}``: the run's files under ``<output_dir>/Result``."""
    result = os.path.join(output_dir, "Result")
    return {
        "accuracy": os.path.join(result, f"{model_name}_accuracy.txt"),
        "metrics": os.path.join(result, f"{model_name}_metrics.jsonl"),
        "flags": os.path.join(result, f"{model_name}_flags.json"),
        "curve": os.path.join(result, f"{model_name}_learning_curve.png"),
    }


def list_checkpoints(output_dir: str, model_name: str) -> list[int]:
    """Epoch numbers of the complete checkpoints, ascending."""
    root = model_dir(output_dir, model_name)
    if not os.path.isdir(root):
        return []
    return sorted(int(name) for name in os.listdir(root)
                  if re.fullmatch(r"\d+", name) and os.path.exists(os.path.join(root, name, STATE_FILE)))


def read_state(path: str) -> dict:
    """The parsed ``state.json`` of the checkpoint folder ``path`` (a dict with at least
    "config"). Raises :class:`CheckpointError` naming the file when it is missing,
    unreadable or not a JSON object."""
    state_file = os.path.join(path, STATE_FILE)
    if not os.path.exists(state_file):
        raise CheckpointError(f"{path} is not a complete checkpoint: {STATE_FILE} is missing")
    try:
        with open(state_file, encoding="utf-8") as f:
            state = json.load(f)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{state_file}: unreadable checkpoint state: {exc}") from exc
    if not isinstance(state, dict) or not isinstance(state.get("config") or {}, dict):
        raise CheckpointError(f"{state_file}: unreadable checkpoint state: not a JSON object with a 'config'")
    return state


def _model_file(path: str) -> Tuple[str, Optional[str]]:
    """(model file, checkpoint folder holding a state.json or None) of a checkpoint path."""
    if os.path.isdir(path):
        model_file = os.path.join(path, MODEL_FILE)
        if not os.path.isfile(model_file):
            hint = (" (it looks like a SavedModel export; pass the training checkpoint instead)"
                    if os.path.isfile(os.path.join(path, "saved_model.pb")) else "")
            raise CheckpointError(f"--checkpoint={path!r}: not a checkpoint folder: {MODEL_FILE} is "
                                  f"missing (expected <output_dir>/Model/<model>/<epoch>/){hint}")
        if not os.path.isfile(os.path.join(path, STATE_FILE)):
            raise CheckpointError(f"--checkpoint={path!r}: incomplete checkpoint, {STATE_FILE} is missing")
        return model_file, path
    if os.path.isfile(path):
        if not path.endswith(".keras"):
            raise CheckpointError(f"--checkpoint={path!r}: expected a checkpoint folder or a .keras file")
        folder = os.path.dirname(os.path.abspath(path))
        return path, folder if os.path.isfile(os.path.join(folder, STATE_FILE)) else None
    raise CheckpointError(f"--checkpoint={path!r} does not exist")


def _same(a, b) -> bool:
    def norm(v):
        return [int(x) for x in v] if isinstance(v, (list, tuple)) else v
    return norm(a) == norm(b)


def load_model(path: str, expected_model: Optional[str] = None):
    """Load a trained two-branch model from a checkpoint folder or a ``.keras`` file.

    Args:
      path: ``Model/<model>/<epoch>`` folder (``model.keras`` + ``state.json``) or a
        ``.keras`` file.
      expected_model: if given, the model name it must be (e.g. "cvm_net_i").

    Returns:
      ``(model, info)``: the ``keras.Model`` and a dict with ``model`` (name),
      ``satellite_size`` / ``ground_size`` ([height, width] pixels), ``descriptor_dim``,
      ``architecture`` (constructor arguments, for models of this package), ``dataset``
      (from state.json's config, else None), ``source`` (the absolute path), and the
      ground crop of its training run (``fov`` degrees, ``random_orientation``,
      ``fov_test_seed``, ``panorama_size`` [H, W] before the crop; 360 / False / 2019 /
      ``ground_size`` without a state.json).

    Raises:
      CheckpointError naming ``path`` for a missing file, an unknown layout, a model that
      is not a cvmnet_tf two-branch model or one that contradicts its state.json.
    """
    import keras

    import cvmnet_tf.layers  # noqa: F401 - registers the custom layers for deserialisation
    from cvmnet_tf import models  # registers the model classes

    model_file, folder = _model_file(path)
    config = dict(read_state(folder).get("config") or {}) if folder else {}
    if not zipfile.is_zipfile(model_file):  # Keras would call that "File not found"
        raise CheckpointError(f"--checkpoint={path!r}: {model_file} is not a .keras model file (not a zip "
                              "archive: truncated, corrupt or another format)")
    try:
        model = keras.saving.load_model(model_file, compile=False)
    except Exception as exc:  # noqa: BLE001 - any load failure is reported with the file
        raise CheckpointError(f"--checkpoint={path!r}: cannot load the Keras model {model_file}: "
                              f"{type(exc).__name__}: {exc}") from None
    try:
        info = models.describe_model(model, f"--checkpoint={path!r}" + ("" if model_file == path else
                                                                         f": {model_file}"))
    except ValueError as exc:
        raise CheckpointError(str(exc)) from None
    expected = dict(config)
    if "ground_size" in config and float(config.get("fov") or 360.0) < 360.0:
        from cvmnet_tf.data.fov import GroundCrop
        expected["ground_size"] = list(GroundCrop.from_config(config).network_size(config["ground_size"]))
    diffs = [f"{k}: {STATE_FILE} says {expected[k]!r}, {MODEL_FILE} has {info[k]!r}"
             for k in ("model", "satellite_size", "ground_size", "descriptor_dim")
             if k in expected and not _same(expected[k], info[k])]
    if diffs:
        raise CheckpointError(f"{path}: {STATE_FILE} and {MODEL_FILE} disagree ({'; '.join(diffs)})")
    if expected_model is not None and info["model"] != expected_model:
        raise CheckpointError(f"{path} holds model {info['model']!r}, expected {expected_model!r}")
    info["dataset"] = config.get("dataset")
    info["source"] = os.path.abspath(path)
    # The ground crop the model was trained with (limited FoV / unknown orientation); the
    # panorama size is what a panorama is resized to before the crop.
    info["fov"] = float(config.get("fov") or 360.0)
    info["random_orientation"] = bool(config.get("random_orientation", False))
    info["fov_test_seed"] = int(config.get("fov_test_seed", 2019))
    info["panorama_size"] = [int(v) for v in config.get("ground_size", info["ground_size"])]
    return model, info
