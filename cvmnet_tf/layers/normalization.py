"""Normalisation layers used by CVM-Net (keras.ops only, backend-agnostic).

- :func:`l2_normalize`: ``x / sqrt(max(sum(x**2), eps))`` along one axis, the exact
  formula of ``tf.nn.l2_normalize`` (eps = 1e-12 on the *squared* norm) used by the
  released TF1 code.
- :class:`L2Normalize`: that function as a layer; computes in float32 under a mixed
  precision policy and returns float32.
- :class:`LocalResponseNormalization`: AlexNet's cross-channel LRN with the formula of
  ``tf.nn.local_response_normalization`` (used by the AlexNet backbone).
- :func:`precise_dtype`: the dtype to give layers that must not run in float16.
"""
import keras
from keras import ops

__all__ = ["l2_normalize", "L2Normalize", "LocalResponseNormalization", "precise_dtype"]

_LOW_PRECISION = ("float16", "bfloat16")


def precise_dtype():
    """Dtype policy name for layers that must compute in full precision.

    Returns the global policy's variable dtype (``"float32"``) when the global policy
    is a mixed one (``mixed_float16`` / ``mixed_bfloat16``), else ``None`` (= follow
    the global policy). Read at layer construction time.
    """
    policy = keras.config.dtype_policy()
    if policy.compute_dtype in _LOW_PRECISION:
        return policy.variable_dtype
    return None


def l2_normalize(x, axis=-1, epsilon=1e-12):
    """L2-normalise ``x`` along ``axis`` like ``tf.nn.l2_normalize``.

    ``y = x / sqrt(max(sum(x**2, axis), epsilon))``; a zero vector stays zero.
    Shape and dtype of ``x`` are kept. ``epsilon`` bounds the squared norm (unitless).
    """
    square_sum = ops.sum(ops.square(x), axis=axis, keepdims=True)
    eps = ops.cast(epsilon, x.dtype)
    return x * ops.rsqrt(ops.maximum(square_sum, eps))


@keras.saving.register_keras_serializable(package="cvmnet_tf")
class L2Normalize(keras.layers.Layer):
    """L2 normalisation along one axis (default: the last).

    Input: any float tensor, e.g. descriptors ``(batch, dim)``. Output: same shape,
    unit l2 norm along ``axis``. Under a mixed precision policy the layer's dtype is
    float32 (unless ``dtype`` is given), so the norm is computed and returned in float32.
    """

    def __init__(self, axis=-1, epsilon=1e-12, **kwargs):
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = precise_dtype()
        super().__init__(**kwargs)
        if epsilon <= 0:
            raise ValueError(f"L2Normalize: epsilon must be > 0, got {epsilon!r}")
        self.axis = axis
        self.epsilon = float(epsilon)

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        return l2_normalize(x, axis=self.axis, epsilon=self.epsilon)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis, "epsilon": self.epsilon})
        return config


@keras.saving.register_keras_serializable(package="cvmnet_tf")
class LocalResponseNormalization(keras.layers.Layer):
    """Cross-channel local response normalisation (AlexNet), NHWC.

    ``y[..., c] = x[..., c] / (bias + alpha * sum_{c'=c-r}^{c+r} x[..., c']**2) ** beta``
    with ``r = depth_radius`` (the formula of ``tf.nn.local_response_normalization``;
    defaults are those of the common TF port of bvlc_alexnet: r=2, alpha=2e-5,
    beta=0.75, bias=1). Input/output ``(batch, H, W, C)``, C known. Computes in
    float32 under mixed precision (squared ReLU activations overflow float16).
    """

    def __init__(self, depth_radius=2, bias=1.0, alpha=2e-5, beta=0.75, **kwargs):
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = precise_dtype()
        super().__init__(**kwargs)
        if int(depth_radius) < 0:
            raise ValueError(f"LocalResponseNormalization: depth_radius must be >= 0, got {depth_radius!r}")
        self.depth_radius = int(depth_radius)
        self.bias = float(bias)
        self.alpha = float(alpha)
        self.beta = float(beta)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                "LocalResponseNormalization: expected input (batch, H, W, C) with known C, "
                f"got {tuple(input_shape)}")
        self._channels = int(input_shape[-1])

    def call(self, inputs):
        x = ops.cast(inputs, self.compute_dtype)
        r = self.depth_radius
        squared = ops.pad(ops.square(x), [[0, 0], [0, 0], [0, 0], [r, r]])
        window = squared[..., 0:self._channels]
        for i in range(1, 2 * r + 1):
            window = window + squared[..., i:i + self._channels]
        return x / ops.power(self.bias + self.alpha * window, self.beta)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"depth_radius": self.depth_radius, "bias": self.bias,
                       "alpha": self.alpha, "beta": self.beta})
        return config
