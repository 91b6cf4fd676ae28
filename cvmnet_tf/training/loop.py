"""The one training loop behind the ``train_<dataset>.py`` scripts.

``train(config)`` = :func:`setup` (data, model, optimizer, losses, resume) then, per
epoch, :func:`run_epoch` (train on the training split: exhaustive in-batch triplets, or
hard mining from ``hard_mining_from_epoch`` on) and :func:`record_epoch` (evaluate recall
on the validation split, save a checkpoint under ``Model/<model>/<epoch>/`` and rewrite
``Result/<model>_accuracy.txt`` with one line per completed epoch, as the released code
does; see :mod:`cvmnet_tf.inference.checkpoints` for the layout). ``resume=True``
continues from the last complete checkpoint with the optimizer state, the epoch count and
the recall file.

Randomness is a function of ``(seed, epoch)`` alone (shuffle order, augmentation,
dropout), so a resumed run repeats exactly what an uninterrupted run would have done.

Before any work (data generation, downloads) :func:`setup` checks every flag and the
output folder: a previous run there is continued only with ``--resume`` (with the same
run settings, or ``--allow_changed_settings``, which records the change) or replaced with
``--overwrite``; what killed runs left behind (``*.tmp-<pid>`` files and folders of dead
processes) is removed. After the last epoch a closing line names the final checkpoint
and the commands to run next (export, extract + evaluate).

``--strategy`` (:mod:`cvmnet_tf.training.distribute`): one device, MirroredStrategy or
MultiWorkerMirroredStrategy; ``--batch_size`` is the global batch. Under ``multi_worker``
every worker runs this loop in step; only the chief writes (checkpoints, result files,
flags, TensorBoard, the synthetic data); the others read ``--output_dir`` (a folder all
workers see) only to resume from the chief's last checkpoint, and skip validation.
"""

from __future__ import annotations

import dataclasses
import math
import os
import shutil
import time
from typing import Callable, Optional

import numpy as np
import tensorflow as tf
import keras

from cvmnet_tf.training import checkpoints as ckpt
from cvmnet_tf.training import distribute
from cvmnet_tf.training import keras_internals
from cvmnet_tf.training.config import TrainConfig
from cvmnet_tf.training.step import make_train_step
from cvmnet_tf.training.validation import chance_recall_at_top_percent, evaluate_model, validate_split
from cvmnet_tf.utils import atomic_io
from cvmnet_tf.utils.test_hooks import pause_point
from cvmnet_tf.utils.precision import policy_name, precision_name, uses_loss_scaling
from cvmnet_tf.utils.text import first_items

__all__ = ["train", "setup", "run_epoch", "record_epoch", "comparison_with_published", "TrainingRun", "EpochStats", "TrainResult",
           "NonFiniteLossError", "RunFolderError", "ExistingRunError", "SettingsChangedError", "prepare_data_dir",
           "write_synthetic_dataset", "evaluate_model", "chance_recall_at_top_percent", "changed_settings",
           "remove_leftovers", "learning_rate_schedule", "synthetic_data_dir", "SYNTHETIC_WORLD_VERSION"]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message names the step, the last good
    checkpoint and the file listing the batch's images."""


class RunFolderError(ValueError):
    """The flags contradict what --output_dir (or --data_dir) holds; found before any work
    (the command exits with status 2)."""


class ExistingRunError(RunFolderError, FileExistsError):
    """--output_dir holds a previous run and neither --resume nor --overwrite was given."""


class SettingsChangedError(RunFolderError):
    """--resume with run settings other than the checkpoint's, without --allow_changed_settings."""


@dataclasses.dataclass
class TrainResult:
    history: list  # one record per completed epoch: {"epoch", "iterations", "loss", "metrics", ...}
    output_dir: str
    last_checkpoint: str


@dataclasses.dataclass
class TrainingRun:
    """Everything :func:`setup` prepared and the epochs update."""

    config: TrainConfig
    log: Callable[[str], None]
    data_dir: str
    sizes: object
    train_split: object
    val_split: object
    strategy: object
    model: object
    optimizer: object
    losses: dict                      # hard mining (bool) -> loss function
    steps_per_epoch: int
    start_epoch: int
    global_step: int = 0
    history: list = dataclasses.field(default_factory=list)
    last_checkpoint: str = ""
    writer: object = None
    step_fns: dict = dataclasses.field(default_factory=dict)
    full_steps_per_epoch: int = 0       # without --max_steps_per_epoch
    settings_change: Optional[dict] = None  # {"from_epoch", "changed": {flag: [old, new]}} of this resume

    def step_fn(self, hard: bool):
        if hard not in self.step_fns:
            self.step_fns[hard] = make_train_step(self.model, self.optimizer, self.losses[hard], self.strategy,
                                                  self.config.jit_compile)
        return self.step_fns[hard]


