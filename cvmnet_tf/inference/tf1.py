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


# ------------------------------------------------------------------ released bundle: init models, trained models
def is_tf1_checkpoint(path) -> bool:
    """True when ``path`` names a TF1 checkpoint: a prefix with ``<prefix>.index`` beside
    it (``.../model.ckpt``), that ``.index`` file itself, or a folder whose ``checkpoint``
    index file points to one (what ``--weights`` and ``--released_model`` accept)."""
    if not isinstance(path, str) or path in ("imagenet", "none", ""):
        return False
    if path.endswith(".index") and os.path.isfile(path):
        return True
    if os.path.isfile(path + ".index"):
        return True
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "checkpoint"))


def _prefix(path: str) -> str:
    return path[:-len(".index")] if path.endswith(".index") and os.path.isfile(path) else path


def backbone_variable_map(model) -> Dict[str, Tuple[Tuple[str, ...], str]]:
    """TF1 variable -> (Keras layer path, attribute) of the VGG16 convs of both branches
    (``VGG_grd/conv1_1/weights`` ... ``VGG_sat/conv5_3/biases``) for any model of this
    package whose backbone is vgg16 at width 1.0 (CVM-Net-I/II, siamese_vgg)."""
    mapping = {}
    for branch in ("VGG_grd", "VGG_sat"):
        for conv in VGG_CONVS:
            mapping[f"{branch}/{conv}/weights"] = ((branch, conv), "kernel")
            mapping[f"{branch}/{conv}/biases"] = ((branch, conv), "bias")
    return mapping


def load_released_backbones(model, path: str) -> List[str]:
    """Copy the VGG16 weights of a released TF1 checkpoint into ``model``'s two backbones.

    The released bundle's ``init`` models (the released README: "The VGG16 part is
    initialised by the online model and other parts are initialised randomly"; the
    training script restores them from ``Model/<network>/0/model.ckpt``) hold ImageNet
    VGG16 weights under ``VGG_grd/conv*/{weights,biases}`` and ``VGG_sat/...``; a trained
    model works too (its fine-tuned VGG16). Only the 52 VGG variables are read (NetVLAD,
    FC and optimizer variables are ignored: those parts keep this package's random
    initialisation, as the released ones were random). Raises :class:`ConversionError`
    listing every missing or mis-shaped variable (nothing is assigned then), and when the
    model has no vgg16 backbone at full width.
    """
    shapes, reader = read_tf1_checkpoint(_prefix(path))
    mapping = backbone_variable_map(model)
    plan, missing, mismatched = [], [], []
    for name, (layer_path, attr) in mapping.items():
        try:
            var = _keras_weight(model, layer_path, attr)
        except (ValueError, AttributeError):
            raise ConversionError(f"--weights={path!r}: the released checkpoint holds VGG16 weights; the model "
                                  f"{model.name!r} has no VGG16 layer {'/'.join(layer_path)} (use --backbone vgg16 "
                                  "and --width 1.0)") from None
        target = tuple(int(s) for s in var.shape)
        if name not in shapes:
            missing.append(name)
        elif shapes[name] != target:
            mismatched.append(f"{name}: checkpoint {shapes[name]} vs model {target}")
        else:
            plan.append((name, var))
    if missing or mismatched:
        problems = ([f"{len(missing)} VGG16 variable(s) missing: {', '.join(missing)}"] if missing else []) + \
                   ([f"{len(mismatched)} shape mismatch(es): {'; '.join(mismatched)}"] if mismatched else [])
        raise ConversionError(f"--weights={path!r} is not a released CVM-Net checkpoint with VGG16 weights: "
                              + " | ".join(problems))
    for name, var in plan:
        var.assign(np.asarray(reader.get_tensor(name), np.float32).astype(var.dtype))
    return [name for name, _ in plan]


def infer_model_name(shapes: Dict[str, Tuple[int, ...]]) -> Optional[str]:
    """"cvm_net_i" / "cvm_net_ii" from a checkpoint's variable names, None if neither."""
    if "netvlad_grd/cluster_weights" in shapes and "dim_reduction/fc1/weights" in shapes:
        return "cvm_net_i"
    if "netvlad/hidden1_weights" in shapes:
        return "cvm_net_ii"
    return None


def find_tf1_checkpoints(root: str) -> List[str]:
    """Every TF1 checkpoint prefix (``<prefix>.index`` with its data file) under ``root``
    (a prefix or its ``.index`` file itself: [that prefix]), sorted."""
    if is_tf1_checkpoint(root) and not os.path.isdir(root):
        return [_prefix(root)]
    found = []
    for folder, _, files in os.walk(root):
        for f in files:
            if f.endswith(".index") and any(g.startswith(f[:-len(".index")] + ".data-") for g in files):
                found.append(os.path.join(folder, f[:-len(".index")]))
    return sorted(found)
