"""Convolutional backbones of CVM-Net: VGG16 and AlexNet (conv layers only).

Both return a functional ``keras.Model`` (named e.g. ``VGG_grd``) mapping a
preprocessed image ``(batch, H, W, 3)`` (BGR, caffe means subtracted, no scaling)
to local features ``(batch, H', W', C)``:

- :func:`vgg16`: conv1_1 .. conv5_3 (3x3, SAME, ReLU), 2x2/2 max-pools pool1..pool4,
  NO pool5: stride 16, C = 512. As in the released ``VGG.py``: conv1_1..conv3_3 are
  frozen (``trainable=False``), conv4_1..conv5_3 are trainable and each one's ReLU
  output is followed by dropout (``conv4_1_dropout`` ..., including conv4_3 before
  pool4 and conv5_3 at the very end). Initialiser (no weights): Glorot uniform for
  kernels and biases (TF1 ``xavier_initializer`` for both).
- :func:`alexnet`: conv1 (11x11/4, 96, VALID) - LRN - pool1 (3x3/2) - conv2 (5x5, 256,
  2 groups) - LRN - pool2 - conv3 (3x3, 384) - conv4 (3x3, 384, 2 groups) - conv5
  (3x3, 256, 2 groups), no pool5: C = 256, the layout of bvlc_alexnet (Caffe),
  so ``bvlc_alexnet.npy`` weights load directly. conv1, conv2 frozen; conv3..conv5
  trainable with dropout after each (our choice by analogy with VGG16; the paper does
  not say which AlexNet layers it fine-tunes).

Weights (``weights=``):
- ``None``: random initialisation;
- ``"imagenet"`` (VGG16 only): Keras' ``keras.applications.VGG16(include_top=False)``
  ImageNet weights (downloaded by Keras; these are the Caffe VGG16 weights, expecting
  the same BGR / mean-subtracted input), copied into our conv layers in order;
- a path: VGG16 -> a Keras VGG16 ``include_top=False`` weights file (``.h5`` as
  distributed by Keras, or ``.weights.h5``); AlexNet -> ``bvlc_alexnet.npy`` (dict
  ``{"conv1": [W, b], ...}`` or ``{"conv1": {"weights": W, "biases": b}}``, loaded
  with ``allow_pickle=True``, so only pass files you trust) or a ``.weights.h5``
  written by ``save_weights`` of this backbone.
"""
import os

import numpy as np

import keras
from keras import layers

from cvmnet_tf.layers import LocalResponseNormalization

__all__ = ["vgg16", "alexnet", "build_backbone", "BACKBONES", "VGG16_CONV_NAMES",
           "ALEXNET_CONV_NAMES", "feature_channels"]

