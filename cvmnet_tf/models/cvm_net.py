"""CVM-Net-I and CVM-Net-II (Hu et al. 2018, Fig. 3 and Fig. 4; released ``cvm_net_I`` / ``cvm_net_II``).

Layer names match the released TF1 scopes (the weight converter relies on them):

- CVM-Net-I: ``VGG_grd``/``VGG_sat`` (unshared) -> ``netvlad_grd``/``netvlad_sat``
  (unshared, K clusters, D*K values) -> SHARED ``dim_reduction`` Dense D*K -> dim
  (truncated normal std 0.005, bias 0.1, no activation) -> l2 normalisation.
- CVM-Net-II: ``VGG_grd``/``VGG_sat`` -> ``grd_trans_conv1``/``sat_trans_conv1`` (1x1,
  512, ReLU, dropout) -> SHARED ``trans_conv1`` (3x3, 512, ReLU, dropout) -> SHARED
  ``trans_conv2`` (1x1, 512, ReLU, dropout) (SAME, Glorot uniform kernels AND biases)
  -> ONE SHARED ``netvlad`` with built-in reduction to dim -> l2 normalisation (the
  released code omits this last step; ``normalize_output=False`` reproduces it).

Shared layers are called directly on both branches inside ONE functional graph (no nested
branch models), so a ``.keras`` round trip keeps them shared. The final l2 normalisation,
NetVLAD and the CVM-Net-I FC compute in float32 under a mixed precision policy. The
backbone (``backbone=``) is any entry of :data:`cvmnet_tf.models.backbones.BACKBONES`.
"""
import keras
from keras import layers

from cvmnet_tf.layers import L2Normalize, NetVLAD, precise_dtype
from cvmnet_tf.models.backbones import scaled_channels
from cvmnet_tf.models.backbones.common import check_init, conv_initializers
from cvmnet_tf.models.base import (CrossViewModel, branch_backbones, check_model_args, dtype_policy_scope,
                                   input_dtype_argument, model_inputs, network_input, resolve_polar_size, satellite_view)

__all__ = ["CVMNetI", "CVMNetII"]


@keras.saving.register_keras_serializable(package="cvmnet_tf")
class CVMNetI(CrossViewModel):
    """CVM-Net-I.

    Args:
        satellite_shape, ground_shape: (height, width) in pixels of the inputs.
        num_clusters: NetVLAD K per branch (64).
        descriptor_dim: output size of the shared FC (4096).
        dropout_rate: backbone dropout (code 0.2; paper 0.1).
        backbone: a backbone name, "vgg16" (paper) or "alexnet" (paper Table 2).
        weights: backbone initialisation: None, "imagenet" (VGG16) or a file path (not
            part of the config: a loaded model takes its weights from the file).
        width: channel multiplier of the backbone; 1.0 is the paper's network, smaller
            values make CPU-sized models (the ``cpu_demo`` preset uses 0.125).
        freeze_early_layers: freeze the backbone's first layers (VGG16 conv1_1 .. conv3_3)
            as the released code; False trains all (random initialisation).
        polar_satellite: SAFA's polar transform of the satellite image (Shi et al. 2019)
            as the first layer of the satellite branch (``polar_sat``); the released code
            has none (False).
        polar_size: (H, W) of the polar image (default (S/2, 2S) for an S x S tile: see
            :func:`cvmnet_tf.models.base.default_polar_size`); only with polar_satellite.
        init: initialisation of randomly initialised layers: "released" (the code's) or "he"
            (He normal backbone kernels and zero biases; Glorot uniform FC with zero bias).
            Not part of the config: a loaded model takes its weights from the file.
        input_dtype: "uint8" (default): the inputs are RGB uint8 pixels and the model's
            first layers (:class:`cvmnet_tf.layers.NetworkInput`) do the BGR swap, cast and
            mean subtraction on the device; "float32": the inputs are preprocessed already
            (BGR minus the caffe means), as models saved before this argument
            (:mod:`cvmnet_tf.models.base`). A "uint8" model called with float inputs takes
            them as preprocessed.
        name: model name; dtype: Keras dtype policy to build under (None: the global one).

    Outputs: dict of unit-norm float32 (batch, descriptor_dim) descriptors.
    """

    architecture = "cvm_net_i"

    def __init__(self, satellite_shape=(512, 512), ground_shape=(224, 1232), num_clusters=64,
                 descriptor_dim=4096, dropout_rate=0.2, backbone="vgg16", weights=None, width=1.0,
                 freeze_early_layers=True, polar_satellite=False, polar_size=None, init="released",
                 input_dtype="uint8", name="cvm_net_i", dtype=None, **kwargs):
        check_init(init, "cvm_net_i")
        polar_size = resolve_polar_size(satellite_shape, polar_satellite, polar_size, "cvm_net_i")
        arguments = dict(satellite_shape=tuple(satellite_shape), ground_shape=tuple(ground_shape),
                         num_clusters=num_clusters, descriptor_dim=descriptor_dim, dropout_rate=dropout_rate,
                         backbone=backbone, width=width, freeze_early_layers=freeze_early_layers,
                         polar_satellite=bool(polar_satellite), polar_size=polar_size,
                         input_dtype=input_dtype_argument(input_dtype, "cvm_net_i"))
        with dtype_policy_scope(dtype):
            check_model_args(satellite_shape, ground_shape, descriptor_dim, dropout_rate, "cvm_net_i")
            satellite, ground = model_inputs(satellite_shape, ground_shape, input_dtype)
            sat_x, grd_x = network_input(satellite, ground, input_dtype)
            sat_view, view_shape = satellite_view(sat_x, satellite_shape, polar_satellite, polar_size,
                                                  "cvm_net_i")
            vgg_sat, vgg_grd = branch_backbones(backbone, view_shape, ground_shape, weights, dropout_rate,
                                                width, freeze_early_layers, init)
            grd_vlad = NetVLAD(num_clusters, name="netvlad_grd")(vgg_grd(grd_x))
            sat_vlad = NetVLAD(num_clusters, name="netvlad_sat")(vgg_sat(sat_view))
            fc_kernel, fc_bias = ((keras.initializers.TruncatedNormal(mean=0.0, stddev=0.005),
                                   keras.initializers.Constant(0.1)) if init == "released"
                                  else ("glorot_uniform", "zeros"))
            fc = layers.Dense(descriptor_dim, activation=None, kernel_initializer=fc_kernel,
                              bias_initializer=fc_bias, dtype=precise_dtype(), name="dim_reduction")
            outputs = {"satellite": L2Normalize(name="l2_sat")(fc(sat_vlad)),
                       "ground": L2Normalize(name="l2_grd")(fc(grd_vlad))}
            self._finish_init({"satellite": satellite, "ground": ground}, outputs, name, dtype, arguments,
                              **kwargs)


