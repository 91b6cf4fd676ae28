"""The training loop on several replicas and several worker processes (issue 17), end to end
through ``setup`` / ``run_epoch`` / ``record_epoch`` (tests/train_harness.py, one process each):

- ``--strategy=mirrored`` on the CPU split into 2 logical devices equals one device on the
  same global batches (2 steps of batch 8);
- ``--strategy=multi_worker``: two worker processes on this machine talking over 127.0.0.1
  (ports chosen free at run time; both bounded in time and killed by the test): after 2 steps
  both workers hold the weights of the single-process run; only the chief writes the run
  folder; a second launch with ``--resume`` continues both from the chief's checkpoint and
  after 2 more steps again equals the single-process run of 2 epochs.

Tolerance: the replicas run the network on batches of 4 instead of 8, so oneDNN blocks every
layer differently; the relative difference of the whole weight-update vector (2-norm) is
bounded by float32's ``2 * eps32 * sqrt(N * D)`` per step (N = 8 * 32 * 32 products in the
longest reduction, D = 32 weight layers in sequence; tests/test_distribute.py), doubled for
two Adam steps: 2.4e-4. Adam normalises the update (m / sqrt(v)), so a wrong loss (B / R - 1
negatives) or a gradient scaled by 1 / R changes the update by O(1e-2 .. 1), far outside.
"""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS = os.path.join(REPO, "tests", "train_harness.py")
EPS32 = float(np.finfo(np.float32).eps)
RTOL_STEPS = 2 * 2 * EPS32 * np.sqrt(8 * 32 * 32 * 32)
TIMEOUT_S = 420


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def env(tf_config=None):
    e = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    e.pop("TF_CONFIG", None)
    if tf_config is not None:
        e["TF_CONFIG"] = json.dumps(tf_config)
    return e


def run_one(args, tf_config=None):
    proc = subprocess.run([sys.executable, HARNESS, *args], capture_output=True, text=True, timeout=TIMEOUT_S,
                          cwd=REPO, env=env(tf_config))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def run_workers(tmp_path, name, output_dir, data_dir, epochs, resume=False, stop_after=None):
    """Two multi_worker processes; returns their npz prefixes. Both are killed if one fails
    or the time runs out."""
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs, prefixes = [], []
    try:
        for index in range(2):
            prefix = str(tmp_path / f"{name}_w{index}")
            prefixes.append(prefix)
            args = [prefix, data_dir, output_dir, "multi_worker", str(epochs)] + (["--resume"] if resume else []) + (
                [f"--stop_after={stop_after}"] if stop_after else [])
            log = open(tmp_path / f"{name}_w{index}.log", "w")
            procs.append((subprocess.Popen([sys.executable, HARNESS, *args], stdout=log, stderr=subprocess.STDOUT,
                                           cwd=REPO, env=env({"cluster": cluster,
                                                              "task": {"type": "worker", "index": index}})), log))
        for index, (proc, log) in enumerate(procs):
            rc = proc.wait(timeout=TIMEOUT_S)
            log.close()
            text = open(tmp_path / f"{name}_w{index}.log").read()
            assert rc == 0, f"worker {index} exited {rc}:\n{text[-4000:]}"
            assert "replicas 2" in text, text[-2000:]
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
            log.close()
    return prefixes


def weights(prefix, epoch):
    with np.load(f"{prefix}_epoch{epoch}.npz") as z:
        keys = sorted(k for k in z.files if k.startswith("w"))
        return [z[k].astype(np.float64) for k in keys], z["losses"], int(z["replicas"])


def relative_update(prefix, reference, epoch, start_epoch=0):
    w0, _, _ = weights(reference, start_epoch)
    wa, _, _ = weights(prefix, epoch)
    wb, _, _ = weights(reference, epoch)
    da = np.concatenate([(a - s).ravel() for a, s in zip(wa, w0)])
    db = np.concatenate([(b - s).ravel() for b, s in zip(wb, w0)])
    assert np.linalg.norm(db) > 0
    max_abs = max(float(np.abs(a - b).max()) for a, b in zip(wa, wb))
    return float(np.linalg.norm(da - db) / np.linalg.norm(db)), max_abs


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from cvmnet_tf.data.synthetic import write_dataset

    root = tmp_path_factory.mktemp("multi_worker")
    data = str(root / "data")
    write_dataset(data, "cvusa", 64, 16, seed=0, satellite_size=(32, 32), ground_size=(16, 64), workers=1)
    single = str(root / "single")
    run_one([single, data, str(root / "run_single"), "auto", "2"])
    return root, data, single


@pytest.mark.slow
def test_mirrored_on_two_cpu_devices_equals_one_device(world):
    root, data, single = world
    prefix = str(root / "mirrored")
    run_one([prefix, data, str(root / "run_mirrored"), "mirrored", "2", "--split_cpu", "--stop_after=1"])
    _, losses, replicas = weights(prefix, 1)
    _, losses_single, _ = weights(single, 1)
    assert replicas == 2
    rel, max_abs = relative_update(prefix, single, 1)
    print(f"\nmirrored (2 CPU devices) vs one device after 2 steps: relative update difference {rel:.2e}, "
          f"max |w diff| {max_abs:.2e}")
    assert rel <= RTOL_STEPS
    np.testing.assert_allclose(losses, losses_single, rtol=RTOL_STEPS)


@pytest.mark.slow
def test_two_workers_equal_one_process_and_resume_from_the_chiefs_checkpoint(world):
    root, data, single = world
    output_dir = str(root / "run_workers")
    prefixes = run_workers(root, "mw", output_dir, data, epochs=2, stop_after=1)
    for index, prefix in enumerate(prefixes):
        rel, max_abs = relative_update(prefix, single, 1)
        print(f"\nworker {index} vs one process after 2 steps: relative update difference {rel:.2e}, "
              f"max |w diff| {max_abs:.2e}")
        assert rel <= RTOL_STEPS, index
    # both workers hold the same weights: the collective all-reduce gives every worker the same update
    wa, _, _ = weights(prefixes[0], 1)
    wb, _, _ = weights(prefixes[1], 1)
    assert max(float(np.abs(a - b).max()) for a, b in zip(wa, wb)) == 0.0
    # only the chief wrote: one run folder with checkpoints 0 and 1 and one recall line per epoch
    model_dir = os.path.join(output_dir, "Model", "cvm_net_i")
    assert sorted(os.listdir(model_dir)) == ["0", "1"]
    with open(os.path.join(output_dir, "Result", "cvm_net_i_accuracy.txt")) as f:
        assert len(f.read().splitlines()) == 1
    leftovers = [n for n in os.listdir(output_dir) if "tmp" in n]
    assert not leftovers, leftovers

    # resume: both workers start from the chief's epoch-1 checkpoint and train epoch 2
    prefixes = run_workers(root, "mw_resume", output_dir, data, epochs=2, resume=True)
    for index, prefix in enumerate(prefixes):
        w_start, _, _ = weights(prefix, 1)
        w_single, _, _ = weights(single, 1)
        w_chief, _, _ = weights(str(root / "mw_w0"), 1)
        assert max(float(np.abs(a - b).max()) for a, b in zip(w_start, w_chief)) == 0.0, index
        rel, max_abs = relative_update(prefix, single, 2, start_epoch=0)
        print(f"worker {index} after resume, 4 steps in all, vs one process: relative update difference "
              f"{rel:.2e}, max |w diff| {max_abs:.2e}")
        assert rel <= 2 * RTOL_STEPS, index
    with open(os.path.join(output_dir, "Result", "cvm_net_i_accuracy.txt")) as f:
        assert len(f.read().splitlines()) == 2
