"""The fingerprint of a trained model: what it computes, not how it was named or stored.

``model_fingerprint(model)`` is the SHA-256 (hex) of

- the architecture: the registry name of the model class and its constructor arguments
  (:attr:`cvmnet_tf.models.base.CrossViewModel.architecture_arguments`: backbone, input
  sizes, K, descriptor size, width, ...) and the dtype policy it computes in;
- every weight: shape, dtype and bytes, in ``model.weights`` order (fixed by the
  architecture).

Layer and variable names (``dense_3``, ``VGG_grd_1``: Keras numbers them per process) and
the file the model came from are not part of it, so two identical models hash alike (a
model rebuilt from its config and given the same weights, a checkpoint and its ``.keras``
copy, a checkpoint and its SavedModel export, which stores the fingerprint in
``cvmnet_export.json``), and any change of a weight or of the architecture changes it.
Tile indexes (:mod:`cvmnet_tf.georef.index`) record it and refuse another model.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

__all__ = ["model_fingerprint", "architecture_description"]


def architecture_description(model) -> dict:
    """``{"architecture", "arguments", "dtype_policy"}`` of a two-branch model (JSON-able)."""
    arguments = getattr(model, "architecture_arguments", None)
    if arguments is None:  # not a CrossViewModel: fall back to the Keras config minus names
        config = dict(model.get_config())
        config.pop("name", None)
        arguments = sorted(config.items())
    return {"architecture": getattr(type(model), "architecture", None) or type(model).__name__,
            "arguments": [[k, v] for k, v in arguments],
            "dtype_policy": getattr(model, "build_dtype_policy", None)}


def model_fingerprint(model) -> str:
    """SHA-256 (64 hex digits) of the architecture and the weights (module docstring)."""
    h = hashlib.sha256()
    h.update(json.dumps(architecture_description(model), sort_keys=True, default=str).encode())
    for w in model.weights:
        a = np.ascontiguousarray(np.asarray(w))
        h.update(f"{a.shape}|{a.dtype.str}|".encode())
        h.update(a.tobytes())
    return h.hexdigest()
