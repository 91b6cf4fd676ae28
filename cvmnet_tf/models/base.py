"""The base class of the two-branch models: a functional ``keras.Model`` that describes itself.

Following keras-hub's pattern (``keras_hub.models.Backbone``): a subclass builds its
functional graph in ``__init__`` from plain constructor arguments and passes inputs and
outputs to ``keras.Model.__init__``; ``get_config`` returns exactly those arguments and
``from_config`` calls the constructor again. A saved ``.keras`` file therefore records the
architecture (model, backbone, sizes, K, descriptor size, width, ...) and loading rebuilds
the same graph, so shared layers stay shared and no side file is needed to guess sizes.
The dtype policy the model was built under (e.g. ``mixed_float16``) is part of the config.

Inputs ``{"satellite": (batch, Hs, Ws, 3), "ground": (batch, Hg, Wg, 3)}`` (preprocessed:
BGR, caffe means subtracted, float32); outputs ``{"satellite": (batch, dim), "ground":
(batch, dim)}`` float32 descriptors.
"""
import contextlib

import keras

from cvmnet_tf.models import backbones

__all__ = ["CrossViewModel", "dtype_policy_scope", "check_model_args", "model_inputs", "branch_backbones",
           "satellite_view", "default_polar_size", "resolve_polar_size", "BLACK_NETWORK_INPUT"]

#: The network input of a black pixel: BGR 0 minus the caffe means (B, G, R) of
#: :data:`cvmnet_tf.data.preprocessing.CAFFE_BGR_MEAN` (a test checks they agree; the models
#: are keras.ops only and do not import the TensorFlow preprocessing).
BLACK_NETWORK_INPUT = (-103.939, -116.779, -123.6)


@contextlib.contextmanager
def dtype_policy_scope(policy):
    """Build layers under the Keras dtype ``policy`` (a name such as "mixed_float16"); None
    keeps the current global policy. The previous global policy is restored on exit."""
    if policy is None:
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def check_model_args(satellite_shape, ground_shape, descriptor_dim, dropout_rate, fn):
    """ValueError naming ``fn`` and the argument for bad sizes, descriptor size or dropout."""
    for arg, shape in (("satellite_shape", satellite_shape), ("ground_shape", ground_shape)):
        if len(tuple(shape)) != 2 or any(s is not None and int(s) < 1 for s in shape):
            raise ValueError(f"{fn}: {arg} must be (height, width) in pixels, got {shape!r}")
    if isinstance(descriptor_dim, bool) or not isinstance(descriptor_dim, int) or descriptor_dim < 1:
        raise ValueError(f"{fn}: descriptor_dim must be a positive int, got {descriptor_dim!r}")
    if not 0.0 <= float(dropout_rate) < 1.0:
        raise ValueError(f"{fn}: dropout_rate must be in [0, 1), got {dropout_rate!r}")


def model_inputs(satellite_shape, ground_shape):
    """The two named ``keras.Input`` s: "satellite" (Hs, Ws, 3) and "ground" (Hg, Wg, 3)."""
    satellite = keras.Input(shape=tuple(satellite_shape) + (3,), name="satellite")
    ground = keras.Input(shape=tuple(ground_shape) + (3,), name="ground")
    return satellite, ground


def branch_backbones(backbone, satellite_shape, ground_shape, weights, dropout_rate, width=1.0,
                     freeze_early_layers=True, init="released"):
    """(satellite backbone, ground backbone): unshared weights, as the released code.
    ``satellite_shape``: (H, W) of the image the satellite backbone sees (the polar image
    with ``polar_satellite``)."""
    kwargs = dict(weights=weights, dropout_rate=dropout_rate, width=width,
                  freeze_early_layers=freeze_early_layers, init=init)
    grd = backbones.build_backbone(backbone, tuple(ground_shape) + (3,), branch="grd", **kwargs)
    sat = backbones.build_backbone(backbone, tuple(satellite_shape) + (3,), branch="sat", **kwargs)
    return sat, grd


def default_polar_size(satellite_shape):
    """(S/2, 2S) for an S x S satellite image: one polar row per pixel of radius and as many
    pixels as the tile (cpu_demo: 64 -> 32 x 128, the panorama's size). It depends on the
    satellite size only, never on the ground image (which may be a limited field-of-view crop)."""
    s = int(satellite_shape[0])
    return (max(1, s // 2), 2 * s)


def satellite_view(satellite, satellite_shape, polar_satellite, polar_size, fn):
    """What the satellite backbone sees: ``(tensor, (H, W))``.

    ``polar_satellite=False``: the input itself. True: SAFA's polar transform of the (square)
    tile (:class:`cvmnet_tf.layers.PolarTransform`, layer ``polar_sat``) to ``polar_size``
    (H, W) pixels, black outside the tile; column 0 looks south, W/2 north, as a
    north-centred panorama. The transform is a layer of the satellite branch, so training,
    evaluation, the branch encoders and an exported SavedModel run the same sampling.
    """
    if not polar_satellite:
        return satellite, tuple(satellite_shape)
    from cvmnet_tf.layers import PolarTransform

    if satellite_shape[0] is None or satellite_shape[0] != satellite_shape[1]:
        raise ValueError(f"{fn}: polar_satellite needs a square satellite_shape, got {satellite_shape!r}")
    size = tuple(int(v) for v in polar_size)
    view = PolarTransform(size, fill_value=BLACK_NETWORK_INPUT, name="polar_sat")(satellite)
    return view, size


def resolve_polar_size(satellite_shape, polar_satellite, polar_size, fn):
    """The polar image size a model records: None without ``polar_satellite``, else
    ``polar_size`` checked ((H, W), each >= 1) or :func:`default_polar_size`."""
    if not polar_satellite:
        if polar_size is not None:
            raise ValueError(f"{fn}: polar_size={polar_size!r} needs polar_satellite=True")
        return None
    if polar_size is None:
        return default_polar_size(satellite_shape)
    size = tuple(polar_size)
    if len(size) != 2 or any(int(v) < 1 for v in size):
        raise ValueError(f"{fn}: polar_size must be (height, width) in pixels, got {polar_size!r}")
    return tuple(int(v) for v in size)


class CrossViewModel(keras.Model):
    """A two-branch model whose config is its constructor arguments (module docstring).

    Subclasses build ``outputs`` from ``model_inputs(...)`` inside ``__init__`` (under
    :func:`dtype_policy_scope` of their ``dtype`` argument) and end with
    ``self._finish_init(inputs, outputs, name, dtype, arguments, **kwargs)``, where
    ``arguments`` are the constructor arguments that define the network (``weights`` is
    never one: a loaded model's weights come from the file).
    """

    #: The name of the architecture in :data:`cvmnet_tf.models.MODELS`.
    architecture = None

    def _finish_init(self, inputs, outputs, name, dtype, arguments, **kwargs):
        policy = keras.config.dtype_policy().name if dtype is None else str(dtype)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.architecture_arguments = tuple(sorted(_jsonable(arguments).items()))
        self.build_dtype_policy = policy

    def get_config(self):
        # Not chained to super(): a functional model's own config is a layer graph, which
        # these constructors do not take.
        config = dict(self.architecture_arguments)
        config.update(name=self.name, trainable=self.trainable, dtype=self.build_dtype_policy)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _jsonable(arguments):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in arguments.items()}
