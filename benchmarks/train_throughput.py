"""Training throughput of CVM-Net (pairs/s), run on demand; not a test.

One Adam step on a batch of ``--batch_size`` pairs with the weighted soft-margin triplet
loss, compiled (tf.function under TensorFlow, jax.jit under JAX), on random inputs held
in memory (the input pipeline has its own benchmark). Warm-up steps are excluded; the
median of ``--windows`` timed windows of ``--steps`` steps is reported, with the process'
peak RSS. Every configuration runs in the same process, and the last column gives each
one's pairs/s relative to the first row (the baseline).

    python benchmarks/train_throughput.py --image_size half --models cvm_net_i,cvm_net_ii
    KERAS_BACKEND=jax python benchmarks/train_throughput.py --image_size paper --precision float32,mixed_float16

The released TF1 code trained at about 10 pairs/s on 2x GTX 1080Ti (REFERENCE).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from cvmnet_tf import losses, models  # noqa: E402
from cvmnet_tf.training.flags import IMAGE_SIZES, parse_image_size  # noqa: E402


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_step_tensorflow(model, optimizer, loss_fn, jit_compile):
    import tensorflow as tf

    variables = model.trainable_variables

    @tf.function(jit_compile=jit_compile)
    def step(sat, grd):
        with tf.GradientTape() as tape:
            out = model({"satellite": sat, "ground": grd}, training=True)
            loss = loss_fn(out["satellite"], out["ground"])
            scaled = optimizer.scale_loss(loss)
        optimizer.apply(tape.gradient(scaled, variables), variables)
        return loss

    return lambda sat, grd: float(step(sat, grd))


def make_step_jax(model, optimizer, loss_fn, jit_compile):
    import jax

    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    opt_vars = [v.value for v in optimizer.variables]

    def compute_loss(trainable, non_trainable, sat, grd):
        out, non_trainable = model.stateless_call(trainable, non_trainable,
                                                  {"satellite": sat, "ground": grd}, training=True)
        return loss_fn(out["satellite"], out["ground"]), non_trainable

    grad_fn = jax.value_and_grad(compute_loss, has_aux=True)

    def train_step(state, sat, grd):
        trainable, non_trainable, opt_vars = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, sat, grd)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return loss, (trainable, non_trainable, opt_vars)

    train_step = jax.jit(train_step, donate_argnums=0) if jit_compile else train_step
    state = [(trainable, non_trainable, opt_vars)]

    def step(sat, grd):
        loss, state[0] = train_step(state[0], sat, grd)
        return float(loss)

    return step


def run_config(model_name, sizes, batch_size, precision, args):
    keras.mixed_precision.set_global_policy(precision)
    keras.utils.set_random_seed(0)
    (sat_size, grd_size) = sizes
    model = models.build_model(model_name, satellite_shape=sat_size, ground_shape=grd_size,
                               num_clusters=args.num_clusters, descriptor_dim=args.descriptor_dim,
                               width=args.width)
    optimizer = keras.optimizers.Adam(1e-5)
    if precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    loss_fn = losses.get_loss("weighted_soft_margin_triplet")
    backend = keras.backend.backend()
    maker = make_step_jax if backend == "jax" else make_step_tensorflow
    step = maker(model, optimizer, loss_fn, jit_compile=(backend == "jax") or args.jit_compile)
    rng = np.random.default_rng(0)
    sat = keras.ops.convert_to_tensor(rng.normal(0, 50, (batch_size, *sat_size, 3)).astype(np.float32))
    grd = keras.ops.convert_to_tensor(rng.normal(0, 50, (batch_size, *grd_size, 3)).astype(np.float32))
    for _ in range(args.warmup):
        loss = step(sat, grd)
    rates = []
    for _ in range(args.windows):
        t0 = time.perf_counter()
        for _ in range(args.steps):
            loss = step(sat, grd)
        rates.append(args.steps * batch_size / (time.perf_counter() - t0))
    if not np.isfinite(loss):
        raise FloatingPointError(f"{model_name} {precision}: non-finite loss {loss}")
    keras.mixed_precision.set_global_policy("float32")
    return statistics.median(rates)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cvm_net_i,cvm_net_ii")
    parser.add_argument("--precision", default="float32,mixed_float16")
    parser.add_argument("--image_size", default="half", help=f"{', '.join(IMAGE_SIZES)} or HxW,HxW")
    parser.add_argument("--batch_size", type=int, default=12)
    parser.add_argument("--num_clusters", type=int, default=64)
    parser.add_argument("--descriptor_dim", type=int, default=4096)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=3, help="steps per timed window")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--jit_compile", action="store_true", help="XLA under TensorFlow (JAX always jits)")
    args = parser.parse_args()
    sizes = parse_image_size(args.image_size)
    print(f"backend {keras.backend.backend()}, satellite {sizes[0]}, ground {sizes[1]}, batch {args.batch_size}")
    print(f"{'model':<12} {'precision':<14} {'pairs/s':>9} {'peak RSS MiB':>13} {'vs first':>9}")
    base = None
    for model_name in args.models.split(","):
        for precision in args.precision.split(","):
            rate = run_config(model_name, sizes, args.batch_size, precision, args)
            base = base or rate
            print(f"{model_name:<12} {precision:<14} {rate:>9.2f} {peak_rss_mib():>13.0f} {rate / base:>8.2f}x",
                  flush=True)


if __name__ == "__main__":
    main()
