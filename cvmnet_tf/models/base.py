"""The base class of the two-branch models: a functional ``keras.Model`` that describes itself.

Following keras-hub's pattern (``keras_hub.models.Backbone``): a subclass builds its
functional graph in ``__init__`` from plain constructor arguments and passes inputs and
outputs to ``keras.Model.__init__``; ``get_config`` returns exactly those arguments and
``from_config`` calls the constructor again. A saved ``.keras`` file therefore records the
architecture (model, backbone, sizes, K, descriptor size, width, ...) and loading rebuilds
the same graph, so shared layers stay shared and no side file is needed to guess sizes.
The dtype policy the model was built under (e.g. ``mixed_float16``) is part of the config.

Inputs ``{"satellite": (batch, Hs, Ws, 3), "ground": (batch, Hg, Wg, 3)}``; outputs
``{"satellite": (batch, dim), "ground": (batch, dim)}`` float32 descriptors. What the inputs
hold is the model's ``input_dtype`` (:data:`INPUT_DTYPES`):

- ``"uint8"`` (the default of new models): RGB pixels 0..255; the model's first layers
  (:class:`cvmnet_tf.layers.NetworkInput`, ``network_input_sat`` / ``network_input_grd``)
  do the BGR swap, float cast and caffe mean subtraction on the device. Called with float
  inputs, such a model takes them as already preprocessed (BGR minus means) and skips
  those layers (:meth:`CrossViewModel.call`), so the evaluation pipelines and the branch
  encoders (float network input) give the same descriptors for every model.
- ``"float32"``: preprocessed inputs (BGR minus the caffe means, float32), no such layer:
  the contract of models saved before ``input_dtype`` existed. A ``.keras`` file without
  ``input_dtype`` in its config loads as this; the argument is recorded only when it is
  "uint8", so such a model's config and fingerprint are those it always had.

Pick the matching pipeline with :func:`cvmnet_tf.models.model_input_dtype`
(``make_pair_dataset(output_dtype=...)``).
"""
import contextlib
import warnings

import keras

from cvmnet_tf.models import backbones

__all__ = ["CrossViewModel", "dtype_policy_scope", "check_model_args", "model_inputs", "network_input",
           "input_dtype_argument", "branch_backbones", "satellite_view", "default_polar_size", "resolve_polar_size",
           "BLACK_NETWORK_INPUT", "INPUT_DTYPES", "NETWORK_INPUT_LAYERS"]

#: Values of the models' ``input_dtype`` argument (module docstring).
INPUT_DTYPES = ("uint8", "float32")
#: The :class:`~cvmnet_tf.layers.NetworkInput` layer of each input of a "uint8" model.
NETWORK_INPUT_LAYERS = {"satellite": "network_input_sat", "ground": "network_input_grd"}

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


def model_inputs(satellite_shape, ground_shape, input_dtype="float32"):
    """The two named ``keras.Input`` s: "satellite" (Hs, Ws, 3) and "ground" (Hg, Wg, 3), of
    ``input_dtype`` (:data:`INPUT_DTYPES`; "float32" builds the float inputs of the current
    float policy)."""
    dtype = "uint8" if input_dtype == "uint8" else None
    satellite = keras.Input(shape=tuple(satellite_shape) + (3,), name="satellite", dtype=dtype)
    ground = keras.Input(shape=tuple(ground_shape) + (3,), name="ground", dtype=dtype)
    return satellite, ground


def input_dtype_argument(input_dtype, fn):
    """``input_dtype`` checked against :data:`INPUT_DTYPES` (ValueError naming ``fn``)."""
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"{fn}: input_dtype must be one of {INPUT_DTYPES}, got {input_dtype!r}")
    return input_dtype


def network_input(satellite, ground, input_dtype):
    """(satellite, ground) network-input tensors: the inputs themselves for "float32",
    through :class:`~cvmnet_tf.layers.NetworkInput` (float32 under a mixed policy) for "uint8"."""
    if input_dtype != "uint8":
        return satellite, ground
    from cvmnet_tf.layers import NetworkInput, precise_dtype

    return (NetworkInput(dtype=precise_dtype(), name=NETWORK_INPUT_LAYERS["satellite"])(satellite),
            NetworkInput(dtype=precise_dtype(), name=NETWORK_INPUT_LAYERS["ground"])(ground))


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
        arguments = dict(arguments)
        input_dtype = arguments.pop("input_dtype", "float32")
        if input_dtype == "uint8":  # recorded only when not the pre-existing float contract
            arguments["input_dtype"] = input_dtype
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.architecture_arguments = tuple(sorted(_jsonable(arguments).items()))
        self.build_dtype_policy = policy
        self.takes_uint8 = input_dtype == "uint8"  # (keras.Layer.input_dtype is another thing)
        # The float-input view of a "uint8" model, built on first use; kept out of Keras'
        # attribute tracking (it shares every layer, it must not be saved twice).
        object.__setattr__(self, "_float_view", None)

    def call(self, inputs, training=None, mask=None):
        """The functional graph; a "uint8" model given floating-point inputs runs from the
        outputs of its :class:`~cvmnet_tf.layers.NetworkInput` layers (inputs already
        preprocessed, module docstring)."""
        if self.takes_uint8 and _all_floating(inputs):
            return self.float_input_view()(inputs, training=training)
        return super().call(inputs, training=training, mask=mask)

    def float_input_view(self):
        """The model from its network input (float, BGR minus means) to its outputs: itself
        for a "float32" model, the graph after the NetworkInput layers for a "uint8" one
        (same layer objects, weights shared)."""
        if not self.takes_uint8:
            return self
        if self._float_view is None:
            inputs = {key: self.get_layer(layer).output for key, layer in NETWORK_INPUT_LAYERS.items()}
            with warnings.catch_warnings():  # dict keys differ from the (layer output) tensor names
                warnings.simplefilter("ignore", UserWarning)
                view = keras.Model(inputs, self.output, name=f"{self.name}_float_input")
            object.__setattr__(self, "_float_view", view)
        return self._float_view

    def get_config(self):
        # Not chained to super(): a functional model's own config is a layer graph, which
        # these constructors do not take.
        config = dict(self.architecture_arguments)
        config.update(name=self.name, trainable=self.trainable, dtype=self.build_dtype_policy)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config.setdefault("input_dtype", "float32")  # saved before input_dtype existed
        return cls(**config)


def _all_floating(inputs) -> bool:
    from keras import tree

    flat = tree.flatten(inputs)
    return bool(flat) and all(hasattr(x, "dtype") and "float" in keras.backend.standardize_dtype(x.dtype)
                              for x in flat)


def _jsonable(arguments):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in arguments.items()}