@dataclasses.dataclass
class EpochStats:
    """What one epoch of training did."""

    hard: bool
    losses: list
    steps: int
    train_seconds: float             # from the epoch's start to its last step
    skips: Optional[object]          # the pipeline's EpochSkips


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) training as configured; returns the per-epoch history."""
    run = setup(config)
    for epoch in range(run.start_epoch, config.epochs + 1):
        record_epoch(run, epoch, run_epoch(run, epoch))
    if run.history and distribute.is_chief(run.strategy):
        table = comparison_with_published(config, run.history[-1])
        if table:
            run.log(table)
    run.log(closing_lines(run))
    return TrainResult(history=run.history, output_dir=config.output_dir, last_checkpoint=run.last_checkpoint)


def comparison_with_published(config: TrainConfig, record: dict) -> str:
    """The published rows to compare a VIGOR or limited-FoV run with (Markdown, with the
    chance levels and the tables still to fill in); "" for the other settings."""
    from cvmnet_tf.evaluation import published

    label = f"{config.model}, epoch {record['epoch']}"
    if config.dataset == "vigor":
        return published.vigor_comparison_table(record["metrics"], config.vigor_area, label=label)
    crop = config.ground_crop
    if crop.active and config.dataset in ("cvusa", "cvact"):
        name = "cvusa" if config.dataset == "cvusa" else ("cvact_test" if config.validation_split == "test"
                                                          else "cvact_val")
        return published.fov_comparison_table(record["metrics"], name, crop.fov_deg,
                                              "unknown" if crop.random_orientation else "known", label=label,
                                              test_protocol=(f"fixed headings, seed {crop.test_seed}"
                                                             if crop.random_orientation else "crops from column 0"))
    return ""


# ---------------------------------------------------------------------------------------- setup
def setup(config: TrainConfig) -> TrainingRun:
    """Check the flags and the output folder (before any work), prepare the data, build
    model / optimizer / losses (downloading weights if asked) and restore a checkpoint
    (resume) or write the initial one (epoch 0)."""
    config.validate()
    from cvmnet_tf import data as cv_data

    strategy = distribute.make_strategy(config.strategy)  # before other TensorFlow work (multi_worker)
    chief = distribute.is_chief(strategy)
    log = _logger(config.verbose if chief else 0)
    start_epoch, changed = _check_output_dir(config)
    _check_workers_agree(strategy, start_epoch, config)
    if chief:
        removed = remove_leftovers(config.output_dir, config.model)
        if removed:
            log(f"Removed {len(removed)} leftover(s) of an interrupted run: {first_items(removed, 3)}")
        data_dir = prepare_data_dir(config, log)
    distribute.barrier(strategy)  # the chief's synthetic data is complete (or generated here if not shared)
    if not chief:
        data_dir = prepare_data_dir(config, log)
    sizes = cv_data.ImageSizes(satellite=tuple(config.satellite_size), ground=tuple(config.ground_size))
    train_split, val_split = _load_splits(config, data_dir)
    keras.mixed_precision.set_global_policy(policy_name(config.mixed_precision))
    keras.utils.set_random_seed(config.seed)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"--batch_size={config.batch_size} (the global batch) must be divisible by the "
                         f"{strategy.num_replicas_in_sync} replicas of --strategy={config.strategy}")
    model, optimizer = _build(config, strategy, train_split)
    if config.overwrite and chief:
        _clear_previous_run(config)
    run = TrainingRun(config=config, log=log, data_dir=data_dir, sizes=sizes, train_split=train_split,
                      val_split=val_split, strategy=strategy, model=model, optimizer=optimizer,
                      losses=_losses(config), steps_per_epoch=_steps_per_epoch(config, train_split),
                      start_epoch=start_epoch,
                      full_steps_per_epoch=_steps_per_epoch(config, train_split, capped=False))
    _resume_or_start(run, changed)
    if config.tensorboard and chief:
        run.writer = tf.summary.create_file_writer(os.path.join(config.output_dir, "logs", config.model))
    return run


def _check_workers_agree(strategy, start_epoch: int, config: TrainConfig) -> None:
    """multi_worker: every worker must resume from the same epoch (the chief's checkpoint in
    an --output_dir all of them see); one line naming the disagreement otherwise."""
    epochs = distribute.worker_values(strategy, start_epoch)
    if len(set(epochs.tolist())) > 1:
        raise RunFolderError(
            f"--output_dir={config.output_dir}: the workers would start at epochs {epochs.tolist()} (one per "
            "replica); under --strategy=multi_worker every worker must see the chief's run folder (a shared "
            "file system), so that all resume from its last checkpoint")


def _load_splits(config: TrainConfig, data_dir: str):
    from cvmnet_tf import data as cv_data

    options = config.loader_arguments()
    train_split = cv_data.load_split(config.dataset, data_dir, "train", **options)
    if hasattr(train_split, "as_pair_split"):  # VIGOR: (positive, panorama) pairs, overlap-free batches
        train_split = train_split.as_pair_split()
    val_split = cv_data.load_split(config.dataset, data_dir, config.validation_split, **options)
    if config.max_eval_pairs and len(val_split) > config.max_eval_pairs:
        if isinstance(val_split, cv_data.RetrievalSplit):  # fewer queries, the whole gallery
            val_split = dataclasses.replace(val_split, query=val_split.query.subset(range(config.max_eval_pairs)))
        elif hasattr(val_split, "subset_queries"):  # VIGOR: fewer panoramas, the whole satellite pool
            val_split = val_split.subset_queries(range(config.max_eval_pairs))
        else:
            val_split = val_split.subset(range(config.max_eval_pairs))
    if len(train_split.satellite_paths) < config.batch_size:
        raise ValueError(f"the training split of {data_dir} has {len(train_split.satellite_paths)} pairs, "
                         f"fewer than --batch_size={config.batch_size}")
    return train_split, val_split


def learning_rate_schedule(config: TrainConfig, steps_per_epoch: int):
    """The learning rate of every step: ``config.learning_rate`` (``lr_schedule="constant"``,
    the released code's), or for "cosine" a linear warm-up from 0 over ``warmup_epochs``
    epochs, then a cosine decay to 0 at the end of the last epoch (Keras ``CosineDecay``;
    the schedule is a function of the optimizer's step count, so a resumed run continues it;
    resuming with another ``--epochs`` stretches the decay to the new last epoch)."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(int(round(config.warmup_epochs * steps_per_epoch)), total - 1)
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else config.learning_rate, decay_steps=total - warmup,
        warmup_target=config.learning_rate if warmup else None, warmup_steps=warmup)


