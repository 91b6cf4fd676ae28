"""The shared training loop, its configuration and checkpoints (TensorFlow).

``train(make_config("cpu_demo", synthetic=True, output_dir="runs/demo"))`` is what
``python train_cvusa.py --synthetic --preset cpu_demo --output_dir runs/demo`` does.
"""

from cvmnet_tf.training.config import PRESETS, TrainConfig, make_config
from cvmnet_tf.training.loop import NonFiniteLossError, TrainResult, evaluate_model, train

__all__ = ["PRESETS", "TrainConfig", "make_config", "train", "evaluate_model", "TrainResult",
           "NonFiniteLossError"]
