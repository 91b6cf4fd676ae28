"""``cvmnet-train-<dataset>``: train CVM-Net on one dataset (all flags: ``--helpfull``).

One command per trainable dataset of the registry (``cvmnet-train-cvusa``,
``cvmnet-train-cvact``, ``cvmnet-train-vohays``, ``cvmnet-train-university1652``,
``cvmnet-train-vigor``; the
``train_<dataset>.py`` scripts run the same). Its flags are generated from
:class:`cvmnet_tf.training.TrainConfig` (:mod:`cvmnet_tf.training.flags`).

    cvmnet-train-cvusa --synthetic --preset cpu_demo --output_dir runs/demo
    cvmnet-train-cvusa --data_dir data/CVUSA --output_dir runs/cvusa --model cvm_net_ii
"""
from __future__ import annotations

from cvmnet_tf.cli.common import UsageError, run

__all__ = ["main"]


def main(dataset: str, argv=None) -> None:
    """Train on ``dataset`` (a trainable registry name) with the command-line flags."""
    from cvmnet_tf.data.registry import TRAINABLE_DATASETS
    from cvmnet_tf.utils.startup import import_tensorflow_quietly

    if dataset not in TRAINABLE_DATASETS:
        raise ValueError(f"no training command for dataset {dataset!r}; choose one of {TRAINABLE_DATASETS}")
    import_tensorflow_quietly()  # before anything imports Keras
    from cvmnet_tf.training.flags import config_from_flags, define_flags

    define_flags(dataset)

    def _main():
        from cvmnet_tf.training.loop import RunFolderError, train

        try:
            config = config_from_flags(dataset)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        try:
            train(config)
        except RunFolderError as exc:  # the flags contradict the folders; found before any work
            raise UsageError(str(exc)) from None
        return 0

    run(_main, argv, usage=__doc__)


def __getattr__(name):
    """``main_<dataset>``: the console-script entry point of each trainable dataset."""
    from cvmnet_tf.data.registry import TRAINABLE_DATASETS

    if name.startswith("main_") and name[5:] in TRAINABLE_DATASETS:
        return lambda: main(name[5:])
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
