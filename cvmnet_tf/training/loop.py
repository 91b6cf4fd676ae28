"""The one training loop behind ``train_cvusa.py``, ``train_cvact.py`` and ``train_vohays.py``.

Per epoch: train on the training split (exhaustive in-batch triplets, or hard mining
from ``hard_mining_from_epoch`` on), evaluate recall on the validation split, save a
checkpoint under ``Model/<model>/<epoch>/`` and rewrite ``Result/<model>_accuracy.txt``
with one line per completed epoch, as the released code does (see
:mod:`cvmnet_tf.training.checkpoints` for the layout). ``resume=True`` continues from the
last complete checkpoint with the optimizer state, the epoch count and the recall file.

Randomness is a function of ``(seed, epoch)`` alone (shuffle order, augmentation,
dropout), so a resumed run repeats exactly what an uninterrupted run would have done.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
import numpy as np
import tensorflow as tf
import keras

from cvmnet_tf.utils import atomic_io
from cvmnet_tf.training import checkpoints as ckpt
from cvmnet_tf.training.config import TrainConfig
from cvmnet_tf.training.step import make_train_step


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite; the message names the step and files."""


@dataclasses.dataclass
class TrainResult:
    history: list  # one record per completed epoch: {"epoch", "iterations", "loss", "metrics", ...}
    output_dir: str
    last_checkpoint: str


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) training as configured; returns the per-epoch history."""
    config.validate()
    from cvmnet_tf import data as cv_data
    from cvmnet_tf import losses as cv_losses
    from cvmnet_tf import models as cv_models

    log = _logger(config.verbose)
    data_dir = prepare_data_dir(config, log)
    sizes = cv_data.ImageSizes(satellite=tuple(config.satellite_size), ground=tuple(config.ground_size))
    split_kwargs = {kwarg: getattr(config, field)
                    for field, kwarg in cv_data.get_dataset(config.dataset).loader_options.items()}
    train_split = cv_data.load_split(config.dataset, data_dir, "train", **split_kwargs)
    val_split = cv_data.load_split(config.dataset, data_dir, config.validation_split, **split_kwargs)
    if config.max_eval_pairs and len(val_split) > config.max_eval_pairs:
        if isinstance(val_split, cv_data.RetrievalSplit):  # fewer queries, the whole gallery
            val_split = dataclasses.replace(val_split, query=val_split.query.subset(range(config.max_eval_pairs)))
        else:
            val_split = val_split.subset(range(config.max_eval_pairs))
    if len(train_split.satellite_paths) < config.batch_size:
        raise ValueError(f"the training split of {data_dir} has {len(train_split.satellite_paths)} pairs, "
                         f"fewer than --batch_size={config.batch_size}")

    paths = ckpt.result_paths(config.output_dir, config.model)
    start_epoch = _check_output_dir(config, paths)

    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_float16")
    else:
        keras.mixed_precision.set_global_policy("float32")
    keras.utils.set_random_seed(config.seed)

    strategy = _choose_strategy()
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(f"--batch_size={config.batch_size} must be divisible by the {replicas} replicas")
    with strategy.scope():
        model = cv_models.build_model_from_config(config)
        optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate, beta_1=0.9, beta_2=0.999)
        if config.mixed_precision:
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        optimizer.build(model.trainable_variables)

    loss_kwargs = _loss_kwargs(config)
    exhaustive_loss = cv_losses.get_loss(config.loss, **loss_kwargs)
    hard_loss = None
    if config.hard_mining_from_epoch:
        hard_loss = cv_losses.get_loss(config.loss, **dict(loss_kwargs, hard_top_k=config.hard_top_k))

    history: list = []
    global_step = 0
    if start_epoch > 1:
        path = ckpt.checkpoint_path(config.output_dir, config.model, start_epoch - 1)
        state = ckpt.restore_checkpoint(path, model, optimizer, config.to_dict())
        global_step = int(state["global_step"])
        history = ckpt.read_history(config.output_dir, config.model, start_epoch - 1)
        ckpt.write_result_files(config.output_dir, config.model, history)
        log(f"Resumed from {path} (epoch {start_epoch - 1}, step {global_step})")
    else:
        atomic_io.write_json(paths["flags"], dict(config.to_dict(), data_dir=data_dir))
        ckpt.save_checkpoint(config.output_dir, model, optimizer, 0,
                             {"config": config.to_dict(), "global_step": 0, "record": None})
    last_checkpoint = ckpt.checkpoint_path(config.output_dir, config.model, start_epoch - 1)

    step_fns = {}

    def get_step_fn(hard: bool):
        if hard not in step_fns:
            step_fns[hard] = make_train_step(model, optimizer, hard_loss if hard else exhaustive_loss,
                                              strategy, config.jit_compile)
        return step_fns[hard]

    writer = None
    if config.tensorboard:
        writer = tf.summary.create_file_writer(os.path.join(config.output_dir, "logs", config.model))

    steps_per_epoch = len(train_split.satellite_paths) // config.batch_size
    if train_split.labels is not None:  # class-unique batches (University-1652)
        from cvmnet_tf.data.sampling import max_class_unique_batches
        steps_per_epoch = max_class_unique_batches(train_split.labels, config.batch_size)
    if config.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)

    for epoch in range(start_epoch, config.epochs + 1):
        hard = bool(config.hard_mining_from_epoch) and epoch >= config.hard_mining_from_epoch
        epoch_seed = config.seed * 100003 + epoch
        _reset_seed_generators(model, epoch_seed)
        dataset, report = cv_data.make_pair_dataset(train_split, sizes, training=True,
                                                    batch_size=config.batch_size, shuffle=True, seed=epoch_seed,
                                                    return_report=True)
        if config.max_steps_per_epoch:
            dataset = dataset.take(config.max_steps_per_epoch)
        step_fn = get_step_fn(hard)
        log(f"Epoch {epoch}/{config.epochs}" + (" (hard mining, top %d)" % config.hard_top_k if hard else ""))
        bar = keras.utils.Progbar(steps_per_epoch, verbose=1 if config.verbose else 0,
                                  stateful_metrics=["pairs/s"])
        t0 = time.perf_counter()
        losses, steps = [], 0
        for batch in _distributed(strategy, dataset):
            loss = float(step_fn(batch))
            report.observe(_local_indices(strategy, batch))
            steps += 1
            global_step += 1
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"the training loss is {loss} at epoch {epoch}, step {steps} of the epoch "
                    f"(global step {global_step}); batch files: {_batch_files(batch, train_split, strategy)}; "
                    f"last good checkpoint: {last_checkpoint}")
            losses.append(loss)
            elapsed = time.perf_counter() - t0
            bar.update(steps, [("loss", loss), ("pairs/s", steps * config.batch_size / max(elapsed, 1e-9))])
        train_seconds = time.perf_counter() - t0
        if steps == 0:
            raise ValueError(f"epoch {epoch} ran no training step: every pair of the training split was skipped "
                             f"({_format_skips(report.end_epoch())})")
        skips = report.end_epoch() if not config.max_steps_per_epoch else None

        t1 = time.perf_counter()
        metrics = evaluate_model(model, val_split, sizes, config)
        record = {
            "epoch": epoch,
            "iterations": steps,
            "global_step": global_step,
            "loss": float(np.mean(losses)),
            "hard_mining": hard,
            "train_seconds": round(train_seconds, 3),
            "pairs_per_second": round(steps * config.batch_size / train_seconds, 2),
            "eval_seconds": round(time.perf_counter() - t1, 3),
            "metrics": metrics,
        }
        if skips is not None and skips.skipped:
            record["skipped_images"] = [{"index": d.index, "path": d.path, "reason": d.reason}
                                        for d in skips.skipped]
            log(f"Epoch {epoch}: skipped {skips.num_skipped} training pair(s) with unreadable images: "
                + _format_skips(skips))
        last_checkpoint = ckpt.save_checkpoint(
            config.output_dir, model, optimizer, epoch,
            {"config": config.to_dict(), "global_step": global_step, "record": record})
        history.append(record)
        ckpt.write_result_files(config.output_dir, config.model, history)
        if writer is not None:
            with writer.as_default():
                tf.summary.scalar("train/loss", record["loss"], step=epoch)
                tf.summary.scalar("train/pairs_per_second", record["pairs_per_second"], step=epoch)
                for key, value in metrics.items():
                    tf.summary.scalar(f"val/{key}", value, step=epoch)
            writer.flush()
        log(f"Epoch {epoch}: loss {record['loss']:.4f}, "
            + ", ".join(f"{k} {100 * v:.2f}%" for k, v in metrics.items() if k.startswith("recall"))
            + (f", AP {100 * metrics['AP']:.2f}%" if "AP" in metrics else "")
            + (f", median rank {100 * metrics['median_rank_fraction']:.1f}% of the database (random: 50%)"
               if "median_rank_fraction" in metrics else "")
            + f" ({record['pairs_per_second']:.1f} pairs/s); chance recall@1% "
            f"{100 * chance_recall_at_top_percent(metrics.get('num_database', 0)):.2f}%")
    return TrainResult(history=history, output_dir=config.output_dir, last_checkpoint=last_checkpoint)


def evaluate_model(model, split, sizes, config: TrainConfig) -> dict:
    """Recall@1/5/10/1% (ground -> satellite) of ``model`` on ``split``; CVACT also geo-recall.

    A labelled :class:`~cvmnet_tf.data.RetrievalSplit` (University-1652) is evaluated by
    :func:`evaluate_labelled_model` instead.
    """
    from cvmnet_tf import data as cv_data
    from cvmnet_tf import evaluation
    from cvmnet_tf.descriptors import pair_descriptors

    if isinstance(split, cv_data.RetrievalSplit):
        return evaluate_labelled_model(model, split, sizes, config)

    dataset = cv_data.make_pair_dataset(split, sizes, training=False, batch_size=max(config.batch_size, 32))
    sat, grd, index = pair_descriptors(model, dataset)
    ranks = evaluation.retrieval_ranks(grd, sat)  # one scan serves every metric below
    metrics = {f"recall@{k}": evaluation.recall_at_k(ranks, k) for k in (1, 5, 10)}
    metrics["recall@1%"] = evaluation.recall_at_top_percent(ranks, len(sat))
    # Median rank of the true satellite image (0 = first), as a fraction of the database:
    # 0.5 for a random ranking; shows learning before recall@1% moves.
    metrics["median_rank_fraction"] = float(np.median(ranks) / len(sat))
    if split.utm is not None:
        utm = np.asarray(split.utm, dtype=np.float64)[index]
        geo = evaluation.geo_recall(grd, sat, utm, utm, threshold_m=config.geo_threshold_m, ks=(1, 5, 10))
        metrics.update({k: float(v) for k, v in geo.items()})
    metrics["num_database"] = int(sat.shape[0])
    return metrics


def evaluate_labelled_model(model, split, sizes, config: TrainConfig) -> dict:
    """Recall@1/5/10/1% and AP of ``model`` on a labelled query/gallery split.

    Each side runs through its own branch: "ground" images (drone or ground views) through
    the ground encoder, "satellite" images through the satellite encoder. A query's true
    matches are the gallery images with its label (University-1652: several per query).
    """
    from cvmnet_tf import data as cv_data
    from cvmnet_tf import evaluation, models
    from cvmnet_tf.descriptors import image_descriptors

    batch = max(config.batch_size, 32)

    def describe(images):
        encoder = models.ground_encoder(model) if images.kind == "ground" else models.satellite_encoder(model)
        size = sizes.ground if images.kind == "ground" else sizes.satellite
        ds = cv_data.make_image_dataset(images.paths, size, images.kind, batch, dataset=images.dataset)
        desc, index = image_descriptors(encoder, ds)
        return desc, images.labels[index]

    query, query_labels = describe(split.query)
    gallery, gallery_labels = describe(split.gallery)
    k_percent = evaluation.top_percent_k(len(gallery))
    ks = tuple(sorted({1, 5, 10, k_percent}))
    result = evaluation.labelled_retrieval(query, gallery, query_labels, gallery_labels, ks=ks)
    metrics = {f"recall@{k}": float(result[f"recall@{k}"]) for k in (1, 5, 10)}
    metrics["recall@1%"] = float(result[f"recall@{k_percent}"])
    metrics["AP"] = float(result["AP"])
    metrics["num_database"] = int(len(gallery))
    metrics["num_query"] = int(len(query))
    return metrics


def chance_recall_at_top_percent(num_database: int, percent: float = 1.0) -> float:
    """Recall@1% of a random ranking: K / N with K = int(0.01 N) + 1."""
    if num_database <= 0:
        return 0.0
    return min(1.0, (int(num_database * percent / 100.0) + 1) / num_database)


def prepare_data_dir(config: TrainConfig, log=print) -> str:
    """The dataset folder to read; with ``synthetic=True`` generate it first if needed."""
    if not config.synthetic:
        if not os.path.isdir(config.data_dir):
            raise FileNotFoundError(f"--data_dir={config.data_dir}: no such folder (see data/README.md)")
        return config.data_dir
    data_dir = config.data_dir or os.path.join(
        "data", f"synthetic_{config.dataset}_{config.synthetic_train_pairs}_{config.synthetic_val_pairs}"
                f"_seed{config.seed}")
    marker = os.path.join(data_dir, ".complete")
    if not os.path.exists(marker):
        log(f"Writing the synthetic {config.dataset} dataset to {data_dir} "
            f"({config.synthetic_train_pairs} training + {config.synthetic_val_pairs} validation pairs)")
        t0 = time.perf_counter()
        write_synthetic_dataset(data_dir, config.dataset, config.synthetic_train_pairs,
                                config.synthetic_val_pairs, config.seed)
        atomic_io.write_text(marker, "ok\n")
        log(f"  done in {time.perf_counter() - t0:.1f} s")
    return data_dir


def write_synthetic_dataset(out_dir: str, dataset: str, num_train: int, num_val: int, seed: int = 0) -> dict:
    """The synthetic world that ``--synthetic`` trains on, in ``dataset``'s layout (its
    registry entry's writer and colour cast). ``num_train`` / ``num_val`` count pairs (for
    University-1652 drone images, 4 per building)."""
    from cvmnet_tf.data import get_dataset

    spec = get_dataset(dataset)
    if spec.synthetic is None:
        raise ValueError(f"--synthetic: the synthetic world has no {spec.title} layout")
    return spec.synthetic.write_for_training(out_dir, num_train, num_val, seed)


def _choose_strategy():
    """MirroredStrategy over all GPUs when there are several, else the default strategy."""
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def _reset_seed_generators(model, seed: int) -> None:
    """Give every random layer (dropout) a state that depends only on ``seed``."""
    i = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        for gen in getattr(layer, "_seed_generators", []):
            gen.state.assign(np.array([seed, 1000 + i], dtype=gen.state.dtype))
            i += 1


def _loss_kwargs(config: TrainConfig) -> dict:
    if config.loss in ("weighted_soft_margin_triplet", "weighted_quadruplet"):
        return {"alpha": config.alpha}
    if config.loss in ("contrastive", "max_margin_triplet", "hard_exemplar_reweighting_triplet"):
        kwargs = {} if config.margin is None else {"margin": config.margin}
        if config.temperature is not None:
            kwargs["temperature"] = config.temperature
        return kwargs
    return {}


def _check_output_dir(config: TrainConfig, paths: dict) -> int:
    """The first epoch to run; refuses to overwrite a previous run's results unasked."""
    done = ckpt.list_checkpoints(config.output_dir, config.model)
    if config.resume:
        if not done:
            return 1
        path = ckpt.checkpoint_path(config.output_dir, config.model, done[-1])
        ckpt.check_same_architecture(ckpt.read_state(path), config.to_dict(), path)
        return done[-1] + 1
    if (done or os.path.exists(paths["accuracy"])) and not config.overwrite:
        raise FileExistsError(
            f"{ckpt.model_dir(config.output_dir, config.model)} already holds checkpoints of a previous run "
            f"(epochs {done}); pass --resume to continue it, --overwrite to start again, "
            "or choose another --output_dir")
    if config.overwrite:
        import shutil
        for path in [ckpt.model_dir(config.output_dir, config.model)]:
            shutil.rmtree(path, ignore_errors=True)
        for path in paths.values():
            if os.path.exists(path):
                os.remove(path)
    return 1


