"""Custom Keras layers of cvmnet-tf (keras.ops only; run under any Keras backend).

Importing this package registers the layers for ``.keras`` deserialisation under
the package name ``cvmnet_tf``.
"""
from cvmnet_tf.layers.netvlad import NetVLAD
from cvmnet_tf.layers.network_input import NetworkInput
from cvmnet_tf.layers.polar import PolarTransform, polar_sampling
from cvmnet_tf.layers.normalization import (
    L2Normalize,
    LocalResponseNormalization,
    l2_normalize,
    precise_dtype,
)

__all__ = ["NetVLAD", "NetworkInput", "PolarTransform", "polar_sampling", "L2Normalize", "LocalResponseNormalization", "l2_normalize", "precise_dtype"]
