"""cvmnet_tf.training.step under tf.distribute: one step on 2 replicas (the CPU split into 2
logical devices, in a process of its own: tests/distribute_harness.py) equals one device on
the same global batch, for every loss (hard mining included), float32 and mixed_float16;
cvmnet_tf.training.distribute's strategy choice and TF_CONFIG checks.

Tolerances (the update vectors are compared as wholes, ``|dw_a - dw_b| / |dw_a|`` in the
2-norm: single gradients, e.g. a bias behind the l2 normalisation, are near-cancelling sums
whose own relative error says nothing):

- mirrored vs "halves" (one device evaluating the network on each replica's half of the batch,
  the loss on the concatenated descriptors): the same kernels on the same per-replica batch
  sizes; only the order in which the backward pass accumulates may differ, so the bound is
  float32's: ``eps32 * sqrt(N)`` with N = 8 * 32 * 32 = 8192, the longest reduction (a
  first-layer kernel gradient sums over every pixel of the batch): 1.1e-5, in both precisions
  (mixed precision accumulates in float32 too). Losses: equal to a few roundings.
- mirrored vs one device on the whole batch: the kernels now run on batches of 4 instead of 8
  (oneDNN / Eigen block them differently), so every layer's rounding differs: float32:
  ``2 * eps32 * sqrt(N * D)`` (two roundings per multiply-add, D = 32 weight layers of the two
  branches in sequence before the loss): 1.2e-4; mixed_float16 (activations rounded to float16
  after every layer, accumulation in float32): ``2 * 2**-11 * sqrt(D)`` = 5.5e-3.
A per-replica loss (B / R - 1 negatives) or a gradient scaled by 1 / R is off by O(1).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPS32 = float(np.finfo(np.float32).eps)
N_REDUCED = 8 * 32 * 32          # batch x satellite pixels (ground: 8 x 16 x 64, the same)
DEPTH = 2 * 16                   # weight layers: 13 convs + NetVLAD + FC per branch, two branches
RTOL_HALVES = EPS32 * np.sqrt(N_REDUCED)
RTOL_SINGLE = {"float32": 2 * EPS32 * np.sqrt(N_REDUCED * DEPTH), "mixed": 2 * 2.0 ** -11 * np.sqrt(DEPTH)}

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from distribute_harness import CASES  # noqa: E402  (imports nothing of TensorFlow's device set-up)

KEYS = [f"{case}-{precision}-eager" for precision in ("float32", "mixed") for case in CASES] + [
    f"weighted_soft_margin_triplet-{precision}-compiled" for precision in ("float32", "mixed")]


@pytest.fixture(scope="module")
def steps(tmp_path_factory):
    out = tmp_path_factory.mktemp("distribute") / "steps.npz"
    proc = subprocess.run([sys.executable, os.path.join(REPO, "tests", "distribute_harness.py"), str(out)],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    with np.load(out) as data:
        results = {k: data[k] for k in data.files}
    yield results
    summary = {}
    for key in KEYS:
        diffs = [np.abs(results[k[:-len("single")] + "mirrored"].astype(np.float64) - results[k]).max()
                 for k in results if k.startswith(key + "/w") and k.endswith("/single")]
        summary[key] = float(max(diffs))
    print("\nmax |w_mirrored - w_single| per case:", json.dumps(summary, indent=1))


def updates(results, key, which):
    before = [results[k] for k in sorted(results) if k.startswith(key + "/w") and k.endswith("/before")]
    after = [results[k.replace("/before", f"/{which}")] for k in sorted(results)
             if k.startswith(key + "/w") and k.endswith("/before")]
    return np.concatenate([(a.astype(np.float64) - b).ravel() for a, b in zip(after, before)])


def relative(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.mark.parametrize("key", KEYS)
def test_two_replicas_equal_one_device_on_the_global_batch(steps, key):
    precision = key.split("-")[1]
    single, mirrored, halves = steps[f"{key}/loss"]
    assert mirrored == pytest.approx(single, rel=RTOL_SINGLE[precision])
    dw_single, dw_mirrored = updates(steps, key, "single"), updates(steps, key, "mirrored")
    assert np.linalg.norm(dw_single) > 0
    assert relative(dw_mirrored, dw_single) <= RTOL_SINGLE[precision], key
    if key.endswith("-eager"):
        assert abs(mirrored - halves) <= 4 * EPS32 * abs(halves)
        assert relative(dw_mirrored, updates(steps, key, "halves")) <= RTOL_HALVES, key


def test_the_bounds_can_fail(steps):
    """The bounds are far below the O(1) errors of the conventions they guard against: a
    gradient scaled by 1 / R (the per-replica-loss convention, loss / R, applied to the gathered
    loss) is off by 0.5 in relative norm, 90x the mixed-precision bound and 4,000x float32's."""
    key = "weighted_soft_margin_triplet-float32-eager"
    dw = updates(steps, key, "single")
    assert relative(0.5 * dw, dw) > 50 * RTOL_SINGLE["mixed"]
    assert relative(0.5 * dw, dw) > 1000 * RTOL_SINGLE["float32"]


# ------------------------------------------------------------------ strategy choice, TF_CONFIG
def test_read_tf_config_accepts_the_standard_form():
    from cvmnet_tf.training.distribute import read_tf_config

    spec = {"cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]}, "task": {"type": "worker", "index": 1}}
    assert read_tf_config({"TF_CONFIG": json.dumps(spec)}) == spec


@pytest.mark.parametrize("value, pattern", [
    (None, "is not set"),
    ("{not json", "is not JSON"),
    ('{"task": {"type": "worker", "index": 0}}', "no \"cluster\""),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "\"task\" must be"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "task index 1"),
    ('{"cluster": {"worker": ["nohostport"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
])
def test_read_tf_config_refuses_in_one_line(value, pattern):
    from cvmnet_tf.training.distribute import TfConfigError, read_tf_config

    with pytest.raises(TfConfigError, match=pattern) as info:
        read_tf_config({} if value is None else {"TF_CONFIG": value})
    assert "\n" not in str(info.value) and "TF_CONFIG" in str(info.value)


def test_strategy_choices_on_one_cpu():
    import tensorflow as tf

    from cvmnet_tf.training import distribute
    from cvmnet_tf.training.config import TrainConfig

    assert TrainConfig().strategy == "auto"
    auto = distribute.make_strategy("auto")
    assert auto.num_replicas_in_sync == 1 and distribute.is_chief(auto)
    assert not distribute.is_multi_worker(auto)
    if not tf.config.list_logical_devices("GPU"):
        assert auto is tf.distribute.get_strategy()  # the default strategy: the fused Adam step
    with pytest.raises(ValueError, match="choose one of auto, mirrored, multi_worker"):
        distribute.make_strategy("tpu")


def test_multi_worker_without_tf_config_fails_before_any_work(tmp_path, monkeypatch):
    from cvmnet_tf.training import make_config, train
    from cvmnet_tf.training.distribute import TfConfigError

    monkeypatch.delenv("TF_CONFIG", raising=False)
    config = make_config("cpu_demo", data_dir=str(tmp_path / "nodata"), output_dir=str(tmp_path / "out"),
                         strategy="multi_worker", verbose=0)
    with pytest.raises(TfConfigError, match="TF_CONFIG environment variable is not set"):
        train(config)
    assert not os.path.exists(tmp_path / "out")
