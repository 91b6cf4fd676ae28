"""cvmnet_tf.training.step: the compiled step's update equals an eager Keras reference and a
NumPy Adam; frozen layers are not back-propagated; the fused Adam is used only when exact."""

import collections

import keras
import numpy as np
import pytest
import tensorflow as tf

from cvmnet_tf import losses, models
from cvmnet_tf.training.step import make_train_step, uses_fused_adam

SAT, GRD, B = (32, 32), (16, 64), 4
EPS = 1e-3


def tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    # dropout 0: the compiled step and the reference must see the same network.
    return models.build_model("cvm_net_i", satellite_shape=SAT, ground_shape=GRD, num_clusters=4,
                              descriptor_dim=16, width=0.125, dropout_rate=0.0)


def batches(n, seed=0):
    rng = np.random.default_rng(seed)
    return [{"satellite": tf.constant(rng.normal(0, 50, (B, *SAT, 3)).astype(np.float32)),
             "ground": tf.constant(rng.normal(0, 50, (B, *GRD, 3)).astype(np.float32))} for _ in range(n)]


_TRIPLET = losses.get_loss("weighted_soft_margin_triplet")


def LOSS(satellite, ground):
    """The triplet loss x 1000: gradients well above Adam's epsilon, so each step moves
    the weights by about the learning rate (a visible, comparable update)."""
    return 1000.0 * _TRIPLET(satellite, ground)


def reference_grads(model, batch):
    """Plain eager Keras: default tape over the trainable variables."""
    with tf.GradientTape() as tape:
        out = model(batch, training=True)
        loss = LOSS(out["satellite"], out["ground"])
    return loss, tape.gradient(loss, model.trainable_variables)


def test_compiled_step_matches_numpy_adam_and_keras_apply():
    model, ref = tiny_model(), tiny_model()
    # epsilon 1e-3 (not Keras' 1e-7): with tiny gradients Adam's m / sqrt(v) is ~sign(g), so
    # float32 differences between the eager and the compiled gradients would be amplified.
    opt = keras.optimizers.Adam(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=EPS)
    ref_opt = keras.optimizers.Adam(learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=EPS)
    ref_opt.build(ref.trainable_variables)
    assert uses_fused_adam(opt)
    step = make_train_step(model, opt, LOSS)
    frozen = [v.numpy() for v in model.non_trainable_variables]
    w = [v.numpy().astype(np.float64) for v in model.trainable_variables]
    m = [np.zeros_like(x) for x in w]
    s = [np.zeros_like(x) for x in w]
    for t, batch in enumerate(batches(3), start=1):
        ref_loss, grads = reference_grads(ref, batch)
        # Independent NumPy Adam on the reference gradients.
        alpha = 1e-3 * np.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
        for i, g in enumerate(grads):
            g = g.numpy().astype(np.float64)
            m[i] = 0.9 * m[i] + 0.1 * g
            s[i] = 0.999 * s[i] + 0.001 * g * g
            w[i] = w[i] - alpha * m[i] / (np.sqrt(s[i]) + EPS)
        ref_opt.apply(grads, ref.trainable_variables)
        loss = float(step(batch))
        assert loss == pytest.approx(float(ref_loss), rel=1e-5)
    assert int(opt.iterations.numpy()) == 3
    for v, expected, keras_ref in zip(model.trainable_variables, w, ref.trainable_variables):
        # Adam moves a weight by about lr = 1e-3 per step (3e-3 in all); 3e-5 (1 %) leaves room
        # for float32 gradient differences between the eager and the compiled graph, which
        # Adam amplifies where a gradient nearly cancels (seen: 1.6e-5 on a bias). A wrong
        # bias correction or moment update is off by > 1e-4.
        np.testing.assert_allclose(v.numpy(), expected, rtol=0, atol=3e-5, err_msg=v.path)
        np.testing.assert_allclose(v.numpy(), keras_ref.numpy(), rtol=0, atol=3e-5, err_msg=v.path)
    moved = max(float(np.abs(v.numpy() - x0).max()) for v, x0 in
                zip(model.trainable_variables, [r.numpy() for r in tiny_model().trainable_variables]))
    assert moved > 1e-3  # three steps of lr 1e-3 really happened
    assert len(frozen) == 28  # conv1_1 .. conv3_3 kernels and biases, two branches
    for v, before in zip(model.non_trainable_variables, frozen):
        np.testing.assert_array_equal(v.numpy(), before, err_msg=v.path)


