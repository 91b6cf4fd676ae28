"""The training step of the training loop (TensorFlow): forward, loss, gradients, Adam.

Two things make it cheaper than a plain ``GradientTape`` + ``optimizer.apply`` step
(measured in benchmarks/train_throughput.py, see the README's performance section):

- Only ``model.trainable_variables`` are watched (``watch_accessed_variables=False``).
  Keras 3 keeps a frozen layer's ``tf.Variable`` ``trainable=True`` underneath (only the
  Keras flag changes), so a default tape records every frozen VGG16 conv (conv1_1 ..
  conv3_3) and eager execution back-propagates through all of them; with explicit
  watching those ops are never recorded: no weight and no input gradients for them.
- A plain ``keras.optimizers.Adam`` (no weight decay, clipping, EMA, AMSGrad, gradient
  accumulation; one replica) is applied with TensorFlow's fused ``ResourceApplyAdam``
  kernel on Keras' own slot variables (one pass over each variable instead of about
  ten element-wise ops; this matters for CVM-Net-I's 134 M-parameter FC). The update is
  Keras' Adam: ``alpha = lr sqrt(1 - b2^t) / (1 - b1^t)``, ``m = b1 m + (1 - b1) g``,
  ``v = b2 v + (1 - b2) g^2``, ``w -= alpha m / (sqrt(v) + eps)``, ``t`` = iterations + 1,
  and ``optimizer.iterations`` advances, so checkpoints and a later ``optimizer.apply``
  continue seamlessly. Any other optimizer goes through ``optimizer.apply``.

Several replicas (a tf.distribute strategy with R > 1 replicas, each holding B / R pairs of
the global batch of B): the loss is the single-device loss of the WHOLE global batch, as in
the released code (whose graph spreads the two branches over two GPUs but computes the
exhaustive loss over all B pairs): every replica all-gathers the satellite and ground
descriptors of all replicas (:func:`gather_global_batch`, rows in replica order = the global
batch's order) and evaluates ``loss_fn`` on the (B, dim) pair, so each anchor meets its
B - 1 in-batch negatives (not B / R - 1), hard mining included. The gradient: in replica r
only its own rows are differentiable (the other replicas' rows enter as constants), so its
gradient is the part of dL/dw that flows through its own pairs; ``optimizer.apply`` sums the
replicas' gradients (all-reduce SUM), which is exactly dL/dw of the single-device loss. The
loss is therefore not divided by R (the per-replica-loss convention, loss / R, would give
1/R of the gradient here). Under a ``LossScaleOptimizer`` the loss is scaled as usual and
the summed gradients are unscaled by ``apply``.
"""

import keras
import tensorflow as tf

from cvmnet_tf.training import keras_internals

__all__ = ["make_train_step", "uses_fused_adam", "gather_global_batch"]


def uses_fused_adam(optimizer, strategy=None) -> bool:
    """True when :func:`make_train_step` applies ``optimizer`` with the fused Adam kernel."""
    strategy = strategy or tf.distribute.get_strategy()
    if type(optimizer) is not keras.optimizers.Adam or strategy.num_replicas_in_sync != 1:
        return False
    plain = (not optimizer.amsgrad and not optimizer.weight_decay and optimizer.clipnorm is None
             and optimizer.clipvalue is None and optimizer.global_clipnorm is None
             and not optimizer.use_ema and not getattr(optimizer, "gradient_accumulation_steps", None)
             and getattr(optimizer, "loss_scale_factor", None) is None)
    return bool(plain)


