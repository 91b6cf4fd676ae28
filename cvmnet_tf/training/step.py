"""The training step of the training loop (TensorFlow): forward, loss, gradients, Adam."""

import tensorflow as tf


def make_train_step(model, optimizer, loss_fn, strategy=None, jit_compile: bool = False):
    """A compiled training step ``step(batch) -> loss`` (float32 scalar tensor).

    ``batch``: dict with "satellite" (B, Hs, Ws, 3) and "ground" (B, Hg, Wg, 3) float32
    network inputs (other keys are ignored). One Adam update of ``model``'s trainable
    variables on ``loss_fn(satellite_descriptors, ground_descriptors)``; with a
    ``LossScaleOptimizer`` the loss is scaled. ``strategy``: a tf.distribute strategy
    (default: the current one); the loss is averaged over replicas.
    """
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    variables = model.trainable_variables

    def replica_step(batch):
        with tf.GradientTape() as tape:
            out = model({"satellite": batch["satellite"], "ground": batch["ground"]}, training=True)
            loss = loss_fn(out["satellite"], out["ground"])
            scaled = optimizer.scale_loss(loss / replicas)
        grads = tape.gradient(scaled, variables)
        optimizer.apply(grads, variables)
        return loss

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def step(batch):
        per_replica = strategy.run(replica_step, args=(batch,))
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    return step
