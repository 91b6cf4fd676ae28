"""CVM-Net-I, CVM-Net-II and the Siamese baselines as functional Keras models.

Every builder returns a ``keras.Model`` with dict inputs
``{"satellite": (batch, Hs, Ws, 3), "ground": (batch, Hg, Wg, 3)}`` (preprocessed:
BGR, caffe means subtracted, float32) and dict outputs
``{"satellite": (batch, dim), "ground": (batch, dim)}``: float32 descriptors, unit l2
norm (except ``cvm_net_ii(normalize_output=False)``).

Architectures (layer names match the released TF1 scopes, see INTERFACES.md):

- CVM-Net-I: ``VGG_grd``/``VGG_sat`` (unshared) -> ``netvlad_grd``/``netvlad_sat``
  (unshared, K clusters, D*K values) -> SHARED ``dim_reduction`` Dense D*K -> dim
  (truncated normal std 0.005, bias 0.1, no activation) -> l2 normalisation.
- CVM-Net-II: ``VGG_grd``/``VGG_sat`` -> ``grd_trans_conv1``/``sat_trans_conv1`` (1x1,
  512, ReLU, dropout) -> SHARED ``trans_conv1`` (3x3, 512, ReLU, dropout) -> SHARED
  ``trans_conv2`` (1x1, 512, ReLU, dropout) (SAME, Glorot uniform kernels AND biases)
  -> ONE SHARED ``netvlad`` with built-in reduction to dim -> l2 normalisation (the
  released code omits this last step; ``normalize_output=False`` reproduces it).
- Siamese baseline (paper Table 1/2 "Siamese VGG / AlexNet"; the paper gives no
  details, this is our documented choice): unshared backbone per branch -> global
  average pooling -> SHARED ``dim_reduction`` Dense C -> dim (Glorot uniform, zero
  bias, no activation) -> l2 normalisation.

Shared layers are called directly on both branches inside ONE functional graph (no
nested branch models), so a ``.keras`` round trip keeps them shared;
:func:`ground_encoder` / :func:`satellite_encoder` cut one branch out of that graph
(same layer objects, no weight copy). The final l2 normalisation, NetVLAD and the
CVM-Net-I FC compute in float32 under a mixed precision policy.
"""
import keras
from keras import layers

from cvmnet_tf import backbones
from cvmnet_tf.layers import L2Normalize, NetVLAD, precise_dtype

__all__ = ["cvm_net_i", "cvm_net_ii", "siamese", "build_model", "ground_encoder",
           "satellite_encoder", "MODEL_NAMES"]

MODEL_NAMES = ("cvm_net_i", "cvm_net_ii", "siamese_vgg", "siamese_alexnet")


def _check_args(satellite_shape, ground_shape, descriptor_dim, dropout_rate, fn):
    for arg, shape in (("satellite_shape", satellite_shape), ("ground_shape", ground_shape)):
        if len(tuple(shape)) != 2 or any(s is not None and int(s) < 1 for s in shape):
            raise ValueError(f"{fn}: {arg} must be (height, width) in pixels, got {shape!r}")
    if isinstance(descriptor_dim, bool) or not isinstance(descriptor_dim, int) or descriptor_dim < 1:
        raise ValueError(f"{fn}: descriptor_dim must be a positive int, got {descriptor_dim!r}")
    if not 0.0 <= float(dropout_rate) < 1.0:
        raise ValueError(f"{fn}: dropout_rate must be in [0, 1), got {dropout_rate!r}")


def _inputs(satellite_shape, ground_shape):
    satellite = keras.Input(shape=tuple(satellite_shape) + (3,), name="satellite")
    ground = keras.Input(shape=tuple(ground_shape) + (3,), name="ground")
    return satellite, ground


def _branch_backbones(backbone, satellite_shape, ground_shape, weights, dropout_rate, width=1.0,
                      freeze_early_layers=True):
    if backbone not in backbones.BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r} (argument `backbone`); "
                         f"choose one of {backbones.BACKBONES}")
    grd = backbones.build_backbone(backbone, tuple(ground_shape) + (3,), weights=weights,
                                   dropout_rate=dropout_rate, branch="grd", width=width,
                                   freeze_early_layers=freeze_early_layers)
    sat = backbones.build_backbone(backbone, tuple(satellite_shape) + (3,), weights=weights,
                                   dropout_rate=dropout_rate, branch="sat", width=width,
                                   freeze_early_layers=freeze_early_layers)
    return sat, grd


