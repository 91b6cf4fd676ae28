"""The Keras internals the training code uses (cvmnet_tf.training.keras_internals): each one
checked against its meaning, so that a Keras upgrade that changes them fails here, loudly."""
import numpy as np

import keras
import pytest

from cvmnet_tf.training import keras_internals as ki


def _model():
    inp = keras.Input((4,))
    x = keras.layers.Dense(3, name="a")(inp)
    x = keras.layers.Dropout(0.5, name="d1")(x)
    inner = keras.Sequential([keras.layers.Dense(2, name="b"), keras.layers.Dropout(0.3, name="d2")], name="inner")
    return keras.Model(inp, inner(x))


def test_this_keras_has_the_internals():
    ki.check_keras_internals()


def test_adam_slots_hold_the_moments():
    model = _model()
    opt = keras.optimizers.Adam(learning_rate=0.1, beta_1=0.9, beta_2=0.999)
    opt.build(model.trainable_variables)
    grads = [keras.ops.ones(v.shape) * (i + 1) for i, v in enumerate(model.trainable_variables)]
    opt.apply(grads, model.trainable_variables)
    for i, var in enumerate(model.trainable_variables):
        m, v = ki.adam_slots(opt, var)
        assert tuple(m.shape) == tuple(var.shape) == tuple(v.shape)
        np.testing.assert_allclose(np.asarray(m), 0.1 * (i + 1), rtol=1e-6)           # (1 - b1) g
        np.testing.assert_allclose(np.asarray(v), 0.001 * (i + 1) ** 2, rtol=1e-5)     # (1 - b2) g^2


def test_current_learning_rate_follows_the_schedule():
    schedule = keras.optimizers.schedules.ExponentialDecay(1.0, decay_steps=1, decay_rate=0.5)
    opt = keras.optimizers.Adam(learning_rate=schedule)
    var = keras.Variable(np.zeros(2, np.float32))
    opt.build([var])
    assert float(ki.current_learning_rate(opt)) == pytest.approx(1.0)
    opt.apply([keras.ops.ones(2)], [var])
    opt.apply([keras.ops.ones(2)], [var])
    assert float(ki.current_learning_rate(opt)) == pytest.approx(0.25)


def test_seed_generators_of_nested_dropouts_in_order():
    model = _model()
    gens = list(ki.seed_generators(model))
    dropouts = [model.get_layer("d1"), model.get_layer("inner").get_layer("d2")]
    assert len(gens) == 2
    for gen, layer in zip(gens, dropouts):
        assert gen is layer.seed_generator


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow variables")
def test_backend_variable_is_the_tensorflow_variable():
    import tensorflow as tf

    var = keras.Variable(np.ones(3, np.float32))
    tfv = ki.backend_variable(var)
    assert isinstance(tfv, tf.Variable) and tfv.handle is not None
    tfv.assign([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(np.asarray(var), [1.0, 2.0, 3.0])
