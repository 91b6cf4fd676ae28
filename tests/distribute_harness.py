"""Runs in its own process (the CPU must be split into 2 logical devices before TensorFlow
initialises its devices): one training step (SGD, so that the update is -lr x the gradient)
on one device and under a 2-replica MirroredStrategy on the same global batch, for every
loss, float32 and mixed_float16 (LossScaleOptimizer).

``python tests/distribute_harness.py OUT.npz`` writes, per case ``<loss>-<precision>-<mode>``
(mode "eager": ``step.python_function``, the same step run eagerly, cheap to set up;
"compiled": the tf.function the training loop runs, for the default loss): the losses and
the trainable weights before and after the step of one device ("single"), of the mirrored
strategy ("mirrored") and of :func:`run_halves` ("halves", eager cases); tests/test_distribute.py
compares them.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402

from cvmnet_tf import losses, models  # noqa: E402
from cvmnet_tf.training.step import make_train_step, uses_fused_adam  # noqa: E402

SAT, GRD, B = (32, 32), (16, 64), 8  # the tests' tiny sizes (TINY_TRAIN_FLAGS); 4 pairs per replica
LR = 0.05

#: case name -> (loss name, loss arguments)
CASES = {
    "weighted_soft_margin_triplet": ("weighted_soft_margin_triplet", {}),
    "weighted_soft_margin_triplet_hard": ("weighted_soft_margin_triplet", {"hard_top_k": 3}),
    "soft_margin_triplet": ("soft_margin_triplet", {}),
    "weighted_quadruplet": ("weighted_quadruplet", {}),
    "contrastive": ("contrastive", {}),
    "max_margin_triplet": ("max_margin_triplet", {}),
    "hard_exemplar_reweighting_triplet": ("hard_exemplar_reweighting_triplet", {}),
}
assert {name for name, _ in CASES.values()} == set(losses.LOSS_NAMES)


def tiny_model():
    # dropout 0: both runs must see the same network (dropout masks are drawn per replica)
    return models.build_model("cvm_net_i", satellite_shape=SAT, ground_shape=GRD, num_clusters=4,
                              descriptor_dim=16, width=0.0625, dropout_rate=0.0, freeze_early_layers=False,
                              weights=None, init="he")


def batch(seed=0):
    rng = np.random.default_rng(seed)
    return {"satellite": rng.normal(0, 50, (B, *SAT, 3)).astype(np.float32),
            "ground": rng.normal(0, 50, (B, *GRD, 3)).astype(np.float32)}


def make_optimizer(kind, precision):
    opt = keras.optimizers.SGD(LR) if kind == "sgd" else keras.optimizers.Adam(1e-3)
    return keras.optimizers.LossScaleOptimizer(opt) if precision == "mixed" else opt


def run_case(strategy, init, loss_fn, kind, precision, data, compiled):
    with strategy.scope():
        model = tiny_model()
        model.set_weights(init)
        opt = make_optimizer(kind, precision)
        opt.build(model.trainable_variables)
    step = make_train_step(model, opt, loss_fn, strategy)
    if strategy.num_replicas_in_sync > 1:
        dataset = tf.data.Dataset.from_tensors(data)
        data_in = next(iter(strategy.experimental_distribute_dataset(dataset)))
    else:
        data_in = {k: tf.constant(v) for k, v in data.items()}
    loss = float((step if compiled else step.python_function)(data_in))
    return loss, [v.numpy() for v in model.trainable_variables], uses_fused_adam(opt, strategy)


def run_halves(init, loss_fn, precision, data):
    """The same global-batch step without tf.distribute: one device evaluates the network on
    each replica's half of the batch (the same kernels on the same per-replica batch size),
    the loss is taken on the concatenated descriptors, and ``optimizer.apply`` applies the
    tape's gradient (its two contributions added as the all-reduce adds them)."""
    model = tiny_model()
    model.set_weights(init)
    opt = make_optimizer("sgd", precision)
    opt.build(model.trainable_variables)
    half = B // 2
    with tf.GradientTape() as tape:
        outs = [model({k: tf.constant(v[i * half:(i + 1) * half]) for k, v in data.items()}, training=True)
                for i in range(2)]
        loss = loss_fn(tf.concat([o["satellite"] for o in outs], 0), tf.concat([o["ground"] for o in outs], 0))
        scaled = opt.scale_loss(loss)
    opt.apply(tape.gradient(scaled, model.trainable_variables), model.trainable_variables)
    return float(loss), [v.numpy() for v in model.trainable_variables]


def main(out_path):
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    single = tf.distribute.get_strategy()
    assert mirrored.num_replicas_in_sync == 2
    data = batch()
    results = {}
    for precision in ("float32", "mixed"):
        keras.mixed_precision.set_global_policy("mixed_float16" if precision == "mixed" else "float32")
        keras.utils.set_random_seed(0)
        init = tiny_model().get_weights()
        modes = [(name, "eager") for name in CASES] + [("weighted_soft_margin_triplet", "compiled")]
        for case, mode in modes:
            loss_name, kwargs = CASES[case]
            loss_fn = losses.get_loss(loss_name, **kwargs)
            key = f"{case}-{precision}-{mode}"
            one = run_case(single, init, loss_fn, "sgd", precision, data, mode == "compiled")
            two = run_case(mirrored, init, loss_fn, "sgd", precision, data, mode == "compiled")
            halves = run_halves(init, loss_fn, precision, data) if mode == "eager" else (np.nan, two[1])
            results[f"{key}/loss"] = np.array([one[0], two[0], halves[0]], np.float64)
            results[f"{key}/fused"] = np.array([one[2], two[2]])
            trainable = [i for i, v in enumerate(tiny_model().weights) if v.trainable]
            for i, (w0, w1, w2, w3) in enumerate(zip([init[j] for j in trainable], one[1], two[1], halves[1])):
                results[f"{key}/w{i:03d}/before"] = w0
                results[f"{key}/w{i:03d}/single"] = w1
                results[f"{key}/w{i:03d}/mirrored"] = w2
                results[f"{key}/w{i:03d}/halves"] = w3
            print(key, one[0], two[0], max(float(np.abs(a - b).max()) for a, b in zip(one[1], two[1])), flush=True)
    np.savez(out_path, **results)


if __name__ == "__main__":
    main(sys.argv[1])