def _batch_files(batch, split, strategy) -> str:
    try:
        rows = np.asarray(_local_indices(strategy, batch)).ravel().tolist()
        return "; ".join(f"{split.satellite_paths[i]} + {split.ground_paths[i]}" for i in rows)
    except Exception:  # never hide the real error behind a reporting failure
        return "(unavailable)"


def _distributed(strategy, dataset):
    if strategy.num_replicas_in_sync == 1:
        return dataset
    return strategy.experimental_distribute_dataset(dataset)


def _local_indices(strategy, batch):
    if strategy.num_replicas_in_sync == 1:
        return batch["index"]
    return np.concatenate([np.asarray(t) for t in strategy.experimental_local_results(batch["index"])])


def _format_skips(skips, limit: int = 10) -> str:
    items = [f"{d.path} ({d.reason})" for d in skips.skipped[:limit]]
    more = f" and {len(skips.skipped) - limit} more" if len(skips.skipped) > limit else ""
    return "; ".join(items) + more if items else "no unreadable image found"


def _logger(verbose: int):
    def log(message: str) -> None:
        if verbose:
            print(message, flush=True)
    return log


def load_run_config(output_dir: str, model_name: str) -> dict:
    """The resolved configuration saved at the start of a run."""
    with open(ckpt.result_paths(output_dir, model_name)["flags"], encoding="utf-8") as f:
        return json.load(f)
