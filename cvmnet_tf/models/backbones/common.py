"""Pieces every convolutional backbone shares: argument checks, the width multiplier and the
conv / freeze / dropout block of the released code."""
import os

import keras
from keras import layers

__all__ = ["INITS", "check_backbone_args", "check_init", "conv_initializers", "check_weights_path", "conv_block",
           "scaled_channels", "stack_layers"]

#: Initialisations of a randomly initialised network (argument ``init`` of the backbones and
#: models): "released" = the released code's initialisers; "he" = He normal kernels and zero
#: biases (keeps the activation scale through the 13 ReLU layers of a random VGG16).
INITS = ("released", "he")


def check_init(init, fn):
    """ValueError naming ``fn`` unless ``init`` is one of :data:`INITS`."""
    if init not in INITS:
        raise ValueError(f"{fn}: init must be one of {INITS} (argument `init`), got {init!r}")


def conv_initializers(init, released=("glorot_uniform", "glorot_uniform")):
    """(kernel, bias) initialisers of a conv layer: ``released`` (the code's: TF1
    ``xavier_initializer`` = Glorot uniform, for kernels and biases alike) or, for
    ``init="he"``, He normal kernels and zero biases. Copied pretrained weights win either way."""
    return ("he_normal", "zeros") if init == "he" else tuple(released)


def check_backbone_args(input_shape, dropout_rate, width, weights, fn):
    """Raise ValueError naming ``fn`` for a bad input shape (H, W, 3), dropout rate, width or a
    pretrained ``weights`` request at a width other than 1.0."""
    if len(tuple(input_shape)) != 3:
        raise ValueError(f"{fn}: input_shape must be (H, W, 3), got {input_shape!r}")
    if tuple(input_shape)[-1] != 3:
        raise ValueError(f"{fn}: input_shape must have 3 channels (BGR), got {input_shape!r}")
    if not 0.0 <= float(dropout_rate) < 1.0:
        raise ValueError(f"{fn}: dropout_rate must be in [0, 1), got {dropout_rate!r}")
    if not width > 0:
        raise ValueError(f"{fn}: width must be positive (argument `width`), got {width!r}")
    if weights is not None and width != 1.0:
        raise ValueError(f"{fn}: pretrained weights need the full network (width=1.0), got width={width} "
                         f"with weights={weights!r}")


def check_weights_path(weights, fn):
    """``weights`` as an existing file path; ValueError / FileNotFoundError naming ``fn``."""
    if not isinstance(weights, (str, os.PathLike)):
        raise ValueError(f"{fn}: weights must be None, 'imagenet' or a file path, got {weights!r}")
    path = os.fspath(weights)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{fn}: weights file not found: {path!r} (argument `weights`)")
    return path


def scaled_channels(channels, width):
    """``channels`` scaled by the width multiplier ``width`` (at least 1)."""
    return max(1, int(round(channels * width)))


def conv_block(x, conv, early, freeze_early_layers, dropout_rate):
    """Apply ``conv``; freeze it if it is an early layer and freezing is on; dropout follows
    every layer the released code trains (the non-early ones), frozen or not."""
    conv.trainable = not (freeze_early_layers and early)
    x = conv(x)
    if not early:
        x = layers.Dropout(dropout_rate, name=f"{conv.name}_dropout")(x)
    return x


def stack_layers(input_shape, name, layout, make_layer, frozen, freeze_early_layers, dropout_rate, weights,
                 load_weights):
    """The functional backbone ``name``: ``make_layer(item)`` for every item of ``layout`` in
    order, convolutions through :func:`conv_block` (``frozen``: the early conv names), then
    ``load_weights(model, weights)`` when ``weights`` is not None."""
    inputs = keras.Input(shape=tuple(input_shape), name=f"{name}_input")
    x = inputs
    for item in layout:
        layer = make_layer(item)
        if isinstance(layer, layers.Conv2D):
            x = conv_block(x, layer, layer.name in frozen, freeze_early_layers, dropout_rate)
        else:
            x = layer(x)
    model = keras.Model(inputs, x, name=name)
    if weights is not None:
        load_weights(model, weights)
    return model
