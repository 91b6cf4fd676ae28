"""A trained model in another compute precision, for descriptor extraction and localization
(``--mixed_precision`` of ``cvmnet-extract`` / ``cvmnet-localize``).

A checkpoint computes in the dtype policy it was trained under (its ``dtype`` config);
:func:`with_precision` rebuilds the same architecture under another policy
(:mod:`cvmnet_tf.utils.precision`: none = float32, fp16 = mixed_float16, bf16 =
mixed_bfloat16) and copies the float32 weights. The descriptors stay float32 (NetVLAD, the
FC and the l2 normalisation compute in float32 under every policy).
"""

from __future__ import annotations

from typing import Optional

__all__ = ["with_precision", "model_precision"]


def model_precision(model) -> str:
    """The precision name (none / fp16 / bf16) of the policy ``model`` was built under."""
    from cvmnet_tf.utils.precision import precision_name

    return precision_name(model.get_config().get("dtype") or "float32")


def with_precision(model, precision: Optional[str], flag: str = "--mixed_precision"):
    """``model`` itself when ``precision`` is None or its own, else the same network built
    under ``precision``'s Keras policy with the same weights (the global policy is left
    unchanged). ValueError naming ``flag`` for an unknown precision."""
    from cvmnet_tf.models.base import dtype_policy_scope
    from cvmnet_tf.utils.precision import policy_name, precision_name

    if precision is None:
        return model
    name = precision_name(precision, flag)
    if name == model_precision(model):
        return model
    config = dict(model.get_config(), dtype=policy_name(name))
    with dtype_policy_scope(policy_name(name)):
        other = type(model).from_config(config)
    other.set_weights(model.get_weights())
    return other
