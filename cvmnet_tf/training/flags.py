"""absl flags of the training scripts, generated from :class:`~cvmnet_tf.training.config.TrainConfig`.

Every flag is a config field declared with :func:`cvmnet_tf.training.options.option`
(same name, type, default and help), plus two that are not fields: ``--preset`` (the
defaults to start from) and ``--image_size`` (sets ``satellite_size`` / ``ground_size``
from the dataset's named sizes or ``HxW,HxW``). A dataset's loader options (its registry
entry: University-1652 ``--task``, ``--distractor_dir``; Vo & Hays ``--test_city``) are
flags of that dataset's script only. Every flag's default is the released code's value
(the ``paper`` preset); a flag given on the command line always wins over ``--preset``.
"""

from __future__ import annotations

from absl import flags

from cvmnet_tf.data.registry import get_dataset
from cvmnet_tf.training.config import PRESETS, TrainConfig, make_config
from cvmnet_tf.training.options import define_field_flag, flag_fields, loader_option_fields

__all__ = ["define_flags", "config_from_flags", "training_flag_names", "EXTRA_FLAGS"]

#: Flags that are not TrainConfig fields (each explicit, with what it sets).
EXTRA_FLAGS = {"preset": "the defaults to start from (PRESETS)",
               "image_size": "satellite_size and ground_size"}


def training_flag_names(dataset: str) -> list:
    """The config fields that are flags of ``dataset``'s training script."""
    own = {f.name for f in loader_option_fields(TrainConfig, dataset)}
    others = {f.name for f in loader_option_fields(TrainConfig)} - own
    return [f.name for f in flag_fields(TrainConfig) if f.name not in others]


def _size_help(dataset: str) -> str:
    spec = get_dataset(dataset)
    named = ", ".join(f"'{k}' ({s[0]}x{s[1]} satellite, {g[0]}x{g[1]} ground)" for k, (s, g) in spec.image_sizes.items())
    return (f"Input sizes of {spec.title}: {named}, or 'HxW,HxW' (satellite,ground in pixels, height first). "
            "The cpu_demo preset uses 'tiny'.")


def define_flags(dataset: str, flag_values=None) -> None:
    """Define the training flags of ``dataset`` in ``flag_values`` (default: absl's global
    FLAGS); idempotent per FlagValues."""
    fv = flags.FLAGS if flag_values is None else flag_values
    if "model" in fv:
        return
    flags.DEFINE_enum("preset", "paper", list(PRESETS),
                      "Defaults to start from: 'paper' (released code: 512x512/224x1232, K=64, 4096-d, lr 1e-5, "
                      "batch 12, ImageNet VGG16) or 'cpu_demo' (64x64/32x128, K=8, 64-d, VGG at 1/8 width, random "
                      "He init, no dropout, polar satellite + aligned augmentation on panorama datasets, Adam 1e-3 "
                      "cosine with 0.3 warm-up epochs, batch 32, 6 epochs, 12,000 synthetic pairs; for the "
                      "synthetic world on a CPU). Explicit flags win.", flag_values=fv)
    flags.DEFINE_string("image_size", "paper", _size_help(dataset), flag_values=fv)
    title = get_dataset(dataset).title
    by_name = {f.name: f for f in flag_fields(TrainConfig)}
    for name in training_flag_names(dataset):
        define_field_flag(by_name[name], TrainConfig, fv, help_format={"title": title})


def config_from_flags(dataset: str, FLAGS=None) -> TrainConfig:
    """A validated :class:`TrainConfig` from the parsed flags; explicit flags beat the preset."""
    FLAGS = FLAGS or flags.FLAGS
    overrides = {"dataset": dataset}
    for name in training_flag_names(dataset):
        if FLAGS[name].present:
            overrides[name] = FLAGS[name].value
    if FLAGS["image_size"].present:
        overrides["image_size"] = FLAGS.image_size
    config = make_config(FLAGS.preset, **overrides)
    config.validate()
    return config