def cvm_net_i(satellite_shape=(512, 512), ground_shape=(224, 1232), num_clusters=64,
              descriptor_dim=4096, dropout_rate=0.2, backbone="vgg16", weights=None,
              name="cvm_net_i", width=1.0, freeze_early_layers=True):
    """CVM-Net-I (Hu et al. 2018, Fig. 3; released ``cvm_net_I``).

    Args:
        satellite_shape, ground_shape: (height, width) in pixels of the inputs.
        num_clusters: NetVLAD K per branch (64).
        descriptor_dim: output size of the shared FC (4096).
        dropout_rate: backbone dropout (code 0.2; paper 0.1).
        backbone: "vgg16" (paper) or "alexnet" (paper Table 2).
        weights: backbone initialisation: None, "imagenet" (VGG16) or a file path.
        name: model name.
        width: channel multiplier of the backbone (and of CVM-Net-II's 512-channel
            transformation convs); 1.0 is the paper's network, smaller values make
            CPU-sized models (the ``cpu_demo`` preset uses 0.125).
        freeze_early_layers: freeze the backbone's first layers (VGG16 conv1_1 ..
            conv3_3) as the released code; False trains all (random initialisation).

    Returns:
        keras.Model, dict in/out as in the module docstring; dim = descriptor_dim.
    """
    _check_args(satellite_shape, ground_shape, descriptor_dim, dropout_rate, "cvm_net_i")
    satellite, ground = _inputs(satellite_shape, ground_shape)
    vgg_sat, vgg_grd = _branch_backbones(backbone, satellite_shape, ground_shape, weights,
                                         dropout_rate, width, freeze_early_layers)
    grd_vlad = NetVLAD(num_clusters, name="netvlad_grd")(vgg_grd(ground))
    sat_vlad = NetVLAD(num_clusters, name="netvlad_sat")(vgg_sat(satellite))
    fc = layers.Dense(descriptor_dim, activation=None,
                      kernel_initializer=keras.initializers.TruncatedNormal(mean=0.0, stddev=0.005),
                      bias_initializer=keras.initializers.Constant(0.1),
                      dtype=precise_dtype(), name="dim_reduction")
    outputs = {"satellite": L2Normalize(name="l2_sat")(fc(sat_vlad)),
               "ground": L2Normalize(name="l2_grd")(fc(grd_vlad))}
    return keras.Model({"satellite": satellite, "ground": ground}, outputs, name=name)


def cvm_net_ii(satellite_shape=(512, 512), ground_shape=(224, 1232), num_clusters=64,
               descriptor_dim=4096, dropout_rate=0.2, backbone="vgg16", weights=None,
               name="cvm_net_ii", normalize_output=True, width=1.0,
               freeze_early_layers=True):
    """CVM-Net-II (Hu et al. 2018, Fig. 4; released ``cvm_net_II``).

    Args: as :func:`cvm_net_i`, plus
        normalize_output: l2-normalise the NetVLAD output (default True: the loss
            assumes unit vectors). False reproduces the released code, which returns
            the un-normalised ``vlad @ hidden1_weights``.

    Returns:
        keras.Model, dict in/out; dim = descriptor_dim (NetVLAD's output_dim).
    """
    _check_args(satellite_shape, ground_shape, descriptor_dim, dropout_rate, "cvm_net_ii")
    satellite, ground = _inputs(satellite_shape, ground_shape)
    vgg_sat, vgg_grd = _branch_backbones(backbone, satellite_shape, ground_shape, weights,
                                         dropout_rate, width, freeze_early_layers)

    def conv(kernel, conv_name):
        return layers.Conv2D(backbones.scaled_channels(512, width), kernel, padding="same", activation="relu",
                             kernel_initializer="glorot_uniform",
                             bias_initializer="glorot_uniform", name=conv_name)

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

    outputs = {"satellite": branch(vgg_sat(satellite), sat_trans, "sat"),
               "ground": branch(vgg_grd(ground), grd_trans, "grd")}
    return keras.Model({"satellite": satellite, "ground": ground}, outputs, name=name)