def _build(config: TrainConfig, strategy, train_split):
    from cvmnet_tf import models as cv_models

    from cvmnet_tf.inference import tf1

    released_init = tf1.is_tf1_checkpoint(config.weights)
    with strategy.scope():
        if released_init:  # the released bundle's init model: VGG16 ImageNet weights under VGG_grd/, VGG_sat/
            model = cv_models.build_model_from_config(config, weights=None)
            tf1.load_released_backbones(model, config.weights)
        else:
            model = cv_models.build_model_from_config(config)
        optimizer = keras.optimizers.Adam(learning_rate=learning_rate_schedule(config, _steps_per_epoch(
            config, train_split)), beta_1=0.9, beta_2=0.999)
        if uses_loss_scaling(config.mixed_precision):  # fp16 only: bf16 has float32's exponent range
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)
    return model, optimizer


def _losses(config: TrainConfig) -> dict:
    """{False: the exhaustive in-batch loss, True: its hard-mining stage (when configured)}."""
    from cvmnet_tf import losses as cv_losses

    arguments = config.loss_arguments()
    out = {False: cv_losses.get_loss(config.loss, **arguments)}
    if config.hard_mining_from_epoch:
        out[True] = cv_losses.get_loss(config.loss, **dict(arguments, hard_top_k=config.hard_top_k))
    return out


def _steps_per_epoch(config: TrainConfig, train_split, capped: bool = True) -> int:
    steps = len(train_split.satellite_paths) // config.batch_size
    if train_split.labels is not None:  # class-unique batches (University-1652)
        from cvmnet_tf.data.sampling import max_class_unique_batches
        steps = max_class_unique_batches(train_split.labels, config.batch_size)
    if capped and config.max_steps_per_epoch:
        steps = min(steps, config.max_steps_per_epoch)
    return steps