# (name, filters) per conv layer; "pool" marks a 2x2/2 max-pool.
_VGG16_LAYOUT = [
    ("conv1_1", 64), ("conv1_2", 64), "pool1",
    ("conv2_1", 128), ("conv2_2", 128), "pool2",
    ("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256), "pool3",
    ("conv4_1", 512), ("conv4_2", 512), ("conv4_3", 512), "pool4",
    ("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512),
]
VGG16_CONV_NAMES = tuple(item[0] for item in _VGG16_LAYOUT if not isinstance(item, str))
_VGG16_FROZEN = frozenset(VGG16_CONV_NAMES[:7])  # conv1_1 .. conv3_3

# name: (kernel, filters, strides, padding, groups)
_ALEXNET_LAYOUT = [
    ("conv1", 11, 96, 4, "valid", 1), "lrn1", "pool1",
    ("conv2", 5, 256, 1, "same", 2), "lrn2", "pool2",
    ("conv3", 3, 384, 1, "same", 1),
    ("conv4", 3, 384, 1, "same", 2),
    ("conv5", 3, 256, 1, "same", 2),
]
ALEXNET_CONV_NAMES = tuple(item[0] for item in _ALEXNET_LAYOUT if not isinstance(item, str))
_ALEXNET_FROZEN = frozenset(("conv1", "conv2"))

BACKBONES = ("vgg16", "alexnet")


def _check_common(input_shape, dropout_rate, fn):
    if len(tuple(input_shape)) != 3:
        raise ValueError(f"{fn}: input_shape must be (H, W, 3), got {input_shape!r}")
    if tuple(input_shape)[-1] != 3:
        raise ValueError(f"{fn}: input_shape must have 3 channels (BGR), got {input_shape!r}")
    if not 0.0 <= float(dropout_rate) < 1.0:
        raise ValueError(f"{fn}: dropout_rate must be in [0, 1), got {dropout_rate!r}")


def _check_weights_path(weights, fn):
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"{fn}: weights must be None, 'imagenet' or a file path, got {weights!r}")
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{fn}: weights file not found: {path!r} (argument `weights`)")
    return path


def scaled_channels(channels, width):
    """``channels`` scaled by the width multiplier ``width`` (at least 1)."""
    return max(1, int(round(channels * width)))


def _check_width(width, weights, backbone):
    if not width > 0:
        raise ValueError(f"{backbone}: width must be positive (argument `width`), got {width!r}")
    if weights is not None and width != 1.0:
        raise ValueError(f"{backbone}: pretrained weights need the full network (width=1.0), got width={width} "
                         f"with weights={weights!r}")


def _conv_block(x, conv, early, freeze_early_layers, dropout_rate):
    """Apply ``conv``; freeze it if it is an early layer and freezing is on; dropout follows
    every layer the released code trains (the non-early ones), frozen or not."""
    conv.trainable = not (freeze_early_layers and early)
    x = conv(x)
    if not early:
        x = layers.Dropout(dropout_rate, name=f"{conv.name}_dropout")(x)
    return x


def vgg16(input_shape=(None, None, 3), weights=None, dropout_rate=0.2, name="VGG_grd", width=1.0,
          freeze_early_layers=True):
    """VGG16 convolutional part as in CVM-Net's ``VGG16_conv``.

    Args:
        input_shape: (H, W, 3); H, W may be None.
        weights: None, "imagenet" or a path to a Keras VGG16 (include_top=False)
            weights file (.h5 / .weights.h5). See the module docstring.
        dropout_rate: dropout after conv4_1 .. conv5_3 (released code: 0.2, i.e.
            keep_prob 0.8; the paper says 0.1).
        name: model name, ``VGG_grd`` or ``VGG_sat`` (matches the TF1 scopes).
        width: channel multiplier (1.0: VGG16; e.g. 0.125 for CPU-sized experiments,
            64..512 channels become 8..64). Pretrained weights need 1.0.
        freeze_early_layers: freeze conv1_1 .. conv3_3 as the released code (which
            always starts from ImageNet weights). False trains every layer, which is
            what a randomly initialised network needs.

    Returns:
        keras.Model ``(batch, H, W, 3) -> (batch, ceil(H/16), ceil(W/16), 512 * width)``
        (pooling uses SAME padding like the TF1 code).
    """
    _check_common(input_shape, dropout_rate, "vgg16")
    _check_width(width, weights, "vgg16")
    inputs = keras.Input(shape=tuple(input_shape), name=f"{name}_input")
    x = inputs
    for item in _VGG16_LAYOUT:
        if isinstance(item, str):
            x = layers.MaxPooling2D(pool_size=2, strides=2, padding="same", name=item)(x)
            continue
        conv_name, filters = item
        conv = layers.Conv2D(scaled_channels(filters, width), 3, padding="same", activation="relu",
                             kernel_initializer="glorot_uniform",
                             bias_initializer="glorot_uniform", name=conv_name)
        x = _conv_block(x, conv, conv_name in _VGG16_FROZEN, freeze_early_layers, dropout_rate)
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        load_vgg16_weights(model, weights)
    return model


def _keras_vgg16_convs(reference):
    convs = [layer for layer in reference.layers if isinstance(layer, layers.Conv2D)]
    if len(convs) != 13:
        raise ValueError(f"vgg16: expected 13 conv layers in the Keras VGG16, found {len(convs)}")
    return convs


def load_vgg16_weights(model, weights):
    """Copy VGG16 conv weights into ``model`` (a :func:`vgg16` backbone), in order.

    ``weights``: "imagenet" (Keras download) or a path to a Keras VGG16 include_top=False
    weights file. Raises FileNotFoundError for a missing file, ValueError on a mismatch.
    """
    if isinstance(weights, str) and weights == "imagenet":
        reference = keras.applications.VGG16(include_top=False, weights="imagenet",
                                             input_shape=(None, None, 3))
    else:
        path = _check_weights_path(weights, "vgg16")
        if not path.endswith(".h5"):
            raise ValueError(
                f"vgg16: weights file {path!r} must be a Keras VGG16 include_top=False "
                "weights file ending in .h5 or .weights.h5 (argument `weights`)")
        reference = keras.applications.VGG16(include_top=False, weights=None,
                                             input_shape=(None, None, 3))
        try:
            reference.load_weights(path)
        except Exception as err:  # noqa: BLE001 - re-raised with context
            raise ValueError(
                f"vgg16: could not load {path!r} into keras.applications.VGG16(include_top=False) "
                f"(argument `weights`): {err}") from err
    for src, name in zip(_keras_vgg16_convs(reference), VGG16_CONV_NAMES):
        model.get_layer(name).set_weights(src.get_weights())
    return model


def alexnet(input_shape=(None, None, 3), weights=None, dropout_rate=0.2, name="AlexNet_grd", width=1.0,
            freeze_early_layers=True):
    """AlexNet convolutional part (conv1 .. conv5, bvlc_alexnet layout, no pool5).

    Args:
        input_shape: (H, W, 3); H, W may be None but must be >= 67 for a non-empty
            output (conv1 and the 3x3/2 pools use VALID padding as in Caffe).
        weights: None, or a path to ``bvlc_alexnet.npy`` / a ``.weights.h5`` of this
            backbone. "imagenet" raises (Keras has no ImageNet AlexNet).
        dropout_rate: dropout after conv3, conv4, conv5 (the trainable layers).
        name: ``AlexNet_grd`` or ``AlexNet_sat``.
        width: channel multiplier (1.0: AlexNet); pretrained weights need 1.0.
        freeze_early_layers: freeze conv1, conv2 (False: train every layer).

    Returns:
        keras.Model ``(batch, H, W, 3) -> (batch, H', W', 256 * width)``, stride about 16.
    """
    _check_common(input_shape, dropout_rate, "alexnet")
    _check_width(width, weights, "alexnet")
    if isinstance(weights, str) and weights == "imagenet":
        raise ValueError(
            "alexnet: weights='imagenet' is not available: Keras ships no ImageNet AlexNet. "
            "Pass a local file instead, e.g. weights='/path/to/bvlc_alexnet.npy' "
            "(Caffe bvlc_alexnet converted to a NumPy dict) or a .weights.h5 of this backbone.")
    inputs = keras.Input(shape=tuple(input_shape), name=f"{name}_input")
    x = inputs
    for item in _ALEXNET_LAYOUT:
        if isinstance(item, str):
            if item.startswith("lrn"):
                x = LocalResponseNormalization(name=item)(x)
            else:
                x = layers.MaxPooling2D(pool_size=3, strides=2, padding="valid", name=item)(x)
            continue
        conv_name, kernel, filters, strides, padding, groups = item
        conv = layers.Conv2D(groups * scaled_channels(filters // groups, width), kernel,
                             strides=strides, padding=padding, groups=groups,
                             activation="relu", kernel_initializer="glorot_uniform",
                             bias_initializer="zeros", name=conv_name)
        x = _conv_block(x, conv, conv_name in _ALEXNET_FROZEN, freeze_early_layers, dropout_rate)
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        load_alexnet_weights(model, weights)
    return model


def load_alexnet_weights(model, weights):
    """Load AlexNet conv weights from ``bvlc_alexnet.npy`` or a ``.weights.h5`` file.

    The .npy dict holds (kernel (kh, kw, in/groups, out), bias (out,)) per conv name;
    fully connected entries are ignored. Raises FileNotFoundError / ValueError.
    """
    path = _check_weights_path(weights, "alexnet")
    if path.endswith(".h5"):
        model.load_weights(path)
        return model
    if not path.endswith(".npy"):
        raise ValueError(f"alexnet: weights file {path!r} must be a .npy dict (bvlc_alexnet.npy) "
                         "or a .weights.h5 file (argument `weights`)")
    data = np.load(path, encoding="latin1", allow_pickle=True)
    if data.dtype == object and data.shape == ():
        data = data.item()
    if not isinstance(data, dict):
        raise ValueError(f"alexnet: {path!r} does not hold a dict of layer weights (argument `weights`)")
    for conv_name in ALEXNET_CONV_NAMES:
        if conv_name not in data:
            raise ValueError(f"alexnet: {path!r} has no entry {conv_name!r} (argument `weights`)")
        entry = data[conv_name]
        if isinstance(entry, dict):
            kernel, bias = entry["weights"], entry["biases"]
        else:
            kernel, bias = entry[0], entry[1]
        layer = model.get_layer(conv_name)
        expected = [tuple(w.shape) for w in layer.weights]
        got = [tuple(np.shape(kernel)), tuple(np.shape(bias))]
        if expected != got:
            raise ValueError(f"alexnet: {path!r} entry {conv_name!r} has shapes {got}, "
                             f"expected {expected} (argument `weights`)")
        layer.set_weights([np.asarray(kernel, np.float32), np.asarray(bias, np.float32)])
    return model


def build_backbone(backbone, input_shape, weights=None, dropout_rate=0.2, branch="grd", width=1.0,
                   freeze_early_layers=True):
    """Build ``backbone`` ("vgg16" | "alexnet") for ``branch`` ("grd" | "sat").

    The model is named ``VGG_<branch>`` or ``AlexNet_<branch>``.
    """
    if branch not in ("grd", "sat"):
        raise ValueError(f"build_backbone: branch must be 'grd' or 'sat', got {branch!r}")
    if backbone == "vgg16":
        return vgg16(input_shape, weights=weights, dropout_rate=dropout_rate, name=f"VGG_{branch}",
                     width=width, freeze_early_layers=freeze_early_layers)
    if backbone == "alexnet":
        return alexnet(input_shape, weights=weights, dropout_rate=dropout_rate,
                       name=f"AlexNet_{branch}", width=width,
                       freeze_early_layers=freeze_early_layers)
    raise ValueError(f"unknown backbone {backbone!r} (argument `backbone`); choose one of {BACKBONES}")


def feature_channels(backbone, width=1.0):
    """Channels C of the local features a backbone outputs (vgg16: 512, alexnet: 256, times width)."""
    if backbone == "vgg16":
        return scaled_channels(512, width)
    if backbone == "alexnet":
        return scaled_channels(256, width)
    raise ValueError(f"unknown backbone {backbone!r} (argument `backbone`); choose one of {BACKBONES}")
