"""The released TF1 CVM-Net checkpoints (``model.ckpt``) mapped onto the Keras models.

The released code (github david-husx/crossview_localisation) saves TF1 variables under
these names (confirmed by running the released graph under ``tf.compat.v1`` and listing
its checkpoint); every one of them must land in exactly one Keras weight:

==========================================================  ============================
TF1 variable                                                Keras weight
==========================================================  ============================
``VGG_grd/conv1_1/weights`` (3, 3, Cin, Cout, HWIO)         ``VGG_grd`` / ``conv1_1`` kernel
``VGG_grd/conv1_1/biases`` (Cout,)                          ``VGG_grd`` / ``conv1_1`` bias
(likewise conv1_2 .. conv5_3, and ``VGG_sat/...``)
``netvlad_{grd,sat}/cluster_weights`` (D, K)                ``netvlad_{grd,sat}`` cluster_weights
``netvlad_{grd,sat}/cluster_biases`` (K,)                   ``netvlad_{grd,sat}`` cluster_biases
``netvlad_{grd,sat}/cluster_weights2`` (1, D, K)            ``netvlad_{grd,sat}`` cluster_weights2 (D, K)
``dim_reduction/fc1/{weights,biases}`` (D*K, dim), (dim,)   ``dim_reduction`` kernel / bias   (CVM-Net-I)
``transformation_trans/{sat,grd}_trans_conv1/...``          ``{sat,grd}_trans_conv1``         (CVM-Net-II)
``transformation_trans_shared/trans_conv{1,2}/...``         ``trans_conv{1,2}``               (CVM-Net-II)
``netvlad/{cluster_weights,cluster_biases,cluster_weights2,hidden1_weights}``
                                                            ``netvlad`` (shared)              (CVM-Net-II)
==========================================================  ============================

Ignored: Adam slots (``<name>/Adam``, ``<name>/Adam_1``), ``beta1_power``,
``beta2_power`` and the global step ``Variable``. Any other unknown variable, a missing
variable or a shape mismatch is an error that lists them all (no output is written).
``--num_clusters`` and ``--descriptor_dim`` default to the values the checkpoint's shapes
imply; the image sizes do not affect the weights (defaults: the paper's 512x512 / 224x1232).
The flattened VLAD order of the released code (index d*K + k) is the one
:class:`cvmnet_tf.layers.NetVLAD` uses, so the FC / hidden weights are copied unchanged.
"""

from __future__ import annotations

import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from cvmnet_tf.models.backbones.vgg16 import VGG16_CONV_NAMES
from cvmnet_tf.utils import atomic_io

SUPPORTED_MODELS = ("cvm_net_i", "cvm_net_ii")
# the released code has VGG16 branches only
VGG_CONVS = VGG16_CONV_NAMES
_IGNORED = re.compile(r"(.*/Adam(_\d+)?$)|(^beta[12]_power(_\d+)?$)|(^Variable(_\d+)?$)|(^global_step$)")


class ConversionError(ValueError):
    """The TF1 checkpoint does not match the requested Keras model."""


def is_ignored(name: str) -> bool:
    """True for optimizer slots, Adam's beta powers and the global step (not model weights)."""
    return bool(_IGNORED.match(name))