def _resume_or_start(run: TrainingRun, changed: dict) -> None:
    config = run.config
    paths = ckpt.result_paths(config.output_dir, config.model)
    if run.start_epoch > 1:
        path = ckpt.checkpoint_path(config.output_dir, config.model, run.start_epoch - 1)
        state = ckpt.restore_checkpoint(path, run.model, run.optimizer, config.to_dict())
        run.global_step = int(state["global_step"])
        run.history = ckpt.read_history(config.output_dir, config.model, run.start_epoch - 1)
        if distribute.is_chief(run.strategy):
            ckpt.write_result_files(config.output_dir, config.model, run.history)
        run.log(f"Resumed from {path} (epoch {run.start_epoch - 1}, step {run.global_step})")
        if changed and distribute.is_chief(run.strategy):
            run.settings_change = {"from_epoch": run.start_epoch, "changed": changed}
            flags = _read_json(paths["flags"]) or {}
            atomic_io.write_json(paths["flags"], dict(config.to_dict(), data_dir=run.data_dir,
                                                      settings_changes=flags.get("settings_changes", [])
                                                      + [run.settings_change]))
            run.log(f"WARNING: --allow_changed_settings: from epoch {run.start_epoch} on this run uses "
                    + _format_changes(changed) + f" (recorded in {paths['flags']} and the metrics log)")
    elif distribute.is_chief(run.strategy):
        atomic_io.write_json(paths["flags"], dict(config.to_dict(), data_dir=run.data_dir))
        ckpt.save_checkpoint(config.output_dir, run.model, run.optimizer, 0,
                             {"config": config.to_dict(), "global_step": 0, "record": None})
    run.last_checkpoint = ckpt.checkpoint_path(config.output_dir, config.model, run.start_epoch - 1)


def _read_json(path: str):
    import json

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------- epoch
def run_epoch(run: TrainingRun, epoch: int) -> EpochStats:
    """Train one epoch (a fresh, seeded order and augmentation); NonFiniteLossError stops it."""
    from cvmnet_tf import data as cv_data

    config = run.config
    hard = bool(config.hard_mining_from_epoch) and epoch >= config.hard_mining_from_epoch
    epoch_seed = config.seed * 100003 + epoch
    _reset_seed_generators(run.model, epoch_seed)
    dataset, report = cv_data.make_pair_dataset(run.train_split, run.sizes, training=True,
                                                batch_size=config.batch_size, shuffle=True, seed=epoch_seed,
                                                return_report=True, augmentation=config.augmentation,
                                                ground_crop=config.ground_crop,
                                                output_dtype=_training_input_dtype(run))
    if config.max_steps_per_epoch:
        dataset = dataset.take(config.max_steps_per_epoch)
    step_fn = run.step_fn(hard)
    run.log(f"Epoch {epoch}/{config.epochs}" + (" (hard mining, top %d)" % config.hard_top_k if hard else ""))
    # Both shown as they are (stateful): the loss as the running epoch mean, so the bar's
    # last value equals the epoch line's.
    bar = keras.utils.Progbar(run.steps_per_epoch, verbose=1 if config.verbose and distribute.is_chief(run.strategy)
                              else 0,
                              stateful_metrics=["loss", "pairs/s"])
    t0 = time.perf_counter()
    t_last = t0
    losses, steps = [], 0
    for batch in distribute.distribute_dataset(run.strategy, dataset):
        loss = float(step_fn(batch))
        report.observe(distribute.global_values(run.strategy, batch["index"]))
        steps += 1
        run.global_step += 1
        if not math.isfinite(loss):
            raise _non_finite(run, epoch, steps, loss, batch)
        losses.append(loss)
        t_last = time.perf_counter()
        bar.update(steps, [("loss", float(np.mean(losses))),
                           ("pairs/s", steps * config.batch_size / max(t_last - t0, 1e-9))])
        pause_point("train_step")
    train_seconds = t_last - t0  # the time after the last step (pipeline shutdown) is not training
    cut_short = steps < run.full_steps_per_epoch
    if steps == 0:
        raise ValueError(f"epoch {epoch} ran no training step: every pair of the training split was skipped "
                         f"({_format_skips(report.end_epoch(log_result=False))})")
    skips = report.end_epoch(log_result=False, cut_short=cut_short)
    return EpochStats(hard=hard, losses=losses, steps=steps, train_seconds=train_seconds, skips=skips)