def _fused_adam_apply(optimizer, grads, variables):
    """One Adam update of ``variables`` with ``grads`` (None grads skipped) via ResourceApplyAdam;
    ``optimizer`` is built (make_train_step builds it before tracing)."""
    lr = tf.cast(keras_internals.current_learning_rate(optimizer), tf.float32)
    step = tf.cast(optimizer.iterations + 1, tf.float32)
    beta_1 = tf.constant(optimizer.beta_1, tf.float32)
    beta_2 = tf.constant(optimizer.beta_2, tf.float32)
    beta_1_power, beta_2_power = tf.pow(beta_1, step), tf.pow(beta_2, step)
    epsilon = tf.constant(optimizer.epsilon, tf.float32)
    for grad, var in zip(grads, variables):
        if grad is None:
            continue
        m, v = keras_internals.adam_slots(optimizer, var)
        dtype = var.dtype
        if isinstance(grad, tf.IndexedSlices):
            grad = tf.convert_to_tensor(grad)
        handle = {name: keras_internals.backend_variable(x).handle for name, x in (("var", var), ("m", m), ("v", v))}
        tf.raw_ops.ResourceApplyAdam(
            var=handle["var"], m=handle["m"], v=handle["v"],
            beta1_power=tf.cast(beta_1_power, dtype), beta2_power=tf.cast(beta_2_power, dtype),
            lr=tf.cast(lr, dtype), beta1=tf.cast(beta_1, dtype), beta2=tf.cast(beta_2, dtype),
            epsilon=tf.cast(epsilon, dtype), grad=tf.cast(grad, dtype), use_locking=False)
    optimizer.iterations.assign_add(1)


def gather_global_batch(x):
    """In replica context: ``x`` (b, ...) of this replica -> (R * b, ...) rows of all R replicas
    in replica order, of which only this replica's own rows carry a gradient (the others are
    constants here: their gradient is computed by the replica that owns them). Every replica
    must hold the same number of rows ``b`` (the training batches are full: drop_remainder)."""
    ctx = tf.distribute.get_replica_context()
    replicas = ctx.num_replicas_in_sync
    if replicas == 1:
        return x
    gathered = ctx.all_gather(tf.stop_gradient(x), axis=0)
    rows = tf.shape(x)[0]
    start = tf.cast(ctx.replica_id_in_sync_group, tf.int32) * rows
    out = tf.concat([gathered[:start], x, gathered[start + rows:]], axis=0)
    batch = x.shape[0]
    out.set_shape([None if batch is None else batch * replicas] + x.shape.as_list()[1:])
    return out


def make_train_step(model, optimizer, loss_fn, strategy=None, jit_compile: bool = False):
    """A compiled training step ``step(batch) -> loss`` (float32 scalar tensor).

    ``batch``: dict with "satellite" (B, Hs, Ws, 3) and "ground" (B, Hg, Wg, 3) float32
    network inputs (other keys are ignored). One Adam update of ``model``'s trainable
    variables on ``loss_fn(satellite_descriptors, ground_descriptors)``; with a
    ``LossScaleOptimizer`` the loss is scaled. ``strategy``: a tf.distribute strategy
    (default: the current one); with several replicas the loss is computed on the gathered
    global batch (module docstring) and equals the single-device loss. ``jit_compile``:
    compile the step with XLA. ``step.python_function`` runs the same step eagerly.
    """
    strategy = strategy or tf.distribute.get_strategy()
    replicas = strategy.num_replicas_in_sync
    variables = model.trainable_variables
    if not variables:
        raise ValueError(f"make_train_step: model {model.name!r} has no trainable variables")
    fused = uses_fused_adam(optimizer, strategy)
    if fused and not optimizer.built:
        optimizer.build(variables)

    def replica_step(batch):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            for var in variables:
                tape.watch(keras_internals.backend_variable(var))
            out = model({"satellite": batch["satellite"], "ground": batch["ground"]}, training=True)
            satellite, ground = out["satellite"], out["ground"]
            if replicas > 1:  # the whole global batch: the single-device loss and gradient
                satellite, ground = gather_global_batch(satellite), gather_global_batch(ground)
            loss = loss_fn(satellite, ground)
            scaled = loss if fused else optimizer.scale_loss(loss)
        grads = tape.gradient(scaled, [keras_internals.backend_variable(var) for var in variables])
        if fused:
            _fused_adam_apply(optimizer, grads, variables)
        else:
            optimizer.apply(grads, variables)
        return loss

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def step(batch):
        per_replica = strategy.run(replica_step, args=(batch,))
        # every replica computed the same global-batch loss: the mean is that loss
        return strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    return step