def variable_map(model_name: str) -> Dict[str, Tuple[Tuple[str, ...], str]]:
    """TF1 variable name -> (Keras layer path, weight attribute) for ``model_name``.

    The layer path is a tuple of nested layer names (e.g. ``("VGG_grd", "conv1_1")``),
    the attribute one of ``kernel``, ``bias``, ``cluster_weights``, ``cluster_biases``,
    ``cluster_weights2``, ``hidden1_weights``.
    """
    if model_name not in SUPPORTED_MODELS:
        raise ConversionError(f"--model={model_name!r}: the released TF1 code only has "
                              f"{', '.join(SUPPORTED_MODELS)}")
    mapping: Dict[str, Tuple[Tuple[str, ...], str]] = {}
    for branch in ("VGG_grd", "VGG_sat"):
        for conv in VGG_CONVS:
            mapping[f"{branch}/{conv}/weights"] = ((branch, conv), "kernel")
            mapping[f"{branch}/{conv}/biases"] = ((branch, conv), "bias")
    vlad_vars = ("cluster_weights", "cluster_biases", "cluster_weights2")
    if model_name == "cvm_net_i":
        for scope in ("netvlad_grd", "netvlad_sat"):
            for var in vlad_vars:
                mapping[f"{scope}/{var}"] = ((scope,), var)
        mapping["dim_reduction/fc1/weights"] = (("dim_reduction",), "kernel")
        mapping["dim_reduction/fc1/biases"] = (("dim_reduction",), "bias")
    else:
        convs = {"transformation_trans/sat_trans_conv1": "sat_trans_conv1",
                 "transformation_trans/grd_trans_conv1": "grd_trans_conv1",
                 "transformation_trans_shared/trans_conv1": "trans_conv1",
                 "transformation_trans_shared/trans_conv2": "trans_conv2"}
        for scope, layer in convs.items():
            mapping[f"{scope}/weights"] = ((layer,), "kernel")
            mapping[f"{scope}/biases"] = ((layer,), "bias")
        for var in vlad_vars + ("hidden1_weights",):
            mapping[f"netvlad/{var}"] = (("netvlad",), var)
    return mapping


def read_tf1_checkpoint(path: str) -> Tuple[Dict[str, Tuple[int, ...]], object]:
    """Open a TF1 checkpoint (prefix such as ``model.ckpt``, or its folder).

    Returns ``(shapes, reader)``: variable name -> shape, and the
    ``tf.train.load_checkpoint`` reader (``reader.get_tensor(name)``).
    """
    prefix = path
    if not os.path.isdir(path) and not os.path.exists(prefix + ".index"):
        raise ConversionError(f"--tf1_checkpoint={path!r}: no TF1 checkpoint there ({prefix}.index "
                              "not found); pass the prefix, e.g. .../model.ckpt")
    import tensorflow as tf

    if os.path.isdir(path):
        prefix = tf.train.latest_checkpoint(path)
        if prefix is None:
            raise ConversionError(f"--tf1_checkpoint={path!r}: folder holds no TF1 checkpoint "
                                  "('checkpoint' index file missing); pass the model.ckpt prefix")
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as exc:  # noqa: BLE001 - re-raised with the file name
        raise ConversionError(f"--tf1_checkpoint={path!r}: cannot read it as a TF1 checkpoint: {exc}") from exc
    shapes = {name: tuple(int(s) for s in shape)
              for name, shape in reader.get_variable_to_shape_map().items()}
    return shapes, reader


def infer_sizes(model_name: str, shapes: Dict[str, Tuple[int, ...]]) -> Dict[str, int]:
    """``num_clusters`` and ``descriptor_dim`` implied by the checkpoint's shapes (or {})."""
    out = {}
    vlad = "netvlad_grd" if model_name == "cvm_net_i" else "netvlad"
    if f"{vlad}/cluster_biases" in shapes and len(shapes[f"{vlad}/cluster_biases"]) == 1:
        out["num_clusters"] = shapes[f"{vlad}/cluster_biases"][0]
    key = "dim_reduction/fc1/biases" if model_name == "cvm_net_i" else "netvlad/hidden1_weights"
    if key in shapes and len(shapes[key]) >= 1:
        out["descriptor_dim"] = shapes[key][-1]
    return out


def _keras_weight(model, layer_path: Sequence[str], attr: str):
    layer = model
    for name in layer_path:
        layer = layer.get_layer(name)
    return getattr(layer, attr)


