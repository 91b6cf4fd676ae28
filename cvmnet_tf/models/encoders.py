"""One branch of a two-branch model, and what a model is (names, sizes, descriptor size).

:func:`ground_encoder` / :func:`satellite_encoder` cut one branch out of the model's graph:
a ``keras.Model`` over the same layer objects (weights shared, nothing copied). A branch
encoder always takes the network input (float, BGR minus the caffe means): for a model
built with ``input_dtype="uint8"`` it starts after the model's
:class:`~cvmnet_tf.layers.NetworkInput` layer, so serving, extraction and the georef
encoders feed every model alike. :func:`model_input_dtype` tells what a whole model takes.
"""
import keras

__all__ = ["ground_encoder", "satellite_encoder", "branch_encoder", "describe_model", "model_input_dtype",
           "BRANCH_KEYS"]

BRANCH_KEYS = ("satellite", "ground")


def model_input_dtype(model) -> str:
    """"uint8" when ``model`` takes RGB uint8 pixels (a model built with
    ``input_dtype="uint8"``: its first layers preprocess on the device), else "float32"
    (preprocessed input; models saved before ``input_dtype`` existed). The value to pass to
    ``make_pair_dataset(output_dtype=...)`` for training batches."""
    inputs = model.input if isinstance(model.input, dict) else {}
    dtypes = {keras.backend.standardize_dtype(x.dtype) for x in inputs.values()}
    return "uint8" if dtypes == {"uint8"} else "float32"


def _branch_io(model, key):
    from cvmnet_tf.models.base import NETWORK_INPUT_LAYERS

    try:
        inp = model.get_layer(key).output
    except ValueError as err:
        raise ValueError(f"model {model.name!r} has no input layer named {key!r}; expected a "
                         "model built by cvmnet_tf.models") from err
    if model_input_dtype(model) == "uint8":
        inp = model.get_layer(NETWORK_INPUT_LAYERS[key]).output
    out = model.output
    if not isinstance(out, dict) or key not in out:
        raise ValueError(f"model {model.name!r} has no dict output {key!r}; expected a model "
                         "built by cvmnet_tf.models")
    return inp, out[key]


def branch_encoder(model, key):
    """The ``key`` ("satellite" | "ground") branch of ``model``: network input (float, BGR
    minus means) ``(batch, H, W, 3) -> (batch, dim)``."""
    inp, out = _branch_io(model, key)
    return keras.Model(inp, out, name=f"{model.name}_{key}")


def ground_encoder(model):
    """The ground branch of ``model``: ``(batch, Hg, Wg, 3) -> (batch, dim)``."""
    return branch_encoder(model, "ground")


def satellite_encoder(model):
    """The satellite branch of ``model``: ``(batch, Hs, Ws, 3) -> (batch, dim)``."""
    return branch_encoder(model, "satellite")


def describe_model(model, source: str) -> dict:
    """``{"model", "satellite_size", "ground_size" ([height, width] pixels), "descriptor_dim"}``
    of a two-branch model, plus ``"architecture"`` (its constructor arguments) for a
    :class:`~cvmnet_tf.models.base.CrossViewModel`. ValueError naming ``source`` when
    ``model`` is not a two-branch model with fixed input sizes."""
    try:
        inputs = model.input if isinstance(model.input, dict) else None
        outputs = model.output if isinstance(model.output, dict) else None
    except (AttributeError, ValueError):  # e.g. a Sequential model that was never called
        inputs = outputs = None
    if not inputs or not outputs or set(inputs) != set(BRANCH_KEYS) or set(outputs) != set(BRANCH_KEYS):
        raise ValueError(
            f"{source}: model {model.name!r} is not a cvmnet_tf two-branch model (expected dict "
            "inputs and outputs 'satellite' and 'ground', as built by cvmnet_tf.models)")
    sat_shape = tuple(inputs["satellite"].shape[1:3])
    grd_shape = tuple(inputs["ground"].shape[1:3])
    if None in sat_shape or None in grd_shape:
        raise ValueError(f"{source}: model inputs need fixed sizes, got satellite {sat_shape}, "
                         f"ground {grd_shape}")
    dims = {k: outputs[k].shape[-1] for k in BRANCH_KEYS}
    if dims["satellite"] != dims["ground"]:
        raise ValueError(f"{source}: branch descriptor sizes differ: {dims}")
    info = {"model": model.name, "satellite_size": [int(v) for v in sat_shape],
            "ground_size": [int(v) for v in grd_shape], "descriptor_dim": int(dims["ground"])}
    if hasattr(model, "architecture_arguments"):
        info["architecture"] = dict(model.architecture_arguments)
    return info
