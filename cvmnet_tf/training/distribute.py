"""tf.distribute strategies of the training loop: which one to use, who writes, how the input
is split (TensorFlow).

``--strategy`` (:data:`STRATEGIES`):

- ``auto``: ``MirroredStrategy`` over all GPUs when TensorFlow sees several, else the default
  (one device) strategy.
- ``mirrored``: ``MirroredStrategy`` over every GPU of this machine; without GPUs over its
  logical CPU devices (one, unless the process split the CPU with
  ``tf.config.set_logical_device_configuration``, as the tests do).
- ``multi_worker``: ``MultiWorkerMirroredStrategy`` across the machines (tasks) named in
  the standard ``TF_CONFIG`` environment variable (:func:`read_tf_config`); every task runs
  the same command. Only the chief (task ``chief``, else ``worker`` 0) writes anything.

Global batch: ``--batch_size`` is the global batch of one step, split over all replicas
of all workers (``batch_size / num_replicas_in_sync`` pairs each; it must divide). The
training step gathers the replicas' descriptors, so the loss is the single-device loss of
the whole global batch (:mod:`cvmnet_tf.training.step`).

Input under ``multi_worker`` (:func:`distribute_dataset`): tf.data's ``DATA`` auto-shard
policy: each worker runs the same, seeded pipeline and keeps its replicas' slices of every
global batch, so the global batches are exactly the single-process ones (class-unique
University-1652 and overlap-free VIGOR blocks included: the loss sees the whole block) and a
skipped unreadable image shifts every worker alike. The price: each worker reads and
decodes every image of the global batch (not only its slice).
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

__all__ = ["STRATEGIES", "TfConfigError", "read_tf_config", "make_strategy", "is_multi_worker", "is_chief",
           "num_workers", "distribute_dataset", "global_values", "worker_values", "barrier"]

#: The ``--strategy`` choices (module docstring).
STRATEGIES = ("auto", "mirrored", "multi_worker")


class TfConfigError(ValueError):
    """``--strategy=multi_worker`` with a missing or malformed ``TF_CONFIG``."""


def read_tf_config(environ=None) -> dict:
    """The parsed ``TF_CONFIG`` (``{"cluster": {"worker": ["host:port", ...], ["chief": [...]]},
    "task": {"type": "worker", "index": i}}``); :class:`TfConfigError` (one line) when it is
    missing, not JSON, or names a task that is not in the cluster."""
    environ = os.environ if environ is None else environ
    where = "--strategy=multi_worker: the TF_CONFIG environment variable"
    text = environ.get("TF_CONFIG", "")
    if not text.strip():
        raise TfConfigError(f"{where} is not set; set it on every machine, e.g. TF_CONFIG='{{\"cluster\": "
                            "{\"worker\": [\"host1:12345\", \"host2:12345\"]}, \"task\": {\"type\": \"worker\", "
                            "\"index\": 0}}' (README, several machines)")
    try:
        spec = json.loads(text)
    except ValueError as exc:
        raise TfConfigError(f"{where} is not JSON ({exc})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("cluster"), dict):
        raise TfConfigError(f"{where} has no \"cluster\" object")
    cluster = spec["cluster"]
    for kind, hosts in cluster.items():
        if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) and ":" in h for h in hosts):
            raise TfConfigError(f"{where}: cluster[{kind!r}] must be a non-empty list of \"host:port\" strings, "
                                f"got {hosts!r}")
    if "worker" not in cluster and "chief" not in cluster:
        raise TfConfigError(f"{where}: the cluster has neither \"worker\" nor \"chief\" tasks")
    task = spec.get("task")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise TfConfigError(f"{where}: \"task\" must be {{\"type\": one of {sorted(cluster)}, \"index\": i}}, "
                            f"got {task!r}")
    index = task.get("index")
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(cluster[task["type"]]):
        raise TfConfigError(f"{where}: task index {index!r} is not in 0 .. {len(cluster[task['type']]) - 1} "
                            f"(the {task['type']!r} list)")
    return spec


def make_strategy(name: str = "auto"):
    """The tf.distribute strategy ``--strategy=name`` asks for (module docstring). Create it
    before any other TensorFlow work of the process (``multi_worker`` configures the
    collective ops of the TensorFlow runtime)."""
    if name not in STRATEGIES:
        raise ValueError(f"--strategy={name!r}: choose one of {', '.join(STRATEGIES)}")
    if name == "multi_worker":
        read_tf_config()
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored":
        devices = gpus or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_multi_worker(strategy) -> bool:
    """True for a strategy spanning several worker processes."""
    return num_workers(strategy) > 1


def num_workers(strategy) -> int:
    """Worker processes taking part in every step (1 unless ``multi_worker``)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None:
        return 1
    spec = resolver.cluster_spec().as_dict()
    return max(1, len(spec.get("worker", [])) + len(spec.get("chief", [])))


def is_chief(strategy) -> bool:
    """True in the process that writes checkpoints, result files and logs: always, except on
    the non-chief workers of a multi-worker strategy."""
    return bool(strategy.extended.should_checkpoint)


def distribute_dataset(strategy, dataset):
    """``dataset`` (batched with the global batch) as the strategy's per-replica input; the
    dataset itself for a single replica. Multi-worker: ``DATA`` auto-sharding (module
    docstring)."""
    if strategy.num_replicas_in_sync == 1:
        return dataset
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return strategy.experimental_distribute_dataset(dataset.with_options(options))


def global_values(strategy, value) -> np.ndarray:
    """The rows of a per-replica ``value`` (e.g. a batch's "index") of the whole global batch,
    as NumPy, concatenated along axis 0 (a collective under ``multi_worker``: every worker
    must call it)."""
    if strategy.num_replicas_in_sync == 1:
        return np.asarray(value)
    if is_multi_worker(strategy):
        return np.asarray(strategy.gather(value, axis=0))
    return np.concatenate([np.asarray(t) for t in strategy.experimental_local_results(value)])


def worker_values(strategy, value: int) -> np.ndarray:
    """int64 (num_replicas_in_sync,): this process's integer ``value`` as every replica of every
    worker holds it (a collective under ``multi_worker``; ``[value]`` otherwise)."""
    if not is_multi_worker(strategy):
        return np.asarray([value], np.int64)
    per_replica = strategy.run(lambda: tf.constant([int(value)], tf.int64))
    return np.asarray(strategy.gather(per_replica, axis=0))


def barrier(strategy) -> None:
    """Return once every worker got here (a collective; immediate with one worker). Used so
    that no worker reads the run folder or the data while the chief writes them."""
    worker_values(strategy, 0)
