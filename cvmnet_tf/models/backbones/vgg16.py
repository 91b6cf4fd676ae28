"""VGG16 convolutional part of CVM-Net (released ``VGG.py``'s ``VGG16_conv``).

conv1_1 .. conv5_3 (3x3, SAME, ReLU), 2x2/2 max-pools pool1..pool4, NO pool5: stride 16,
C = 512 (times ``width``). conv1_1..conv3_3 are frozen (``trainable=False``); conv4_1 ..
conv5_3 are trainable and each one's ReLU output is followed by dropout
(``conv4_1_dropout`` ..., including conv4_3 before pool4 and conv5_3 at the very end).
Initialiser (no weights): Glorot uniform for kernels and biases (TF1
``xavier_initializer`` for both); ``init="he"``: He normal kernels, zero biases.

Weights (``weights=``): ``None`` (random), ``"imagenet"`` (Keras'
``keras.applications.VGG16(include_top=False)`` ImageNet weights, downloaded by Keras: the
Caffe VGG16 weights, expecting the same BGR / mean-subtracted input, copied into our conv
layers in order) or the path of a Keras VGG16 ``include_top=False`` weights file (``.h5``
as distributed by Keras, or ``.weights.h5``).
"""
import keras
from keras import layers

from cvmnet_tf.models.backbones.common import (check_backbone_args, check_init, check_weights_path,
                                               conv_initializers, scaled_channels, stack_layers)

__all__ = ["vgg16", "load_vgg16_weights", "VGG16_CONV_NAMES", "VGG16_NOTOP_FILE", "ImageNetDownloadError"]

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



def vgg16(input_shape=(None, None, 3), weights=None, dropout_rate=0.2, name="VGG_grd", width=1.0,
          freeze_early_layers=True, init="released"):
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
        init: "released" (Glorot uniform kernels and biases) or "he" (He normal kernels,
            zero biases: a randomly initialised VGG16 keeps its activation scale; the
            cpu_demo preset's). Pretrained weights replace either.

    Returns:
        keras.Model ``(batch, H, W, 3) -> (batch, ceil(H/16), ceil(W/16), 512 * width)``
        (pooling uses SAME padding like the TF1 code).
    """
    check_backbone_args(input_shape, dropout_rate, width, weights, "vgg16")
    check_init(init, "vgg16")
    kernel_init, bias_init = conv_initializers(init)

    def make_layer(item):
        if isinstance(item, str):
            return layers.MaxPooling2D(pool_size=2, strides=2, padding="same", name=item)
        conv_name, filters = item
        return layers.Conv2D(scaled_channels(filters, width), 3, padding="same", activation="relu",
                             kernel_initializer=kernel_init, bias_initializer=bias_init, name=conv_name)

    return stack_layers(input_shape, name, _VGG16_LAYOUT, make_layer, _VGG16_FROZEN, freeze_early_layers,
                        dropout_rate, weights, load_vgg16_weights)


def _keras_vgg16_convs(reference):
    convs = [layer for layer in reference.layers if isinstance(layer, layers.Conv2D)]
    if len(convs) != 13:
        raise ValueError(f"vgg16: expected 13 conv layers in the Keras VGG16, found {len(convs)}")
    return convs


#: The file Keras downloads for ``VGG16(include_top=False, weights="imagenet")``.
VGG16_NOTOP_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"


class ImageNetDownloadError(OSError):
    """Keras' ImageNet weights could not be downloaded (e.g. offline); the message says how
    to pass a local file or ``--weights none``."""


def load_vgg16_weights(model, weights):
    """Copy VGG16 conv weights into ``model`` (a :func:`vgg16` backbone), in order.

    ``weights``: "imagenet" (Keras download) or a path to a Keras VGG16 include_top=False
    weights file. Raises FileNotFoundError for a missing file, ValueError on a mismatch.
    """
    if isinstance(weights, str) and weights == "imagenet":
        try:
            reference = keras.applications.VGG16(include_top=False, weights="imagenet",
                                                 input_shape=(None, None, 3))
        except Exception as err:  # noqa: BLE001 - Keras raises a bare Exception for a failed download
            if "URL fetch failure" not in str(err) and not isinstance(err, OSError):
                raise
            raise ImageNetDownloadError(
                f"--weights=imagenet: downloading Keras' VGG16 ImageNet weights failed ({err}); offline, pass a "
                f"local copy of {VGG16_NOTOP_FILE} (Keras VGG16 include_top=False) with --weights "
                "/path/to/it (weights='/path/to/it' in Python), or train from scratch with --weights none") from None
    else:
        path = check_weights_path(weights, "vgg16")
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