def _non_finite(run: TrainingRun, epoch: int, steps: int, loss: float, batch) -> NonFiniteLossError:
    """The error for a NaN / inf loss: the checkpoint to resume from first, then where the
    batch's files are listed (all of them, in Result/<model>_nonfinite_batch.txt)."""
    config = run.config
    if config.verbose:
        print(flush=True)  # end the progress bar's line: the error starts on its own line
    files = _batch_files(batch, run.train_split, run.strategy)
    listing = os.path.join(config.output_dir, "Result", f"{config.model}_nonfinite_batch.txt")
    try:
        if not distribute.is_chief(run.strategy):
            raise OSError("only the chief writes")
        atomic_io.write_text(listing, "".join(f + "\n" for f in files))
        where = f"the batch's {len(files)} pairs are listed in {listing}"
    except OSError:
        where = f"the batch's {len(files)} pairs"
    first = f" (first: {files[0]})" if files else ""
    return NonFiniteLossError(
        f"the training loss is {loss} at epoch {epoch}, step {steps} of the epoch (global step {run.global_step}); "
        f"last good checkpoint: {run.last_checkpoint} (continue from it with --resume, e.g. with a lower "
        f"--learning_rate and --allow_changed_settings); {where}{first}")


# ---------------------------------------------------------------------------------------- record
def record_epoch(run: TrainingRun, epoch: int, stats: EpochStats) -> dict:
    """Validate, checkpoint, rewrite the result files, log; returns the epoch's record."""
    from cvmnet_tf.evaluation.metrics import tie_warning

    config = run.config
    if not distribute.is_chief(run.strategy):
        return _worker_record(run, epoch, stats)
    t1 = time.perf_counter()
    metrics, val_skipped = validate_split(run.model, run.val_split, run.sizes, config)
    train_skipped = list(stats.skips.skipped) if stats.skips is not None else []
    record = {
        "epoch": epoch,
        "iterations": stats.steps,
        "global_step": run.global_step,
        "loss": float(np.mean(stats.losses)),
        "hard_mining": stats.hard,
        "train_seconds": round(stats.train_seconds, 3),
        "pairs_per_second": round(stats.steps * config.batch_size / max(stats.train_seconds, 1e-9), 2),
        "eval_seconds": round(time.perf_counter() - t1, 3),
        "metrics": metrics,
        "num_skipped_images": {"train": len({d.index for d in train_skipped}),
                               "validation": len({d.index for d in val_skipped})},
    }
    if train_skipped:
        record["skipped_images"] = [{"index": d.index, "path": d.path, "reason": d.reason} for d in train_skipped]
        run.log(f"Epoch {epoch}: skipped {record['num_skipped_images']['train']} training pair(s) with unreadable "
                "images: " + first_items([f"{d.path} ({d.reason})" for d in train_skipped], 10))
    if val_skipped:
        record["val_skipped_images"] = [{"index": d.index, "path": d.path, "reason": d.reason} for d in val_skipped]
        run.log(f"Epoch {epoch}: skipped {record['num_skipped_images']['validation']} validation image(s) "
                f"({config.validation_split} split, left out of the metrics): "
                + first_items([f"{d.path} ({d.reason})" for d in val_skipped], 10))
    warning = tie_warning(metrics, f"the epoch {epoch} validation")
    if warning:
        record["warnings"] = [warning]
    if run.settings_change and epoch == run.settings_change["from_epoch"]:
        record["settings_changed"] = run.settings_change["changed"]
    run.last_checkpoint = ckpt.save_checkpoint(
        config.output_dir, run.model, run.optimizer, epoch,
        {"config": config.to_dict(), "global_step": run.global_step, "record": record})
    run.history.append(record)
    ckpt.write_result_files(config.output_dir, config.model, run.history)
    if run.writer is not None:
        with run.writer.as_default():
            tf.summary.scalar("train/loss", record["loss"], step=epoch)
            tf.summary.scalar("train/pairs_per_second", record["pairs_per_second"], step=epoch)
            for key, value in metrics.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    tf.summary.scalar(f"val/{key}", value, step=epoch)
        run.writer.flush()
    run.log(_epoch_line(epoch, record, metrics))
    if warning:
        run.log(f"WARNING: {warning}")
    return record


def _worker_record(run: TrainingRun, epoch: int, stats: EpochStats) -> dict:
    """A non-chief worker's epoch (multi_worker): no validation, nothing written."""
    record = {"epoch": epoch, "iterations": stats.steps, "global_step": run.global_step,
              "loss": float(np.mean(stats.losses)), "hard_mining": stats.hard, "metrics": {}}
    run.history.append(record)
    return record


