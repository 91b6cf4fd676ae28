"""The shared training loop, its configuration and checkpoints (TensorFlow).

``train(make_config("cpu_demo", synthetic=True, output_dir="runs/demo"))`` is what
``python train_cvusa.py --synthetic --preset cpu_demo --output_dir runs/demo`` does.

- :mod:`.options`, :mod:`.config`: :class:`TrainConfig` (fields carry their flag help),
  presets; :mod:`.flags`: the absl flags generated from it.
- :mod:`.loop`: ``train`` = ``setup`` + ``run_epoch`` / ``record_epoch`` per epoch;
  :mod:`.validation`: the per-epoch recall; :mod:`.step`: the compiled training step.
- :mod:`.checkpoints`: saving / restoring checkpoints and the recall file.
- :mod:`.keras_internals`: the only place that touches Keras internals.
"""

from cvmnet_tf.training.config import PRESETS, TrainConfig, make_config
from cvmnet_tf.training.loop import NonFiniteLossError, TrainResult, evaluate_model, train

__all__ = ["PRESETS", "TrainConfig", "make_config", "train", "evaluate_model", "TrainResult",
           "NonFiniteLossError"]
