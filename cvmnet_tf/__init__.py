"""cvmnet-tf: CVM-Net (Hu et al., CVPR 2018) in TensorFlow 2 / Keras 3.

Sub-packages (import them directly; this package import stays light and does not import
TensorFlow, so the layers, models and losses also run under other Keras backends):

- ``cvmnet_tf.layers``: the ``NetVLAD`` layer and small helpers (keras.ops only).
- ``cvmnet_tf.losses``: the loss registry (weighted soft-margin triplet, quadruplet, ...).
- ``cvmnet_tf.models``: the model registry (CVM-Net-I/II, Siamese baselines) and the
  backbone registry (``cvmnet_tf.models.backbones``: VGG16, AlexNet).
- ``cvmnet_tf.data``: the dataset registry, loaders, tf.data pipelines, the synthetic world.
- ``cvmnet_tf.evaluation``: recall@K, recall@1%, geo-recall, AP, localization, reports.
- ``cvmnet_tf.inference``: checkpoints and model loading, encoders, descriptor files,
  SavedModel export, released TF1 weights.
- ``cvmnet_tf.training``: the training configuration (flags generated from it) and loop.
- ``cvmnet_tf.cli``: the command-line tools (console scripts ``cvmnet-*``).
- ``cvmnet_tf.utils``: atomic writes, message helpers.
"""

__version__ = "0.1.0"
