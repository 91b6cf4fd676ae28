"""absl flags shared by ``train_cvusa.py``, ``train_cvact.py``, ``train_vohays.py`` and
``train_university1652.py``.

Every flag's default is the released code's value (the ``paper`` preset). ``--preset``
changes several defaults at once; a flag given on the command line always wins.
"""

from __future__ import annotations

import functools
import re
import sys
import types

from absl import app, flags

from cvmnet_tf.data.registry import STANDARD_SIZES, get_dataset
from cvmnet_tf.training.config import MODEL_NAMES, PRESETS, UNIVERSITY1652_TASKS, TrainConfig, make_config

IMAGE_SIZES = STANDARD_SIZES


# flag name -> TrainConfig field (same name unless listed in _RENAMED)
_FIELDS = ("model", "loss", "alpha", "margin", "temperature", "learning_rate", "batch_size", "epochs", "dropout_rate",
           "hard_mining_from_epoch", "hard_top_k", "weights", "data_dir", "output_dir", "num_clusters",
           "descriptor_dim", "width", "freeze_early_layers", "normalize_output", "mixed_precision", "jit_compile", "seed", "resume",
           "overwrite", "synthetic", "synthetic_train_pairs", "synthetic_val_pairs", "max_steps_per_epoch",
           "max_eval_pairs", "val_split", "geo_threshold_m", "tensorboard")
_FIELDS_UNIVERSITY1652 = ("task", "distractor_dir")


def define_flags(dataset: str, flag_values=None) -> None:
    """Define the training flags in ``flag_values`` (default: absl's global FLAGS);
    idempotent per FlagValues."""
    fv = flags.FLAGS if flag_values is None else flag_values
    if "model" in fv:
        return
    define = types.SimpleNamespace(**{
        kind: functools.partial(getattr(flags, f"DEFINE_{kind}"), flag_values=fv)
        for kind in ("enum", "string", "float", "integer", "boolean")})
    d = TrainConfig()
    define.enum("preset", "paper", list(PRESETS),
                      "Defaults to start from: 'paper' (released code: 512x512/224x1232, K=64, 4096-d, "
                      "lr 1e-5, batch 12, ImageNet VGG16) or 'cpu_demo' (64x64/32x128, K=8, 64-d, lr 1e-4, "
                      "batch 32, 6 epochs, random init, VGG at 1/8 width; for the synthetic world on a CPU). Explicit flags win.")
    define.enum("model", d.model, list(MODEL_NAMES), "Network to train.")
    define.string("loss", d.loss, "Loss: weighted_soft_margin_triplet, weighted_quadruplet, contrastive, "
                        "soft_margin_triplet, max_margin_triplet, hard_exemplar_reweighting_triplet.")
    define.float("alpha", d.alpha, "Alpha of the weighted soft-margin losses (paper: 10).")
    define.float("margin", d.margin, "Margin of the contrastive / max-margin losses "
                       "(default: the loss's own, contrastive 1.0, max-margin 0.2).")
    define.float("temperature", d.temperature, "Weighting temperature of --loss=hard_exemplar_reweighting_"
                       "triplet in squared-distance units (default: the loss's own, 0.1); harder negatives get "
                       "softmax(-d_neg / temperature) weights.")
    define.float("learning_rate", d.learning_rate, "Adam learning rate (released code: 1e-5).")
    define.integer("batch_size", d.batch_size, "Pairs per batch (released code: 12).")
    define.integer("epochs", d.epochs, "Last epoch to train (epochs are numbered from 1).")
    define.float("dropout_rate", d.dropout_rate, "Dropout rate (released code 0.2, i.e. keep 0.8; paper 0.1).")
    define.integer("hard_mining_from_epoch", d.hard_mining_from_epoch,
                         "First epoch of the second stage (in-batch hard negatives); 0 = never.")
    define.integer("hard_top_k", d.hard_top_k, "Hard negatives kept per anchor in that stage.")
    define.string("weights", d.weights,
                        "Backbone initialisation: 'imagenet' (Keras download), 'none', or a local weights file.")
    define.string("data_dir", None, f"Dataset root in the {dataset} layout (see data/README.md).")
    define.string("output_dir", d.output_dir, "Where Model/, Result/ and logs/ are written.")
    define.string("image_size", "paper",
                        "Input sizes: " + ", ".join(f"'{k}' ({v[0][0]}x{v[0][1]} satellite, {v[1][0]}x{v[1][1]} "
                                                    "panorama)" for k, v in IMAGE_SIZES.items())
                        + ", or 'HxW,HxW' (satellite,ground). The cpu_demo preset uses 'tiny'. Vo & Hays ground "
                        "images are square crops: 224x224 ('paper'), 112, 64, 48 ('tiny'). University-1652: "
                        "square drone and satellite images, 256 ('paper'), 128, 96, 64 ('tiny').")
    define.boolean("freeze_early_layers", d.freeze_early_layers,
                         "Freeze VGG16 conv1_1..conv3_3 as the released code (cpu_demo: trains every layer).")
    define.integer("num_clusters", d.num_clusters, "NetVLAD clusters K.")
    define.integer("descriptor_dim", d.descriptor_dim, "Descriptor size.")
    define.float("width", d.width, "Backbone channel multiplier: 1.0 is VGG16 as in the paper; the cpu_demo "
                       "preset uses 0.125 (8..64 channels) so that CPU training takes minutes.")
    define.boolean("normalize_output", d.normalize_output,
                         "CVM-Net-II: l2-normalise the descriptors (the released code does not).")
    define.boolean("mixed_precision", d.mixed_precision, "mixed_float16 with loss scaling.")
    define.boolean("jit_compile", d.jit_compile, "XLA-compile the training step.")
    define.integer("seed", d.seed, "Seed of shuffling, augmentation, dropout and initialisation.")
    define.boolean("resume", d.resume, "Continue from the last complete checkpoint in --output_dir.")
    define.boolean("overwrite", d.overwrite, "Delete a previous run of this model in --output_dir first.")
    define.boolean("synthetic", d.synthetic,
                         "Generate (once) and train on the built-in synthetic world in this dataset's layout.")
    define.integer("synthetic_train_pairs", d.synthetic_train_pairs, "Synthetic training pairs.")
    define.integer("synthetic_val_pairs", d.synthetic_val_pairs, "Synthetic validation pairs.")
    define.integer("max_steps_per_epoch", d.max_steps_per_epoch, "Cap on steps per epoch (0: whole split).")
    define.integer("max_eval_pairs", d.max_eval_pairs, "Cap on validation pairs (0: whole split).")
    define.string("val_split", None, "Split evaluated after every epoch (default: 'val'; Vo & Hays: 'test', "
                        "the Denver city). CVACT: 'test' is CVACT_test with geo-recall.")
    define.float("geo_threshold_m", d.geo_threshold_m, "CVACT geo-recall radius in metres (OriCNN: 5).")
    define.boolean("tensorboard", d.tensorboard, "Write TensorBoard scalars under <output_dir>/logs.")
    if dataset == "university1652":
        define.enum("task", d.task, list(UNIVERSITY1652_TASKS),
                          "drone_to_satellite (target localisation: drone queries, satellite gallery) or "
                          "satellite_to_drone (navigation). Training is the same; this picks the evaluation.")
        define.string("distractor_dir", None, "Folder of extra satellite images (e.g. the 167,486 "
                            "University-1652 distractor tiles) appended to the satellite gallery.")


