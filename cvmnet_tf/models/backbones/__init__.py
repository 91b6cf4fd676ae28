"""Convolutional backbones of the two-branch models, as a registry.

Each entry of :data:`BACKBONES` names a builder ``fn(input_shape, weights, dropout_rate,
name, width, freeze_early_layers, init) -> keras.Model`` that maps a preprocessed image
``(batch, H, W, 3)`` (BGR, caffe means subtracted, no scaling) to local features
``(batch, H', W', C)``, the model-name prefix of its branches (``VGG_grd``/``VGG_sat``:
the released TF1 scopes) and C at width 1.0.

- ``vgg16`` (:mod:`.vgg16`): the paper's backbone, stride 16, C = 512.
- ``alexnet`` (:mod:`.alexnet`): paper Table 2, C = 256, inputs of at least 35x35 pixels.

A new backbone is one module with its builder and one :class:`BackboneSpec` entry here;
every model, the training flag ``--backbone`` and the docs read this table.
"""
import dataclasses
from typing import Callable

from cvmnet_tf.models.backbones.alexnet import ALEXNET_CONV_NAMES, alexnet, load_alexnet_weights
from cvmnet_tf.models.backbones.common import INITS, scaled_channels
from cvmnet_tf.models.backbones.vgg16 import VGG16_CONV_NAMES, load_vgg16_weights, vgg16

__all__ = ["BACKBONES", "BACKBONE_NAMES", "INITS", "BackboneSpec", "get_backbone", "build_backbone",
           "feature_channels", "scaled_channels", "vgg16", "alexnet", "load_vgg16_weights",
           "load_alexnet_weights", "VGG16_CONV_NAMES", "ALEXNET_CONV_NAMES"]

BRANCHES = ("grd", "sat")


@dataclasses.dataclass(frozen=True)
class BackboneSpec:
    """One backbone: ``build`` (see the module docstring), ``prefix`` of its branch models
    (``<prefix>_grd`` / ``<prefix>_sat``), ``channels`` C of its features at width 1.0,
    ``summary`` (one line for help texts), ``min_input_px``: the smallest input height and
    width (pixels) with a non-empty output (checked before a model is built)."""

    name: str
    build: Callable
    prefix: str
    channels: int
    summary: str
    min_input_px: int = 1


BACKBONES = {
    "vgg16": BackboneSpec("vgg16", vgg16, "VGG", 512,
                          "VGG16 conv1_1..conv5_3, no pool5 (the paper's; ImageNet weights available)"),
    "alexnet": BackboneSpec("alexnet", alexnet, "AlexNet", 256,
                            "AlexNet conv1..conv5, bvlc_alexnet layout (paper Table 2)",
                            min_input_px=35),  # conv1 11/4 VALID, then two 3x3/2 VALID pools
}
BACKBONE_NAMES = tuple(BACKBONES)


def get_backbone(name) -> BackboneSpec:
    """The :class:`BackboneSpec` of ``name``; ValueError listing the choices otherwise."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r} (argument `backbone`); choose one of {BACKBONE_NAMES}")
    return BACKBONES[name]


def build_backbone(backbone, input_shape, weights=None, dropout_rate=0.2, branch="grd", width=1.0,
                   freeze_early_layers=True, init="released"):
    """Build ``backbone`` for ``branch`` ("grd" | "sat"), named ``<prefix>_<branch>``
    (``init``: :data:`INITS`, the initialisation of a randomly initialised backbone)."""
    if branch not in BRANCHES:
        raise ValueError(f"build_backbone: branch must be 'grd' or 'sat', got {branch!r}")
    spec = get_backbone(backbone)
    return spec.build(input_shape, weights=weights, dropout_rate=dropout_rate, name=f"{spec.prefix}_{branch}",
                      width=width, freeze_early_layers=freeze_early_layers, init=init)


def feature_channels(backbone, width=1.0):
    """Channels C of the local features a backbone outputs (vgg16: 512, alexnet: 256, times width)."""
    return scaled_channels(get_backbone(backbone).channels, width)
