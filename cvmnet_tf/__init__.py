"""cvmnet-tf: CVM-Net (Hu et al., CVPR 2018) in TensorFlow 2 / Keras 3.

Sub-modules (import them directly; this package import stays light and does not
import TensorFlow, so the layers, models and losses also run under other Keras
backends):

- ``cvmnet_tf.layers``: the ``NetVLAD`` layer and small helpers (keras.ops only).
- ``cvmnet_tf.backbones``: VGG16 and AlexNet convolutional backbones.
- ``cvmnet_tf.models``: CVM-Net-I, CVM-Net-II and the Siamese baselines.
- ``cvmnet_tf.losses``: weighted soft-margin triplet, quadruplet, contrastive losses.
- ``cvmnet_tf.data``: tf.data pipelines for CVUSA, CVACT, Vo & Hays, synthetic world.
- ``cvmnet_tf.evaluation``: recall@K, recall@1%, CVACT geo-recall.
- ``cvmnet_tf.training``: the shared training loop behind the ``train_*.py`` scripts.
"""

__version__ = "0.1.0"