@keras.saving.register_keras_serializable(package="cvmnet_tf")
class CVMNetII(CrossViewModel):
    """CVM-Net-II.

    Args: as :class:`CVMNetI`, plus
        normalize_output: l2-normalise the NetVLAD output (default True: the loss assumes
            unit vectors). False reproduces the released code, which returns the
            un-normalised ``vlad @ hidden1_weights``.

    ``width`` also scales the 512-channel transformation convs; ``init="he"`` also gives
    them He normal kernels and zero biases.
    """

    architecture = "cvm_net_ii"

    def __init__(self, satellite_shape=(512, 512), ground_shape=(224, 1232), num_clusters=64,
                 descriptor_dim=4096, dropout_rate=0.2, backbone="vgg16", weights=None,
                 normalize_output=True, width=1.0, freeze_early_layers=True, polar_satellite=False,
                 polar_size=None, init="released", input_dtype="uint8", name="cvm_net_ii", dtype=None,
                 **kwargs):
        check_init(init, "cvm_net_ii")
        polar_size = resolve_polar_size(satellite_shape, polar_satellite, polar_size, "cvm_net_ii")
        arguments = dict(satellite_shape=tuple(satellite_shape), ground_shape=tuple(ground_shape),
                         num_clusters=num_clusters, descriptor_dim=descriptor_dim, dropout_rate=dropout_rate,
                         backbone=backbone, normalize_output=normalize_output, width=width,
                         freeze_early_layers=freeze_early_layers, polar_satellite=bool(polar_satellite),
                         polar_size=polar_size, input_dtype=input_dtype_argument(input_dtype, "cvm_net_ii"))
        with dtype_policy_scope(dtype):
            check_model_args(satellite_shape, ground_shape, descriptor_dim, dropout_rate, "cvm_net_ii")
            satellite, ground = model_inputs(satellite_shape, ground_shape, input_dtype)
            sat_x, grd_x = network_input(satellite, ground, input_dtype)
            sat_view, view_shape = satellite_view(sat_x, satellite_shape, polar_satellite, polar_size,
                                                  "cvm_net_ii")
            vgg_sat, vgg_grd = branch_backbones(backbone, view_shape, ground_shape, weights, dropout_rate,
                                                width, freeze_early_layers, init)
            kernel_init, bias_init = conv_initializers(init)

            def conv(kernel, conv_name):
                return layers.Conv2D(scaled_channels(512, width), kernel, padding="same", activation="relu",
                                     kernel_initializer=kernel_init, bias_initializer=bias_init, name=conv_name)

            sat_trans, grd_trans = conv(1, "sat_trans_conv1"), conv(1, "grd_trans_conv1")
            trans_conv1, trans_conv2 = conv(3, "trans_conv1"), conv(1, "trans_conv2")
            netvlad = NetVLAD(num_clusters, output_dim=descriptor_dim, name="netvlad")

            def branch(features, first_conv, tag):
                x = layers.Dropout(dropout_rate, name=f"{tag}_trans_conv1_dropout")(first_conv(features))
                x = layers.Dropout(dropout_rate, name=f"{tag}_shared_conv1_dropout")(trans_conv1(x))
                x = layers.Dropout(dropout_rate, name=f"{tag}_shared_conv2_dropout")(trans_conv2(x))
                x = netvlad(x)
                if normalize_output:
                    x = L2Normalize(name=f"l2_{tag}")(x)
                return x

            outputs = {"satellite": branch(vgg_sat(sat_view), sat_trans, "sat"),
                       "ground": branch(vgg_grd(grd_x), grd_trans, "grd")}
            self._finish_init({"satellite": satellite, "ground": ground}, outputs, name, dtype, arguments,
                              **kwargs)