def parse_image_size(value: str, dataset: str = "cvusa"):
    """``'paper'`` etc. or ``'HxW,HxW'`` -> ((Hs, Ws), (Hg, Wg)) for ``dataset``."""
    named = get_dataset(dataset).image_sizes
    if value in named:
        return named[value]
    m = re.fullmatch(r"\s*(\d+)x(\d+)\s*,\s*(\d+)x(\d+)\s*", value)
    if not m:
        raise ValueError(f"--image_size={value!r}: use one of {', '.join(IMAGE_SIZES)} or 'HxW,HxW'")
    a, b, c, e = (int(g) for g in m.groups())
    return (a, b), (c, e)


def config_from_flags(dataset: str, FLAGS=None) -> TrainConfig:
    """A validated :class:`TrainConfig` from the parsed flags; explicit flags beat the preset."""
    FLAGS = FLAGS or flags.FLAGS
    overrides = {"dataset": dataset}
    fields = _FIELDS + (_FIELDS_UNIVERSITY1652 if dataset == "university1652" else ())
    for name in fields:
        if FLAGS[name].present or FLAGS.preset == "paper" or name not in PRESETS[FLAGS.preset]:
            overrides[name] = FLAGS[name].value
    if FLAGS["image_size"].present or FLAGS.preset == "paper":
        overrides["satellite_size"], overrides["ground_size"] = parse_image_size(FLAGS.image_size, dataset)
    elif get_dataset(dataset).image_sizes is not IMAGE_SIZES:
        overrides["satellite_size"], overrides["ground_size"] = parse_image_size("tiny", dataset)
    if overrides.get("data_dir") is None:
        overrides.pop("data_dir", None)
    config = make_config(FLAGS.preset, **overrides)
    config.validate()
    return config


def run(dataset: str) -> None:
    """Entry point of the ``train_<dataset>.py`` scripts."""
    define_flags(dataset)

    def main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
        try:
            config = config_from_flags(dataset)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        from cvmnet_tf.training.checkpoints import CheckpointError
        from cvmnet_tf.training.loop import NonFiniteLossError, train
        try:
            train(config)
        except (ValueError, FileNotFoundError, FileExistsError, CheckpointError, NonFiniteLossError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0

    app.run(main)