def siamese(backbone="vgg16", satellite_shape=(512, 512), ground_shape=(224, 1232),
            descriptor_dim=4096, dropout_rate=0.2, weights=None, name=None, width=1.0,
            freeze_early_layers=True):
    """Siamese baseline (paper Table 1/2): backbone -> global average pool -> shared FC.

    Args:
        backbone: "vgg16" or "alexnet".
        satellite_shape, ground_shape: (height, width) in pixels.
        descriptor_dim: output size of the shared FC ``dim_reduction``.
        dropout_rate: backbone dropout.
        weights: backbone initialisation (None, "imagenet" for VGG16, or a file path).
        name: model name, default ``siamese_vgg`` / ``siamese_alexnet``.
        width: backbone channel multiplier (see :func:`cvm_net_i`).

    Returns:
        keras.Model, dict in/out; dim = descriptor_dim.
    """
    _check_args(satellite_shape, ground_shape, descriptor_dim, dropout_rate, "siamese")
    if name is None:
        name = {"vgg16": "siamese_vgg", "alexnet": "siamese_alexnet"}.get(backbone, "siamese")
    satellite, ground = _inputs(satellite_shape, ground_shape)
    net_sat, net_grd = _branch_backbones(backbone, satellite_shape, ground_shape, weights,
                                         dropout_rate, width, freeze_early_layers)
    fc = layers.Dense(descriptor_dim, activation=None, kernel_initializer="glorot_uniform",
                      bias_initializer="zeros", dtype=precise_dtype(), name="dim_reduction")
    sat = layers.GlobalAveragePooling2D(dtype=precise_dtype(), name="pool_sat")(net_sat(satellite))
    grd = layers.GlobalAveragePooling2D(dtype=precise_dtype(), name="pool_grd")(net_grd(ground))
    outputs = {"satellite": L2Normalize(name="l2_sat")(fc(sat)),
               "ground": L2Normalize(name="l2_grd")(fc(grd))}
    return keras.Model({"satellite": satellite, "ground": ground}, outputs, name=name)


def build_model(name, **kwargs):
    """Build a model by name: "cvm_net_i", "cvm_net_ii", "siamese_vgg", "siamese_alexnet".

    ``kwargs`` go to the builder (e.g. satellite_shape, ground_shape, num_clusters,
    descriptor_dim, dropout_rate, backbone, weights, normalize_output). The Siamese
    models ignore ``num_clusters`` (they have no NetVLAD), their backbone is fixed by
    the name, and ``normalize_output=False`` is refused for every model but cvm_net_ii.
    """
    if name == "cvm_net_i":
        if not kwargs.pop("normalize_output", True):
            raise ValueError("build_model: 'cvm_net_i' always l2-normalises its output (as the "
                             "released code); normalize_output=False is only for 'cvm_net_ii'")
        return cvm_net_i(**kwargs)
    if name == "cvm_net_ii":
        return cvm_net_ii(**kwargs)
    if name in ("siamese_vgg", "siamese_alexnet"):
        backbone = "vgg16" if name == "siamese_vgg" else "alexnet"
        if kwargs.get("backbone", backbone) != backbone:
            raise ValueError(f"build_model: model {name!r} implies backbone={backbone!r}, "
                             f"got backbone={kwargs['backbone']!r}")
        kwargs.pop("backbone", None)
        # num_clusters is accepted (and unused) for a uniform training CLI: the Siamese
        # models have no NetVLAD. They always l2-normalise their output.
        kwargs.pop("num_clusters", None)
        if not kwargs.pop("normalize_output", True):
            raise ValueError(f"build_model: {name!r} always l2-normalises its output; "
                             "normalize_output=False is only supported for 'cvm_net_ii'")
        return siamese(backbone=backbone, **kwargs)
    raise ValueError(f"unknown model {name!r} (argument `name`); choose one of {MODEL_NAMES}")


def _branch_io(model, key):
    try:
        inp = model.get_layer(key).output
    except ValueError as err:
        raise ValueError(f"model {model.name!r} has no input layer named {key!r}; expected a "
                         "model built by cvmnet_tf.models") from err
    out = model.output
    if not isinstance(out, dict) or key not in out:
        raise ValueError(f"model {model.name!r} has no dict output {key!r}; expected a model "
                         "built by cvmnet_tf.models")
    return inp, out[key]


def ground_encoder(model):
    """The ground branch of ``model``: ``(batch, Hg, Wg, 3) -> (batch, dim)``.

    A keras.Model over the same layer objects (weights shared, nothing copied).
    """
    inp, out = _branch_io(model, "ground")
    return keras.Model(inp, out, name=f"{model.name}_ground")


def satellite_encoder(model):
    """The satellite branch of ``model``: ``(batch, Hs, Ws, 3) -> (batch, dim)``."""
    inp, out = _branch_io(model, "satellite")
    return keras.Model(inp, out, name=f"{model.name}_satellite")
