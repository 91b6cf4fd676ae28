"""Saving and restoring training checkpoints, and the released code's recall file.

The layout (``Model/<model>/<epoch>/``, ``Result/<model>_accuracy.txt`` ...) and the
``state.json`` parsing live in :mod:`cvmnet_tf.inference.checkpoints`; this module writes
them atomically (a checkpoint folder appears under its final name only once complete) and
restores the optimizer state of a resumed run.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from cvmnet_tf.inference.checkpoints import (MODEL_FILE, OPTIMIZER_FILE, STATE_FILE, CheckpointError,
                                             checkpoint_path, list_checkpoints, model_dir, read_state,
                                             result_paths)
from cvmnet_tf.utils import atomic_io
from cvmnet_tf.utils.test_hooks import pause_point

__all__ = ["CheckpointError", "MODEL_FILE", "OPTIMIZER_FILE", "STATE_FILE", "model_dir", "checkpoint_path",
           "result_paths", "list_checkpoints", "read_state", "save_checkpoint", "restore_checkpoint",
           "check_same_architecture", "write_result_files", "write_learning_curve", "format_recall_line",
           "read_history"]


def save_checkpoint(output_dir: str, model, optimizer, epoch: int, state: dict) -> str:
    """Write the checkpoint of ``epoch`` atomically; returns its folder."""
    path = checkpoint_path(output_dir, state["config"]["model"], epoch)
    with atomic_io.atomic_path(path) as tmp:
        os.makedirs(tmp)
        model.save(os.path.join(tmp, MODEL_FILE))
        if optimizer is not None and optimizer.built:
            arrays = {f"v{i:05d}": np.asarray(v.numpy() if hasattr(v, "numpy") else v)
                      for i, v in enumerate(optimizer.variables)}
            np.savez(os.path.join(tmp, OPTIMIZER_FILE), **arrays)
        with open(os.path.join(tmp, STATE_FILE), "w", encoding="utf-8") as f:
            json.dump(dict(state, epoch=epoch), f, indent=2, sort_keys=True)
        pause_point("checkpoint_write")
    return path


def check_same_architecture(state: dict, config: dict, path: str) -> None:
    """Raise :class:`CheckpointError` when the checkpoint's network differs from ``config``."""
    from cvmnet_tf.training.config import ARCHITECTURE_KEYS, TrainConfig

    saved = state.get("config", {})
    defaults = TrainConfig().to_dict()  # a key an older checkpoint lacks had its default value
    diffs = [f"{k}: checkpoint {saved.get(k, defaults[k])!r} vs requested {config.get(k)!r}"
             for k in ARCHITECTURE_KEYS if _norm(saved.get(k, defaults[k])) != _norm(config.get(k))]
    if diffs:
        raise CheckpointError(
            f"checkpoint {path} belongs to another model ({'; '.join(diffs)}); "
            "use another --output_dir or the matching flags")


def restore_checkpoint(path: str, model, optimizer, config: dict) -> dict:
    """Load weights (and optimizer variables) saved by :func:`save_checkpoint` into
    ``model``/``optimizer``; returns the saved state. The optimizer must be built."""
    state = read_state(path)
    check_same_architecture(state, config, path)
    model_file = os.path.join(path, MODEL_FILE)
    try:
        model.load_weights(model_file)
    except Exception as exc:  # shape or layer mismatch
        raise CheckpointError(f"cannot load {model_file} into {config.get('model')}: {exc}") from exc
    opt_file = os.path.join(path, OPTIMIZER_FILE)
    if optimizer is not None and os.path.exists(opt_file):
        try:
            with np.load(opt_file, allow_pickle=False) as data:
                values = [data[k] for k in sorted(data.files)]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise CheckpointError(
                f"{opt_file}: unreadable optimizer state ({exc}): the checkpoint is damaged; move "
                f"{path} aside to resume from the epoch before, or start again with --overwrite") from None
        variables = optimizer.variables
        if len(values) != len(variables):
            raise CheckpointError(
                f"{opt_file} holds {len(values)} optimizer variables, the optimizer has {len(variables)}")
        for var, value in zip(variables, values):
            if tuple(var.shape) != value.shape:
                raise CheckpointError(
                    f"{opt_file}: optimizer variable {var.path} has shape {tuple(var.shape)}, "
                    f"the file {value.shape}")
            var.assign(value)
    return state


def write_result_files(output_dir: str, model_name: str, history: list[dict]) -> None:
    """Rewrite the recall file, the metrics log and the learning curve from ``history`` (one
    dict per epoch, ascending, with keys epoch, iterations, metrics), so that after a resume
    they hold exactly one entry for every completed epoch."""
    paths = result_paths(output_dir, model_name)
    lines = [format_recall_line(h["epoch"], h["iterations"], h["metrics"]["recall@1%"]) for h in history]
    files = {"accuracy": "".join(line + "\n" for line in lines),
             "metrics": "".join(json.dumps(h, sort_keys=True) + "\n" for h in history)}
    with atomic_io.atomic_paths({key: paths[key] for key in files}) as tmps:  # both or neither
        for key, text in files.items():
            with open(tmps[key], "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        pause_point("result_write")
    write_learning_curve(paths["curve"], model_name, history)


def write_learning_curve(path: str, model_name: str, history: list[dict]) -> bool:
    """``Result/<model>_learning_curve.png`` (atomically): validation recall@1 and recall@1%
    per epoch with their chance levels (the metrics "chance_recall@1" / "chance_recall@1%"
    the validation writes). Returns False, writing nothing, for an empty history or records
    without chance levels (checkpoints of older versions)."""
    if not history or any("chance_recall@1" not in h["metrics"] for h in history):
        return False
    from cvmnet_tf.evaluation.plots import plot_learning_curve

    last = history[-1]["metrics"]
    plot_learning_curve([h["epoch"] for h in history], [h["metrics"]["recall@1"] for h in history],
                        [h["metrics"]["recall@1%"] for h in history], last["chance_recall@1"],
                        last["chance_recall@1%"], path,
                        title=f"{model_name}: validation recall, {last.get('num_database', '?')} database images")
    return True


def format_recall_line(epoch: int, iterations: int, recall: float) -> str:
    """The released code's line: ``str(epoch) + ' ' + str(iter) + ' : ' + str(recall)``."""
    return f"{epoch} {iterations} : {float(recall)!r}"


def read_history(output_dir: str, model_name: str, up_to_epoch: int) -> list[dict]:
    """The per-epoch records of checkpoints 1..up_to_epoch (from their state files)."""
    history = []
    for epoch in list_checkpoints(output_dir, model_name):
        if 1 <= epoch <= up_to_epoch:
            state = read_state(checkpoint_path(output_dir, model_name, epoch))
            history.append(state["record"])
    return history


def _norm(value):
    return list(value) if isinstance(value, (list, tuple)) else value