def _epoch_line(epoch, record, metrics) -> str:
    def figure(key):
        text = f"{key} {100 * metrics[key]:.2f}%"
        against = metrics.get(f"pessimistic/{key}")
        if against is not None and against != metrics[key]:
            text += f" (ties against the query: {100 * against:.2f}%)"
        return text

    return (f"Epoch {epoch}: loss {record['loss']:.4f}, "
            + ", ".join(figure(k) for k in metrics if k.startswith("recall"))
            + (f", AP {100 * metrics['AP']:.2f}%" if "AP" in metrics else "")
            + (f", hit rate {100 * metrics['hit_rate']:.2f}% (chance {100 * metrics['chance/hit_rate']:.2f}%)"
               if "hit_rate" in metrics else "")
            + (f", mean error {metrics['meter/mean_error_m']:.1f} m (a random tile: "
               f"{metrics['chance/mean_error_m']:.1f} m)" if "meter/mean_error_m" in metrics else "")
            + (f", median rank {100 * metrics['median_rank_fraction']:.1f}% of the database (random: 50%)"
               if "median_rank_fraction" in metrics else "")
            + f" ({record['pairs_per_second']:.1f} pairs/s); chance: recall@1 {100 * metrics['chance_recall@1']:.2f}%, "
            f"recall@1% {100 * metrics['chance_recall@1%']:.2f}%")


def closing_lines(run: TrainingRun) -> str:
    """Where the final checkpoint is and the commands to run next (export; extract + evaluate)."""
    from cvmnet_tf import data as cv_data

    config = run.config
    final = run.last_checkpoint
    done = run.history[-1] if run.history else None
    figure = (f" (validation recall@1% {100 * done['metrics']['recall@1%']:.2f}%)"
              if done and "recall@1%" in done.get("metrics", {}) else "")
    split = config.validation_split
    out = os.path.join(config.output_dir, "descriptors", split)
    extract = (f"python -m cvmnet_tf.extract --checkpoint {final} --dataset {config.dataset} --data_dir "
               f"{run.data_dir} --split {split} --output {out}")
    if isinstance(run.val_split, cv_data.RetrievalSplit):
        evaluate = (f"python -m cvmnet_tf.evaluate --query {out}_query.npy --database {out}_gallery.npy "
                    f"--query_labels {out}_query_labels.npy --database_labels {out}_gallery_labels.npy")
    else:
        evaluate = f"python -m cvmnet_tf.evaluate --query {out}_ground.npy --database {out}_satellite.npy"
    export = os.path.join(config.output_dir, "export", config.model)
    offline = f"evaluate it offline:     {extract} && {evaluate}"
    if hasattr(run.val_split, "as_pair_split"):   # VIGOR: a satellite pool, evaluated by the training run only
        offline = (f"its VIGOR metrics:       {ckpt.result_paths(config.output_dir, config.model)['metrics']} "
                   "(one line per epoch; cvmnet-extract does not take VIGOR's pool)")
    return (f"Done: epoch {done['epoch'] if done else run.start_epoch - 1} of {config.epochs}; final checkpoint "
            f"{final}{figure}\n"
            f"Next: export it for serving:   python -m cvmnet_tf.export --checkpoint {final} --output {export}\n"
            f"      {offline}")


# ---------------------------------------------------------------------------------------- data
#: Tag of the synthetic world in default ``--synthetic`` folder names: a folder written by an
#: older world (e.g. v1, with its per-pair colour cast shared by both views) is never reused.
SYNTHETIC_WORLD_VERSION = "w2"


def synthetic_data_dir(config: TrainConfig) -> str:
    """The default ``--synthetic`` dataset folder: counts, seed, written sizes, world version."""
    from cvmnet_tf.data import get_dataset

    sat, grd = get_dataset(config.dataset).synthetic.training_sizes(config.satellite_size, config.ground_size)
    return os.path.join("data", f"synthetic_{config.dataset}_{config.synthetic_train_pairs}_"
                                f"{config.synthetic_val_pairs}_seed{config.seed}_{sat[0]}x{sat[1]}_{grd[0]}x{grd[1]}"
                                f"_{SYNTHETIC_WORLD_VERSION}"
                                + (f"_off{config.synthetic_tile_offset_m:g}m" if config.synthetic_tile_offset_m else ""))


