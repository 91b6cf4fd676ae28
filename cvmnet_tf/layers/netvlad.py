"""NetVLAD pooling layer, exactly as the LOUPE implementation used by CVM-Net.

Math (x: local features of one image, N = H*W vectors of dimension D; K clusters):

1. ``x_n = x_n / ||x_n||``                                 (l2 over D)
2. ``a_nk = softmax_k(x_n . w_k + b_k)``                   (w: ``cluster_weights`` D x K,
                                                           b: ``cluster_biases`` K)
3. ``V[d, k] = sum_n a_nk x_nd - (sum_n a_nk) c[d, k]``    (c: ``cluster_weights2`` D x K)
4. ``V[:, k] = V[:, k] / ||V[:, k]||``                     (intra-normalisation over D)
5. flatten in (D, K) order: ``v[d * K + k] = V[d, k]``; ``v = v / ||v||`` (D*K values)
6. optional dimension reduction ``v @ hidden1_weights`` (D*K x output_dim), no bias,
   no normalisation afterwards (CVM-Net-II's ``forward(x, do_dim_reduction=True)``).

Initialisers as released: cluster weights, biases and centres ~ N(0, 1/sqrt(D)),
hidden1_weights ~ N(0, 1/sqrt(K)) (plain normal, not truncated). Context gating and
batch norm are off in CVM-Net and not implemented. All l2 normalisations use
``tf.nn.l2_normalize``'s formula (eps 1e-12 on the squared norm).
"""
import math

import keras
from keras import ops

from cvmnet_tf.layers.normalization import l2_normalize, precise_dtype

__all__ = ["NetVLAD"]


@keras.saving.register_keras_serializable(package="cvmnet_tf")
class NetVLAD(keras.layers.Layer):
    """NetVLAD (LOUPE variant, as in CVM-Net's released code).

    Args:
        num_clusters: K, number of cluster centres (CVM-Net: 64).
        output_dim: None for the plain VLAD vector of D*K values (CVM-Net-I), or the
            size of the built-in linear dimension reduction (CVM-Net-II: 4096).
        epsilon: lower bound of the squared norms in the l2 normalisations.
        **kwargs: keras Layer arguments (name, dtype, trainable). Without an explicit
            dtype, the layer runs in float32 when the global policy is mixed precision.

    Input: ``(batch, H, W, D)`` float, H and W may be None (any spatial size works with
    the same weights). Output: ``(batch, D*K)`` (unit l2 norm) or ``(batch, output_dim)``,
    float32 under mixed precision.

    Weights: ``cluster_weights`` (D, K), ``cluster_biases`` (K,), ``cluster_weights2``
    (D, K) (the TF1 checkpoint stores it as (1, D, K)), ``hidden1_weights``
    (D*K, output_dim) when ``output_dim`` is set.
    """

    def __init__(self, num_clusters=64, output_dim=None, epsilon=1e-12, **kwargs):
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = precise_dtype()
        super().__init__(**kwargs)
        if isinstance(num_clusters, bool) or not isinstance(num_clusters, int) or num_clusters < 1:
            raise ValueError(f"NetVLAD: num_clusters must be a positive int, got {num_clusters!r}")
        if output_dim is not None and (isinstance(output_dim, bool) or not isinstance(output_dim, int)
                                       or output_dim < 1):
            raise ValueError(f"NetVLAD: output_dim must be None or a positive int, got {output_dim!r}")
        if epsilon <= 0:
            raise ValueError(f"NetVLAD: epsilon must be > 0, got {epsilon!r}")
        self.num_clusters = num_clusters
        self.output_dim = output_dim
        self.epsilon = float(epsilon)
        self.input_spec = keras.layers.InputSpec(ndim=4)

    def build(self, input_shape):
        if len(input_shape) != 4 or input_shape[-1] is None:
            raise ValueError(
                f"NetVLAD '{self.name}': expected input (batch, H, W, D) with known D, "
                f"got {tuple(input_shape)}")
        d = int(input_shape[-1])
        k = self.num_clusters
        self.feature_size = d
        init_d = keras.initializers.RandomNormal(mean=0.0, stddev=1.0 / math.sqrt(d))
        self.cluster_weights = self.add_weight(
            name="cluster_weights", shape=(d, k), initializer=init_d)
        self.cluster_biases = self.add_weight(
            name="cluster_biases", shape=(k,), initializer=init_d)
        self.cluster_weights2 = self.add_weight(
            name="cluster_weights2", shape=(d, k), initializer=init_d)
        if self.output_dim is not None:
            self.hidden1_weights = self.add_weight(
                name="hidden1_weights", shape=(d * k, self.output_dim),
                initializer=keras.initializers.RandomNormal(mean=0.0, stddev=1.0 / math.sqrt(k)))
        self.input_spec = keras.layers.InputSpec(ndim=4, axes={-1: d})

    def call(self, inputs):
        dtype = self.compute_dtype
        x = ops.cast(inputs, dtype)
        d, k = self.feature_size, self.num_clusters
        # 1. l2-normalise every local feature over its D channels.
        x = l2_normalize(x, axis=-1, epsilon=self.epsilon)
        # 2. soft assignment of each feature to the K clusters.
        logits = ops.einsum("bhwd,dk->bhwk", x, ops.cast(self.cluster_weights, dtype))
        logits = logits + ops.cast(self.cluster_biases, dtype)
        assignment = ops.softmax(logits, axis=-1)
        # 3. V[d, k] = sum_n a_nk x_nd - (sum_n a_nk) c[d, k]; kept in (D, K) layout.
        a_sum = ops.sum(assignment, axis=(1, 2))  # (B, K)
        vlad = ops.einsum("bhwk,bhwd->bdk", assignment, x)
        vlad = vlad - a_sum[:, None, :] * ops.cast(self.cluster_weights2, dtype)[None, :, :]
        # 4. intra-normalisation over D, 5. flatten (index d*K + k) + global l2.
        vlad = l2_normalize(vlad, axis=1, epsilon=self.epsilon)
        vlad = ops.reshape(vlad, (-1, d * k))
        vlad = l2_normalize(vlad, axis=-1, epsilon=self.epsilon)
        # 6. optional linear dimension reduction (no bias, no normalisation).
        if self.output_dim is not None:
            vlad = ops.matmul(vlad, ops.cast(self.hidden1_weights, dtype))
        return vlad

    def compute_output_shape(self, input_shape):
        if self.output_dim is not None:
            return (input_shape[0], self.output_dim)
        return (input_shape[0], int(input_shape[-1]) * self.num_clusters)

    def get_config(self):
        config = super().get_config()
        config.update({"num_clusters": self.num_clusters, "output_dim": self.output_dim,
                       "epsilon": self.epsilon})
        return config
