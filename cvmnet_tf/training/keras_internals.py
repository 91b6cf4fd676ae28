"""The Keras internals the training step and loop rely on, in ONE place.

Keras has no public API for these; they are the likeliest things to break on a Keras
upgrade, so nothing else in the package touches them, and
``tests/test_keras_internals.py`` checks each one against its documented behaviour (it
fails loudly, naming the attribute, when a Keras release changes them):

- :func:`adam_slots`: Adam's first / second moment variables of a model variable
  (``optimizer._momentums``, ``optimizer._velocities``, ``optimizer._get_variable_index``);
- :func:`current_learning_rate`: the learning rate at the optimizer's current iteration
  (``optimizer._get_current_learning_rate``, which evaluates schedules);
- :func:`backend_variable`: the TensorFlow variable under a Keras variable (``.value``);
- :func:`seed_generators`: the random-state generators of every layer (dropout), in
  layer order (``model._flatten_layers``, ``layer._seed_generators``).
"""

from __future__ import annotations

__all__ = ["adam_slots", "current_learning_rate", "backend_variable", "seed_generators", "check_keras_internals"]


def adam_slots(optimizer, variable):
    """(m, v): the Keras variables holding Adam's moments of ``variable`` (optimizer built)."""
    index = optimizer._get_variable_index(variable)
    return optimizer._momentums[index], optimizer._velocities[index]


def current_learning_rate(optimizer):
    """The learning rate (a scalar tensor) at ``optimizer.iterations`` (schedules evaluated)."""
    return optimizer._get_current_learning_rate()


def backend_variable(variable):
    """The backend (TensorFlow) variable of a Keras variable: what a GradientTape watches and
    whose ``.handle`` raw TensorFlow ops update."""
    return variable.value


def seed_generators(model):
    """Every ``keras.random.SeedGenerator`` of the layers of ``model`` (nested models
    included), in layer order: the state of dropout's randomness."""
    for layer in model._flatten_layers(include_self=False, recursive=True):
        yield from getattr(layer, "_seed_generators", [])


def check_keras_internals() -> None:
    """Raise RuntimeError naming what is missing when this Keras lacks an internal used here."""
    import keras

    missing = [name for name in ("_get_variable_index", "_get_current_learning_rate")
               if not hasattr(keras.optimizers.Adam, name)]
    if not hasattr(keras.layers.Layer, "_flatten_layers"):
        missing.append("Layer._flatten_layers")
    if missing:
        raise RuntimeError(f"Keras {keras.__version__} lacks {', '.join(missing)}: update "
                           "cvmnet_tf/training/keras_internals.py")
