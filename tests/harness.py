"""A small shared test harness for layers and models, in the spirit of keras-hub's
``TestCase.run_layer_test`` / ``run_model_saving_test``.

Each helper runs the standard checks every custom layer or model of the package must pass
and returns what the test needs for its own, specific assertions (NumPy references):

- :func:`run_layer_test`: call on ``inputs``; output shape and dtype; ``get_config`` ->
  ``from_config`` rebuilds a layer with the same config that, given the same weights,
  gives identical outputs; a ``.keras`` round trip (the layer inside a functional model)
  gives identical outputs; optionally the same layer built under ``mixed_float16`` keeps
  float32 variables and computes and returns ``precise_output_dtype``.
- :func:`run_model_saving_test`: ``.keras`` round trip of a two-branch model: the class
  and config come back (the file describes its architecture), identical outputs, the same
  unique weights, shared layers still shared (also through the branch encoders), and
  writes to a shared layer after loading reach both branches.

Everything uses ``keras.ops`` / NumPy only, so tests using the harness run under the
TensorFlow and the JAX backend (mark them ``backend_agnostic``).
"""
import os

import numpy as np

import keras
from keras import ops

__all__ = ["run_layer_test", "run_model_saving_test", "to_numpy"]


def to_numpy(x):
    """A backend tensor (or a dict of them) as float64 NumPy."""
    if isinstance(x, dict):
        return {k: to_numpy(v) for k, v in x.items()}
    return np.asarray(ops.convert_to_numpy(x), np.float64)


def _dtype(x):
    return keras.backend.standardize_dtype(x.dtype)


def run_layer_test(make_layer, inputs, tmp_path, *, expected_output_shape=None, expected_output_dtype="float32",
                   set_weights=None, mixed_precision=True, precise_output_dtype="float32"):
    """Standard checks of a layer (module docstring). Returns (layer, outputs as NumPy float64).

    Args:
      make_layer: () -> a new, unbuilt layer (called again for the config and precision checks).
      inputs: NumPy input batch (float32).
      expected_output_shape: full output shape, batch included (None: not checked).
      set_weights: optional fn(layer) called once built, e.g. random weights instead of
        the initialiser's.
      mixed_precision: also check the layer built under ``mixed_float16``.
      precise_output_dtype: the output dtype it must have under mixed precision
        ("float32" for layers that must not run in float16; "float16" for others).
    """
    layer = make_layer()
    out = layer(ops.convert_to_tensor(inputs))
    if set_weights is not None:
        set_weights(layer)
        out = layer(ops.convert_to_tensor(inputs))
    if expected_output_shape is not None:
        assert tuple(out.shape) == tuple(expected_output_shape), (tuple(out.shape), expected_output_shape)
    assert _dtype(out) == expected_output_dtype, _dtype(out)
    ref = to_numpy(out)

    # get_config -> from_config: same class, same config, same outputs with the same weights
    config = layer.get_config()
    clone = type(layer).from_config(config)
    clone(ops.convert_to_tensor(inputs))
    assert clone.get_config() == config
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(to_numpy(clone(ops.convert_to_tensor(inputs))), ref)

    # .keras round trip inside a functional model
    inp = keras.Input(shape=tuple(inputs.shape[1:]))
    model = keras.Model(inp, layer(inp))
    path = os.path.join(tmp_path, f"{layer.name}_round_trip.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    again = loaded.get_layer(layer.name)
    assert type(again) is type(layer) and again.get_config() == config
    np.testing.assert_array_equal(to_numpy(loaded(inputs)), ref)

    if mixed_precision:
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy("mixed_float16")
        try:
            mixed = make_layer()
            y = mixed(ops.convert_to_tensor(inputs.astype("float16")))
            assert all(_dtype(v) == "float32" for v in mixed.weights), [v.dtype for v in mixed.weights]
            assert _dtype(y) == precise_output_dtype, _dtype(y)
            assert np.isfinite(to_numpy(y)).all()
        finally:
            keras.config.set_dtype_policy(previous)
    return layer, ref


def run_model_saving_test(model, inputs, tmp_path, *, shared_layers=(), encoders=None):
    """``.keras`` round trip of a two-branch model (module docstring). Returns the loaded model.

    Args:
      model: a built two-branch model; inputs: its dict of NumPy inputs.
      shared_layers: names of layers that both branches call (must stay one layer).
      encoders: optional (ground_encoder, satellite_encoder) functions; the loaded model's
        branches must share the loaded model's layers.
    """
    out = to_numpy(model(inputs, training=False))
    path = os.path.join(tmp_path, f"{model.name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model), type(loaded)
    assert loaded.get_config() == model.get_config()
    again = to_numpy(loaded(inputs, training=False))
    for key in out:
        np.testing.assert_array_equal(again[key], out[key])
    assert len(loaded.weights) == len(model.weights)
    assert len({id(w) for w in loaded.weights}) == len(loaded.weights)
    assert loaded.count_params() == model.count_params()
    assert len(loaded.trainable_weights) == len(model.trainable_weights)
    for name in shared_layers:
        shared = loaded.get_layer(name)
        if encoders is not None:
            grd_enc, sat_enc = (make(loaded) for make in encoders)
            assert grd_enc.get_layer(name) is shared is sat_enc.get_layer(name)
            np.testing.assert_array_equal(to_numpy(grd_enc(inputs["ground"])), out["ground"])
        # changing the shared weights after loading changes both branches
        shared.set_weights([w * 0.5 + 0.01 for w in shared.get_weights()])
        changed = to_numpy(loaded(inputs, training=False))
        for key in out:
            assert np.abs(changed[key] - out[key]).max() > 1e-4, (name, key)
    return loaded
