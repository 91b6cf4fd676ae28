"""The two-branch cross-view models: CVM-Net-I, CVM-Net-II and the Siamese baselines.

Every model maps dict inputs ``{"satellite": (batch, Hs, Ws, 3), "ground": (batch, Hg,
Wg, 3)}`` (``input_dtype="uint8"``, the default: RGB uint8 pixels, preprocessed on the
device by the first layer, :class:`cvmnet_tf.layers.NetworkInput`; "float32" and models
saved before the option: preprocessed, BGR minus the caffe means; see
:mod:`.base`) to dict outputs
``{"satellite": (batch, dim), "ground": (batch, dim)}``: float32 descriptors, unit l2
norm (except ``cvm_net_ii(normalize_output=False)``).

- :mod:`.backbones`: the backbone registry (``vgg16``, ``alexnet``).
- :mod:`.base`: :class:`CrossViewModel`, the self-describing functional base class.
- :mod:`.cvm_net`: :class:`CVMNetI`, :class:`CVMNetII`; :mod:`.siamese`: :class:`SiameseBaseline`.
- :mod:`.registry`: :data:`MODELS`, :func:`build_model`, :func:`build_model_from_config`.
- :mod:`.encoders`: :func:`ground_encoder` / :func:`satellite_encoder` (one branch, same
  weights, network input), :func:`describe_model`, :func:`model_input_dtype`.

Importing this package registers the classes for ``.keras`` deserialisation.
"""
from cvmnet_tf.models import backbones
from cvmnet_tf.models.backbones import BACKBONE_NAMES, BACKBONES
from cvmnet_tf.models.base import CrossViewModel
from cvmnet_tf.models.cvm_net import CVMNetI, CVMNetII
from cvmnet_tf.models.encoders import (branch_encoder, describe_model, ground_encoder, model_input_dtype,
                                       satellite_encoder)
from cvmnet_tf.models.registry import (MODEL_NAMES, MODELS, ModelSpec, build_model, build_model_from_config,
                                       get_model_spec, model_arguments)
from cvmnet_tf.models.siamese import SiameseBaseline

__all__ = ["BACKBONES", "BACKBONE_NAMES", "MODELS", "MODEL_NAMES", "ModelSpec", "CrossViewModel", "CVMNetI",
           "CVMNetII", "SiameseBaseline", "backbones", "build_model", "build_model_from_config",
           "get_model_spec", "model_arguments", "cvm_net_i", "cvm_net_ii", "siamese", "branch_encoder",
           "ground_encoder", "satellite_encoder", "describe_model", "model_input_dtype"]


def cvm_net_i(*args, **kwargs):
    """:class:`CVMNetI` (the paper's defaults; see its arguments)."""
    return CVMNetI(*args, **kwargs)


def cvm_net_ii(*args, **kwargs):
    """:class:`CVMNetII` (the paper's defaults; see its arguments)."""
    return CVMNetII(*args, **kwargs)


def siamese(backbone="vgg16", **kwargs):
    """:class:`SiameseBaseline` with ``backbone``."""
    return SiameseBaseline(backbone=backbone, **kwargs)