def assign_tf1_weights(model, model_name: str, shapes: Dict[str, Tuple[int, ...]], get_tensor,
                       allow_unused: bool = False) -> List[str]:
    """Copy every TF1 variable of ``model_name`` into the built Keras ``model``.

    Args:
      model: a :func:`cvmnet_tf.models.build_model` model of ``model_name``.
      shapes: TF1 name -> shape (all variables of the checkpoint).
      get_tensor: callable name -> np.ndarray.
      allow_unused: tolerate unknown (non-optimizer) variables in the checkpoint.

    Returns the list of TF1 names that were copied. Raises :class:`ConversionError`
    listing every missing, unexpected or mismatched variable before changing anything.
    """
    mapping = variable_map(model_name)
    missing = sorted(n for n in mapping if n not in shapes)
    unused = sorted(n for n in shapes if n not in mapping and not is_ignored(n))
    mismatched, plan = [], []
    for name, (layer_path, attr) in mapping.items():
        if name not in shapes:
            continue
        try:
            var = _keras_weight(model, layer_path, attr)
        except (ValueError, AttributeError) as exc:
            raise ConversionError(f"the Keras model {model.name!r} has no weight "
                                  f"{'/'.join(layer_path)}.{attr} for {name}: {exc}") from exc
        target = tuple(int(s) for s in var.shape)
        source = shapes[name]
        # cluster_weights2 is (1, D, K) in TF1, (D, K) in Keras: equal element layout.
        if source != target and not (attr == "cluster_weights2" and source == (1,) + target):
            mismatched.append(f"{name}: checkpoint {source} vs Keras {'/'.join(layer_path)}.{attr} {target}")
        plan.append((name, var, target))
    problems = []
    if missing:
        problems.append(f"{len(missing)} variable(s) missing from the checkpoint: {', '.join(missing)}")
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es): " + "; ".join(mismatched))
    if unused and not allow_unused:
        problems.append(f"{len(unused)} checkpoint variable(s) not used by {model_name} "
                        f"(another model? pass --allow_unused to ignore): {', '.join(unused)}")
    if problems:
        hint = ""
        if mismatched:
            hint = (" Check --model, --num_clusters and --descriptor_dim "
                    f"(the checkpoint implies {infer_sizes(model_name, shapes) or 'nothing'}).")
        raise ConversionError(f"cannot convert the TF1 checkpoint into {model_name}: "
                              + " | ".join(problems) + hint)
    for name, var, target in plan:
        value = np.asarray(get_tensor(name), dtype=np.float32).reshape(target)
        var.assign(value.astype(var.dtype))
    return [name for name, _, _ in plan]


def convert(checkpoint: str, model_name: str, output: Optional[str] = None, *,
            satellite_size=(512, 512), ground_size=(224, 1232), num_clusters: Optional[int] = None,
            descriptor_dim: Optional[int] = None, normalize_output: bool = True,
            allow_unused: bool = False):
    """Build ``model_name`` (random init), load the TF1 ``checkpoint`` into it and
    (optionally) save it atomically to ``output`` (must end in ``.keras``).

    Sizes are (height, width) in pixels. ``num_clusters`` / ``descriptor_dim`` default to
    what the checkpoint implies. Returns the Keras model.
    """
    if output is not None and not output.endswith(".keras"):
        raise ConversionError(f"--output={output!r} must end in .keras")
    if model_name not in SUPPORTED_MODELS:
        raise ConversionError(f"--model={model_name!r}: the released TF1 code only has "
                              f"{', '.join(SUPPORTED_MODELS)}")
    shapes, reader = read_tf1_checkpoint(checkpoint)
    from cvmnet_tf import models

    implied = infer_sizes(model_name, shapes)
    model = models.build_model_from_config({
        "model": model_name, "satellite_size": satellite_size, "ground_size": ground_size,
        "num_clusters": int(num_clusters or implied.get("num_clusters", 64)),
        "descriptor_dim": int(descriptor_dim or implied.get("descriptor_dim", 4096)),
        "normalize_output": bool(normalize_output)})
    assign_tf1_weights(model, model_name, shapes, reader.get_tensor, allow_unused=allow_unused)
    if output is not None:
        save_keras_atomic(model, output)
    return model


def save_keras_atomic(model, output: str) -> None:
    """``model.save(output)`` through a temporary ``.keras`` name and a rename."""
    with atomic_io.atomic_path(output, suffix=".keras") as tmp:
        model.save(tmp)