def prepare_data_dir(config: TrainConfig, log=print) -> str:
    """The dataset folder to read; with ``synthetic=True`` generate it first if needed (at the
    training input sizes, see :class:`cvmnet_tf.data.registry.SyntheticSpec`)."""
    if not config.synthetic:
        if not os.path.isdir(config.data_dir):
            raise FileNotFoundError(f"--data_dir={config.data_dir}: no such folder (see data/README.md)")
        return config.data_dir
    from cvmnet_tf.data import get_dataset

    if get_dataset(config.dataset).synthetic is None:
        raise ValueError(f"--synthetic: the synthetic world has no {get_dataset(config.dataset).title} layout")
    data_dir = config.data_dir or synthetic_data_dir(config)
    marker = os.path.join(data_dir, ".complete")
    if not os.path.exists(marker):
        from cvmnet_tf.data.synthetic.files import check_output_dir

        try:  # never over a user's data: only an empty folder or one the generator wrote
            check_output_dir(data_dir, "--data_dir")
        except FileExistsError as exc:
            raise RunFolderError(str(exc)) from None
        log(f"Writing the synthetic {config.dataset} dataset to {data_dir} "
            f"({config.synthetic_train_pairs} training + {config.synthetic_val_pairs} validation pairs)")
        t0 = time.perf_counter()
        write_synthetic_dataset(data_dir, config.dataset, config.synthetic_train_pairs,
                                config.synthetic_val_pairs, config.seed, config.satellite_size, config.ground_size,
                                training_tile_offset_m=config.synthetic_tile_offset_m)
        atomic_io.write_text(marker, "ok\n")
        log(f"  done in {time.perf_counter() - t0:.1f} s")
    return data_dir


def write_synthetic_dataset(out_dir: str, dataset: str, num_train: int, num_val: int, seed: int = 0,
                            satellite_size=(64, 64), ground_size=(32, 128), training_tile_offset_m: float = 0.0) -> dict:
    """The synthetic world that ``--synthetic`` trains on, in ``dataset``'s layout (its
    registry entry's writer), written for the network input sizes ``satellite_size`` /
    ``ground_size`` ((H, W) pixels). ``num_train`` / ``num_val`` count pairs (for
    University-1652 drone images, 4 per building); CVUSA / CVACT training tiles up to
    ``training_tile_offset_m`` metres off the camera. No label is shared by the two views."""
    from cvmnet_tf.data import get_dataset

    spec = get_dataset(dataset)
    if spec.synthetic is None:
        raise ValueError(f"--synthetic: the synthetic world has no {spec.title} layout")
    return spec.synthetic.write_for_training(out_dir, num_train, num_val, seed, satellite_size, ground_size,
                                             training_tile_offset_m)


# ---------------------------------------------------------------------------------------- helpers
def _training_input_dtype(run: TrainingRun) -> str:
    """The dtype of the training batches: uint8 (preprocessed on the device by the model's
    NetworkInput layer: a quarter of the bytes over the bus, less host CPU) when a uint8 model
    trains on GPUs; else float32 network input (CPU training: no bus to save, the numbers of
    the float pipeline exactly; TensorFlow's oneDNN logs an error line about uint8 ops at the
    first step on some CPUs, seen on an AMD EPYC Zen4)."""
    from cvmnet_tf import models

    dtype = models.model_input_dtype(run.model)
    return dtype if tf.config.list_logical_devices("GPU") else "float32"


def _reset_seed_generators(model, seed: int) -> None:
    """Give every random layer (dropout) a state that depends only on ``seed``."""
    for i, gen in enumerate(keras_internals.seed_generators(model)):
        gen.state.assign(np.array([seed, 1000 + i], dtype=gen.state.dtype))


def _check_output_dir(config: TrainConfig):
    """``(first epoch to run, {flag: [old, new]} of the allowed settings changes)``; raises
    :class:`RunFolderError` (nothing changed) when the flags contradict the folder."""
    paths = ckpt.result_paths(config.output_dir, config.model)
    done = ckpt.list_checkpoints(config.output_dir, config.model)
    if config.resume:
        if not done:
            return 1, {}
        path = ckpt.checkpoint_path(config.output_dir, config.model, done[-1])
        state = ckpt.read_state(path)
        ckpt.check_same_architecture(state, config.to_dict(), path)
        changed = changed_settings(state.get("config") or {}, config.to_dict())
        if changed and not config.allow_changed_settings:
            raise SettingsChangedError(
                f"--resume: {path} was trained with other settings: {_format_changes(changed)}; resume with the "
                "checkpoint's values, or pass --allow_changed_settings to continue with the new ones (the change "
                f"is recorded in {paths['flags']} and the metrics log)")
        return done[-1] + 1, changed
    if (done or os.path.exists(paths["accuracy"])) and not config.overwrite:
        raise ExistingRunError(
            f"{ckpt.model_dir(config.output_dir, config.model)} already holds checkpoints of a previous run "
            f"(epochs {done}); pass --resume to continue it, --overwrite to start again, "
            "or choose another --output_dir")
    return 1, {}


