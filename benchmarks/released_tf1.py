"""Run the released TF1 CVM-Net training graph (david-husx/crossview_localisation) under TF2.

Nothing of the released code is copied here: its files are read at run time from a clone
(``code_dir`` = the clone's ``src/CVM-Net`` folder, or the clone's root) and executed with
a shim that maps what TF2 lacks onto ``tf.compat.v1``:

- ``import tensorflow as tf`` inside those files gets a proxy whose attributes are
  ``tf.compat.v1``'s (graph mode, ``variable_scope``, ``get_variable``, placeholders,
  ``tf.log``, ``tf.diag_part``, ``keep_dims=``, ``dim=``, ``tf.train.AdamOptimizer``);
- ``tf.contrib.layers.xavier_initializer()`` -> ``tf.compat.v1.glorot_uniform_initializer()``
  (the same distribution: uniform, limit sqrt(6 / (fan_in + fan_out)));
- ``tensorflow.contrib.slim`` -> a stub whose ``batch_norm`` raises (CVM-Net builds NetVLAD
  with ``add_batch_norm=False``, so it is never called);
- ``input_data`` (needs OpenCV and the CVUSA files) -> a stub: the benchmark feeds arrays.

The graph is what ``train.py`` builds: placeholders ``sat_x``/``grd_x``/``keep_prob``/
``learning_rate``, ``cvm_net_I``/``cvm_net_II(sat_x, grd_x, keep_prob, is_training=True)``,
``compute_loss(sat_global, grd_global, 0)`` (weighted soft-margin triplet, alpha 10,
exhaustive), ``tf.train.AdamOptimizer(lr, 0.9, 0.999).minimize(loss, global_step)``, run
with ``allow_soft_placement=True`` (its ``/gpu:0``, ``/gpu:1`` pins fall back to the CPU)
and ``feed_dict`` per step, as the released loop does.

Call :func:`load_released` only in a process of its own: it switches TensorFlow to
graph mode (``tf.compat.v1.disable_eager_execution``) for the rest of the process.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import types

RELEASED_FILES = ("VGG.py", "loupe.py", "siamese_fc.py", "transnet_v2.py", "cvm_net.py", "train.py")


def find_code_dir(path: str) -> str:
    """The folder holding the released ``cvm_net.py`` etc.: ``path`` or ``path/src/CVM-Net``.

    Raises FileNotFoundError naming the flag ``--released_code_dir`` and the missing files.
    """
    for candidate in (path, os.path.join(path, "src", "CVM-Net")):
        if all(os.path.isfile(os.path.join(candidate, f)) for f in RELEASED_FILES):
            return candidate
    missing = [f for f in RELEASED_FILES if not os.path.isfile(os.path.join(path, f))]
    raise FileNotFoundError(
        f"--released_code_dir {path!r}: neither it nor its src/CVM-Net holds the released CVM-Net "
        f"files {RELEASED_FILES} (missing in {path!r}: {missing}); pass a clone of "
        "github.com/david-husx/crossview_localisation")


def _tf1_proxy(tf):
    """A module standing in for ``tensorflow`` inside the released files."""
    v1 = tf.compat.v1

    class _TF1(types.ModuleType):
        def __getattr__(self, name):
            return getattr(v1, name)

    def xavier_initializer(uniform=True, seed=None, dtype=tf.float32):
        if uniform:
            return v1.glorot_uniform_initializer(seed=seed, dtype=dtype)
        return v1.glorot_normal_initializer(seed=seed, dtype=dtype)

    def batch_norm(*args, **kwargs):
        raise NotImplementedError("released_tf1 shim: tf.contrib.slim.batch_norm is not shimmed "
                                  "(CVM-Net uses add_batch_norm=False)")

    proxy = _TF1("tensorflow")
    contrib = types.ModuleType("tensorflow.contrib")
    contrib.layers = types.SimpleNamespace(xavier_initializer=xavier_initializer)
    contrib.slim = types.ModuleType("tensorflow.contrib.slim")
    contrib.slim.batch_norm = batch_norm
    proxy.contrib = contrib
    return proxy, {"tensorflow": proxy, "tensorflow.contrib": contrib,
                   "tensorflow.contrib.slim": contrib.slim}


def load_released(code_dir: str) -> types.SimpleNamespace:
    """Import the released modules from ``code_dir`` with the TF1 shim.

    Returns a namespace with ``cvm_net`` (module: ``cvm_net_I``, ``cvm_net_II``) and
    ``train`` (module: ``compute_loss``, ``batch_size``, ``loss_weight``, ...).
    """
    code_dir = find_code_dir(code_dir)
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()
    proxy, fake = _tf1_proxy(tf)
    input_data = types.ModuleType("input_data")

    class InputData:  # noqa: D401 - stub
        def __init__(self, *a, **k):
            raise RuntimeError("released_tf1: the CVUSA reader is stubbed; the benchmark feeds arrays")

    input_data.InputData = InputData
    saved = {name: sys.modules.get(name) for name in fake}
    modules = {}
    try:
        sys.modules.update(fake)
        sys.modules["input_data"] = input_data
        for filename in RELEASED_FILES:
            name = filename[:-3]
            spec = importlib.util.spec_from_file_location(name, os.path.join(code_dir, filename))
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module  # cvm_net.py does `from VGG import VGG16`, ...
            spec.loader.exec_module(module)
            modules[name] = module
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return types.SimpleNamespace(code_dir=code_dir, **modules)


def build_training_session(released, model: str, satellite_shape, ground_shape, batch_size: int = 12,
                           learning_rate: float = 1e-5, keep_prob: float = 0.8, seed: int = 0):
    """The released training graph in a ``tf.compat.v1.Session``.

    Args:
        released: :func:`load_released`'s result.
        model: "cvm_net_i" or "cvm_net_ii".
        satellite_shape, ground_shape: (H, W) in pixels of the fed images.
        batch_size: pairs per step; ``compute_loss`` divides by ``B (B - 1)`` from the
            module global ``train.batch_size``, which is set to this.
    Returns:
        (step, info): ``step(satellite (B, Hs, Ws, 3) float32, ground (B, Hg, Wg, 3)
        float32) -> float loss`` runs one Adam update; info has the variable counts.
    """
    import numpy as np
    import tensorflow as tf

    v1 = tf.compat.v1
    builders = {"cvm_net_i": released.cvm_net.cvm_net_I, "cvm_net_ii": released.cvm_net.cvm_net_II}
    if model not in builders:
        raise ValueError(f"released_tf1: model must be one of {sorted(builders)}, got {model!r}")
    released.train.batch_size = batch_size
    graph = v1.Graph()
    with graph.as_default():
        v1.set_random_seed(seed)
        sat_x = v1.placeholder(tf.float32, [None, *satellite_shape, 3], name="sat_x")
        grd_x = v1.placeholder(tf.float32, [None, *ground_shape, 3], name="grd_x")
        keep_prob_ph = v1.placeholder(tf.float32)
        lr_ph = v1.placeholder(tf.float32)
        sat_global, grd_global = builders[model](sat_x, grd_x, keep_prob_ph, True)
        loss = released.train.compute_loss(sat_global, grd_global, 0)
        global_step = v1.Variable(0, trainable=False)
        with v1.name_scope("train"):
            train_op = v1.train.AdamOptimizer(lr_ph, 0.9, 0.999).minimize(loss, global_step=global_step)
        init = v1.global_variables_initializer()
        trainable = v1.trainable_variables()
        info = {"trainable_variables": len(trainable),
                "trainable_parameters": int(sum(np.prod(v.shape.as_list()) for v in trainable)),
                "all_variables": len(v1.global_variables())}
    config = v1.ConfigProto(log_device_placement=False, allow_soft_placement=True)
    sess = v1.Session(graph=graph, config=config)
    sess.run(init)

    def step(satellite, ground):
        _, value = sess.run([train_op, loss], feed_dict={sat_x: satellite, grd_x: ground,
                                                        keep_prob_ph: keep_prob, lr_ph: learning_rate})
        return float(value)

    return step, info
