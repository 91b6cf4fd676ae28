"""AlexNet convolutional part (paper Table 2; bvlc_alexnet layout, conv layers only).

conv1 (11x11/4, 96, VALID) - LRN - pool1 (3x3/2) - conv2 (5x5, 256, 2 groups) - LRN - pool2 -
conv3 (3x3, 384) - conv4 (3x3, 384, 2 groups) - conv5 (3x3, 256, 2 groups), no pool5:
C = 256 (times ``width``), the layout of bvlc_alexnet (Caffe), so ``bvlc_alexnet.npy``
weights load directly. conv1, conv2 frozen; conv3..conv5 trainable with dropout after each
(our choice by analogy with VGG16; the paper does not say which AlexNet layers it
fine-tunes).

Weights (``weights=``): ``None`` (random) or a path: ``bvlc_alexnet.npy`` (dict
``{"conv1": [W, b], ...}`` or ``{"conv1": {"weights": W, "biases": b}}``, loaded with
``allow_pickle=True``, so only pass files you trust) or a ``.weights.h5`` written by
``save_weights`` of this backbone. ``"imagenet"`` is refused: Keras ships no ImageNet AlexNet.
"""
import numpy as np

from keras import layers

from cvmnet_tf.layers import LocalResponseNormalization
from cvmnet_tf.models.backbones.common import (check_backbone_args, check_init, check_weights_path,
                                               conv_initializers, scaled_channels, stack_layers)

__all__ = ["alexnet", "load_alexnet_weights", "ALEXNET_CONV_NAMES"]

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



def alexnet(input_shape=(None, None, 3), weights=None, dropout_rate=0.2, name="AlexNet_grd", width=1.0,
            freeze_early_layers=True, init="released"):
    """AlexNet convolutional part (conv1 .. conv5, bvlc_alexnet layout, no pool5).

    Args:
        input_shape: (H, W, 3); H, W may be None but must be >= 35 for a non-empty
            output (conv1 and the 3x3/2 pools use VALID padding as in Caffe).
        weights: None, or a path to ``bvlc_alexnet.npy`` / a ``.weights.h5`` of this
            backbone. "imagenet" raises (Keras has no ImageNet AlexNet).
        dropout_rate: dropout after conv3, conv4, conv5 (the trainable layers).
        name: ``AlexNet_grd`` or ``AlexNet_sat``.
        width: channel multiplier (1.0: AlexNet); pretrained weights need 1.0.
        freeze_early_layers: freeze conv1, conv2 (False: train every layer).
        init: "released" (Glorot uniform kernels, zero biases) or "he" (He normal kernels).

    Returns:
        keras.Model ``(batch, H, W, 3) -> (batch, H', W', 256 * width)``, stride about 16.
    """
    check_backbone_args(input_shape, dropout_rate, width, weights, "alexnet")
    check_init(init, "alexnet")
    kernel_init, bias_init = conv_initializers(init, released=("glorot_uniform", "zeros"))
    if isinstance(weights, str) and weights == "imagenet":
        raise ValueError(
            "alexnet: weights='imagenet' is not available: Keras ships no ImageNet AlexNet. "
            "Pass a local file instead, e.g. weights='/path/to/bvlc_alexnet.npy' "
            "(Caffe bvlc_alexnet converted to a NumPy dict) or a .weights.h5 of this backbone.")
    def make_layer(item):
        if isinstance(item, str):
            if item.startswith("lrn"):
                return LocalResponseNormalization(name=item)
            return layers.MaxPooling2D(pool_size=3, strides=2, padding="valid", name=item)
        conv_name, kernel, filters, strides, padding, groups = item
        return layers.Conv2D(groups * scaled_channels(filters // groups, width), kernel, strides=strides,
                             padding=padding, groups=groups, activation="relu", kernel_initializer=kernel_init,
                             bias_initializer=bias_init, name=conv_name)

    return stack_layers(input_shape, name, _ALEXNET_LAYOUT, make_layer, _ALEXNET_FROZEN, freeze_early_layers,
                        dropout_rate, weights, load_alexnet_weights)


def load_alexnet_weights(model, weights):
    """Load AlexNet conv weights from ``bvlc_alexnet.npy`` or a ``.weights.h5`` file.

    The .npy dict holds (kernel (kh, kw, in/groups, out), bias (out,)) per conv name;
    fully connected entries are ignored. Raises FileNotFoundError / ValueError.
    """
    path = check_weights_path(weights, "alexnet")
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
