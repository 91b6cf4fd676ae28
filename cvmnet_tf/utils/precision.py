"""The compute precisions of training and descriptor extraction (one registry).

``--mixed_precision`` takes one of :data:`PRECISIONS`:

- ``none``: float32 everywhere (the default; also spelled ``off``, ``fp32``, ``float32``,
  ``false``: ``--nomixed_precision`` of older flags files);
- ``fp16``: Keras' ``mixed_float16`` policy with dynamic loss scaling (float16 compute,
  float32 variables; what ``--mixed_precision`` meant before it took a value, so a bare
  ``--mixed_precision`` and ``mixed_precision: true`` in a run's saved flags still mean it);
- ``bf16``: Keras' ``mixed_bfloat16`` policy, no loss scaling (bfloat16 has float32's
  exponent range, so gradients do not underflow): the choice on Ampere/Hopper GPUs and on
  CPUs with AMX or AVX512_BF16.

Under either mixed policy the variables stay float32, and NetVLAD's softmax and norms, the
l2 normalisations and every loss compute in float32 (:func:`cvmnet_tf.layers.precise_dtype`).

This module needs neither TensorFlow nor Keras (names only; :func:`cpu_bf16_support` reads
``/proc/cpuinfo``).
"""

from __future__ import annotations

import dataclasses
from typing import Optional

__all__ = ["Precision", "PRECISIONS", "PRECISION_NAMES", "precision_name", "get_precision", "policy_name",
           "uses_loss_scaling", "cpu_flags", "cpu_bf16_support"]


@dataclasses.dataclass(frozen=True)
class Precision:
    """One entry of :data:`PRECISIONS`: the Keras dtype policy and whether the optimizer
    scales the loss (``keras.optimizers.LossScaleOptimizer``)."""

    name: str
    policy: str
    loss_scaling: bool
    description: str


PRECISIONS = {
    "none": Precision("none", "float32", False, "float32 everywhere"),
    "fp16": Precision("fp16", "mixed_float16", True, "mixed_float16 with dynamic loss scaling"),
    "bf16": Precision("bf16", "mixed_bfloat16", False, "mixed_bfloat16, no loss scaling"),
}
PRECISION_NAMES = tuple(PRECISIONS)

#: Other spellings (lower case) -> the canonical name; True / False are the boolean flag of
#: older versions (``--mixed_precision`` / ``--nomixed_precision``).
_ALIASES = {"off": "none", "fp32": "none", "float32": "none", "false": "none", "no": "none", "0": "none",
            "true": "fp16", "yes": "fp16", "on": "fp16", "1": "fp16", "float16": "fp16", "mixed_float16": "fp16",
            "bfloat16": "bf16", "mixed_bfloat16": "bf16"}


def precision_name(value, flag: str = "--mixed_precision") -> str:
    """The canonical name (``none`` / ``fp16`` / ``bf16``) of ``value``: a name, an alias
    (module docstring), a bool or None (= ``none``). ValueError naming ``flag`` otherwise."""
    if value is None or value is False:
        return "none"
    if value is True:
        return "fp16"
    text = str(value).strip().lower()
    if text in PRECISIONS:
        return text
    if text in _ALIASES:
        return _ALIASES[text]
    raise ValueError(f"{flag}={value!r} is unknown; choose one of {', '.join(PRECISION_NAMES)} (none: float32; "
                     "fp16: mixed_float16 with loss scaling; bf16: mixed_bfloat16)")


def get_precision(value, flag: str = "--mixed_precision") -> Precision:
    """The :class:`Precision` of ``value`` (:func:`precision_name`)."""
    return PRECISIONS[precision_name(value, flag)]


def policy_name(value) -> str:
    """The Keras dtype policy name of ``value`` ("float32", "mixed_float16", "mixed_bfloat16")."""
    return get_precision(value).policy


def uses_loss_scaling(value) -> bool:
    """True for fp16 only (the optimizer is wrapped in a LossScaleOptimizer)."""
    return get_precision(value).loss_scaling


def cpu_flags(path: str = "/proc/cpuinfo") -> set:
    """The ``flags`` of the first CPU in ``path`` (empty when unreadable, e.g. not Linux)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_bf16_support(flags: Optional[set] = None) -> list:
    """The CPU features that run bfloat16 matrix products natively, of ``amx_bf16`` and
    ``avx512_bf16`` (``flags``: default :func:`cpu_flags`); empty: bf16 is emulated
    (slower than float32 on such a CPU)."""
    flags = cpu_flags() if flags is None else flags
    return [f for f in ("amx_bf16", "avx512_bf16") if f in flags]
