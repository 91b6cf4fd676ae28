"""The network input on the device: RGB uint8 pixels -> BGR float minus the caffe means.

:class:`NetworkInput` is the first layer of a model built with ``input_dtype="uint8"``
(:mod:`cvmnet_tf.models`): the host ships uint8 batches (a quarter of the bytes of float32,
no per-value float work in the input pipeline) and the BGR swap, float cast and mean
subtraction run on the accelerator, as part of the model. The values are those of
:func:`cvmnet_tf.data.preprocessing.to_network_input` (the same float32 operations:
``float32(x[..., ::-1]) - (103.939, 116.779, 123.6)``), so a model fed uint8 pixels gives
the descriptors of the same model fed that function's output.

Float inputs are passed through unchanged: they are taken to be preprocessed already
(BGR minus means), the contract of models built before this layer existed
(``input_dtype="float32"``), so callers that preprocess themselves keep working.
"""
import keras
from keras import ops

__all__ = ["NetworkInput", "CAFFE_BGR_MEAN"]

#: B, G, R means subtracted from the network input (the released code's; a test checks
#: they equal :data:`cvmnet_tf.data.preprocessing.CAFFE_BGR_MEAN`, which this keras.ops
#: module does not import).
CAFFE_BGR_MEAN = (103.939, 116.779, 123.6)


@keras.saving.register_keras_serializable(package="cvmnet_tf")
class NetworkInput(keras.layers.Layer):
    """RGB pixels (batch, H, W, 3), integer dtype (uint8), values 0..255 -> BGR minus the
    caffe means, in the layer's compute dtype (float32 under a mixed policy: build it with
    ``dtype=precise_dtype()``); the next layer casts to its own compute dtype.

    Floating-point inputs are returned unchanged (already the network input). No weights.

    Args:
        mean: the (B, G, R) values subtracted (default the caffe means).
    """

    def __init__(self, mean=CAFFE_BGR_MEAN, **kwargs):
        super().__init__(**kwargs)
        mean = tuple(float(v) for v in mean)
        if len(mean) != 3:
            raise ValueError(f"NetworkInput: mean must be 3 values (B, G, R), got {mean!r}")
        self.mean = mean

    def build(self, input_shape):
        if input_shape[-1] is not None and int(input_shape[-1]) != 3:
            raise ValueError(f"NetworkInput: inputs must have 3 channels (RGB), got shape {tuple(input_shape)}")
        self.built = True

    def call(self, inputs):
        if not _is_integer(inputs.dtype):
            return inputs
        bgr = ops.cast(ops.flip(inputs, axis=-1), self.compute_dtype)
        return bgr - ops.convert_to_tensor(self.mean, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs):
        dtype = self.compute_dtype if _is_integer(inputs.dtype) else inputs.dtype
        return keras.KerasTensor(inputs.shape, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        config["mean"] = list(self.mean)
        return config


def _is_integer(dtype) -> bool:
    name = keras.backend.standardize_dtype(dtype)
    return name.startswith("int") or name.startswith("uint")
