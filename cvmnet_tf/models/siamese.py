"""Siamese baselines (paper Table 1/2 "Siamese VGG / AlexNet").

The paper gives no details; this is our documented choice: unshared backbone per branch ->
global average pooling -> SHARED ``dim_reduction`` Dense C -> dim (Glorot uniform, zero
bias, no activation) -> l2 normalisation.
"""
import keras
from keras import layers

from cvmnet_tf.layers import L2Normalize, precise_dtype
from cvmnet_tf.models.backbones.common import check_init
from cvmnet_tf.models.base import (CrossViewModel, branch_backbones, check_model_args, dtype_policy_scope,
                                   input_dtype_argument, model_inputs, network_input, resolve_polar_size, satellite_view)

__all__ = ["SiameseBaseline", "SIAMESE_NAMES"]

#: Default model name per backbone.
SIAMESE_NAMES = {"vgg16": "siamese_vgg", "alexnet": "siamese_alexnet"}


@keras.saving.register_keras_serializable(package="cvmnet_tf")
class SiameseBaseline(CrossViewModel):
    """Backbone -> global average pool -> shared FC -> l2 (module docstring).

    Args:
        backbone: a backbone name ("vgg16" or "alexnet").
        satellite_shape, ground_shape: (height, width) in pixels.
        descriptor_dim: output size of the shared FC ``dim_reduction``.
        dropout_rate: backbone dropout.
        weights: backbone initialisation (None, "imagenet" for VGG16, or a file path).
        width, freeze_early_layers, polar_satellite, polar_size, init, input_dtype: as
            :class:`cvmnet_tf.models.CVMNetI` (init applies to the backbone).
        name: model name, default ``siamese_vgg`` / ``siamese_alexnet``.
        dtype: Keras dtype policy to build under (None: the global one).
    """

    architecture = "siamese"

    def __init__(self, backbone="vgg16", satellite_shape=(512, 512), ground_shape=(224, 1232),
                 descriptor_dim=4096, dropout_rate=0.2, weights=None, width=1.0, freeze_early_layers=True,
                 polar_satellite=False, polar_size=None, init="released", input_dtype="uint8", name=None, dtype=None,
                 **kwargs):
        check_init(init, "siamese")
        polar_size = resolve_polar_size(satellite_shape, polar_satellite, polar_size, "siamese")
        arguments = dict(backbone=backbone, satellite_shape=tuple(satellite_shape),
                         ground_shape=tuple(ground_shape), descriptor_dim=descriptor_dim,
                         dropout_rate=dropout_rate, width=width, freeze_early_layers=freeze_early_layers,
                         polar_satellite=bool(polar_satellite), polar_size=polar_size,
                         input_dtype=input_dtype_argument(input_dtype, "siamese"))
        if name is None:
            name = SIAMESE_NAMES.get(backbone, "siamese")
        with dtype_policy_scope(dtype):
            check_model_args(satellite_shape, ground_shape, descriptor_dim, dropout_rate, "siamese")
            satellite, ground = model_inputs(satellite_shape, ground_shape, input_dtype)
            sat_x, grd_x = network_input(satellite, ground, input_dtype)
            sat_view, view_shape = satellite_view(sat_x, satellite_shape, polar_satellite, polar_size, "siamese")
            net_sat, net_grd = branch_backbones(backbone, view_shape, ground_shape, weights, dropout_rate,
                                                width, freeze_early_layers, init)
            fc = layers.Dense(descriptor_dim, activation=None, kernel_initializer="glorot_uniform",
                              bias_initializer="zeros", dtype=precise_dtype(), name="dim_reduction")
            sat = layers.GlobalAveragePooling2D(dtype=precise_dtype(), name="pool_sat")(net_sat(sat_view))
            grd = layers.GlobalAveragePooling2D(dtype=precise_dtype(), name="pool_grd")(net_grd(grd_x))
            outputs = {"satellite": L2Normalize(name="l2_sat")(fc(sat)),
                       "ground": L2Normalize(name="l2_grd")(fc(grd))}
            self._finish_init({"satellite": satellite, "ground": ground}, outputs, name, dtype, arguments,
                              **kwargs)