def _op_counts(step, batch):
    graph = step.get_concrete_function(batch).graph
    counts = collections.Counter(op.type for op in graph.get_operations())
    for fn in graph._functions.values():
        counts.update(op.type for op in fn.graph.get_operations())
    return counts


def test_frozen_convs_are_not_backpropagated():
    model = tiny_model()
    step = make_train_step(model, keras.optimizers.Adam(1e-5), LOSS)
    counts = _op_counts(step, batches(1)[0])
    # 2 branches x 13 convs forward; only conv4_1..conv5_3 (6 per branch) are trained.
    assert counts["Conv2D"] == 26
    assert counts["Conv2DBackpropFilter"] == 12, counts
    assert counts["Conv2DBackpropInput"] <= 12, counts
    assert counts["ResourceApplyAdam"] == len(model.trainable_variables)


@pytest.mark.parametrize("make_opt, fused", [
    (lambda: keras.optimizers.Adam(1e-5), True),
    (lambda: keras.optimizers.Adam(1e-5, weight_decay=1e-4), False),
    (lambda: keras.optimizers.Adam(1e-5, clipnorm=1.0), False),
    (lambda: keras.optimizers.Adam(1e-5, amsgrad=True), False),
    (lambda: keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-5)), False),
    (lambda: keras.optimizers.SGD(1e-2), False),
])
def test_fused_adam_only_when_exact(make_opt, fused):
    assert uses_fused_adam(make_opt()) is fused


class RecordingSGD(keras.optimizers.SGD):
    """SGD that keeps a copy of the gradients it is asked to apply (in pre-made variables,
    so that it also works inside the compiled step)."""

    def attach(self, variables):
        self.recorded = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]

    def apply(self, grads, trainable_variables=None):
        for slot, grad in zip(self.recorded, grads):
            slot.assign(tf.convert_to_tensor(grad))
        return super().apply(grads, trainable_variables)


def test_fallback_optimizer_applies_the_step_gradients_through_keras():
    """A non-Adam optimizer goes through ``optimizer.apply``: every weight moves by exactly
    -lr * (the gradient the step handed to the optimizer), and those gradients are the eager
    reference's. The update is checked to float32 rounding of ``w - lr g``; the gradients as
    one vector (single gradients such as the FC bias behind the l2 normalisation are
    near-cancelling sums of much larger terms, so their own relative error says nothing)."""
    model, ref = tiny_model(), tiny_model()
    opt = RecordingSGD(0.05)
    assert not uses_fused_adam(opt)
    opt.attach(model.trainable_variables)
    before = [v.numpy() for v in model.trainable_variables]
    step = make_train_step(model, opt, LOSS)
    batch = batches(1, seed=3)[0]
    _, grads = reference_grads(ref, batch)
    step(batch)
    eps = np.finfo(np.float32).eps
    for v, w0, g in zip(model.trainable_variables, before, opt.recorded):
        g = g.numpy()
        expected = w0.astype(np.float64) - 0.05 * g.astype(np.float64)
        bound = 2 * eps * (np.abs(w0) + np.abs(0.05 * g)) + np.finfo(np.float32).tiny
        assert np.all(np.abs(v.numpy() - expected) <= bound), v.path
    # The gradients themselves: compiled and eager graphs sum in other orders, and near-ties
    # of the x1000 soft-margin loss amplify that (measured: relative difference of the whole
    # gradient vector 1e-3 on AMD AVX-512); a wrong gradient (another loss, a missing branch,
    # a frozen layer trained) is off by O(1) of it.
    step_vec = np.concatenate([g.numpy().ravel() for g in opt.recorded]).astype(np.float64)
    ref_vec = np.concatenate([g.numpy().ravel() for g in grads]).astype(np.float64)
    assert np.linalg.norm(ref_vec) > 0
    assert np.linalg.norm(step_vec - ref_vec) <= 2e-2 * np.linalg.norm(ref_vec)