def changed_settings(saved: dict, requested: dict) -> dict:
    """``{field: [saved, requested]}`` of the run settings
    (:data:`~cvmnet_tf.training.config.RUN_SETTING_KEYS`) whose values in effect differ (a
    loss parameter left unset is the loss's own default, e.g. alpha 10); a field an older
    checkpoint lacks had its default. ``epochs`` counts too under ``--lr_schedule=cosine``
    (the schedule decays to the last epoch: another --epochs is another learning rate at
    every remaining step)."""
    from cvmnet_tf.training.config import RUN_SETTING_KEYS

    defaults = TrainConfig().to_dict()
    old_values = dict(defaults, **saved)
    new_values = dict(defaults, **requested)
    out = {}
    for key in RUN_SETTING_KEYS:
        old, new = _effective(key, old_values[key], old_values), _effective(key, new_values[key], new_values)
        if old != new:
            out[key] = [old, new]
    cosine = "cosine" in (old_values.get("lr_schedule"), new_values.get("lr_schedule"))
    if cosine and old_values["epochs"] != new_values["epochs"]:
        out["epochs"] = [old_values["epochs"], new_values["epochs"]]
    return out


def _effective(key: str, value, values: dict):
    """The value a setting has in effect (None loss parameters: the loss's own default;
    no --val_split: the dataset's validation split), lists for tuples."""
    import inspect

    from cvmnet_tf import losses as cv_losses
    from cvmnet_tf.data.registry import get_dataset
    from cvmnet_tf.training.config import LOSS_PARAMETERS

    if value is None and key in LOSS_PARAMETERS:
        try:
            fn = cv_losses.get_loss(values["loss"])
            value = inspect.signature(fn).parameters[key].default if key in cv_losses.loss_parameters(
                values["loss"]) else None
        except (ValueError, KeyError):
            pass
    if key == "mixed_precision":  # a checkpoint of an older version saved a bool (true: fp16)
        try:
            return precision_name(value)
        except ValueError:
            return value
    if value is None and key == "val_split":
        try:
            value = get_dataset(values["dataset"]).validation_split
        except ValueError:
            pass
    return list(value) if isinstance(value, (list, tuple)) else value


def _format_changes(changed: dict) -> str:
    return ", ".join(f"--{k} {old!r} -> {new!r}" for k, (old, new) in changed.items())


def remove_leftovers(output_dir: str, model_name: str) -> list:
    """Remove what killed runs left in a run folder (temporary files and folders of dead
    processes, :func:`cvmnet_tf.utils.atomic_io.remove_stale_temporaries`): in the folder
    itself, ``Result/`` and ``Model/<model>/``. Returns the removed paths."""
    removed = []
    for folder in (output_dir, os.path.join(output_dir, "Result"), ckpt.model_dir(output_dir, model_name)):
        removed += atomic_io.remove_stale_temporaries(folder)
    return removed


def _clear_previous_run(config: TrainConfig) -> None:
    """--overwrite: the model's checkpoints, result files and TensorBoard logs go."""
    shutil.rmtree(ckpt.model_dir(config.output_dir, config.model), ignore_errors=True)
    shutil.rmtree(os.path.join(config.output_dir, "logs", config.model), ignore_errors=True)
    paths = ckpt.result_paths(config.output_dir, config.model)
    for path in list(paths.values()) + [os.path.join(config.output_dir, "Result",
                                                     f"{config.model}_nonfinite_batch.txt")]:
        if os.path.exists(path):
            os.remove(path)


def _batch_files(batch, split, strategy) -> list:
    """["<satellite path> + <ground path>"] of a batch ([] when unavailable)."""
    try:
        rows = np.asarray(distribute.global_values(strategy, batch["index"])).ravel().tolist()
        return [f"{split.satellite_paths[i]} + {split.ground_paths[i]}" for i in rows]
    except Exception:  # noqa: BLE001 - never hide the real error behind a reporting failure
        return []


def _format_skips(skips, limit: int = 10) -> str:
    if not skips.skipped:
        return "no unreadable image found"
    return first_items([f"{d.path} ({d.reason})" for d in skips.skipped], limit)


def _logger(verbose: int):
    def log(message: str) -> None:
        if verbose:
            print(message, flush=True)
    return log
