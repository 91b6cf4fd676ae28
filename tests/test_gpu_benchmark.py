"""benchmarks/gpu_benchmark.py: its --smoke mode runs under KERAS_BACKEND=jax without
TensorFlow (the lent GPU machines have none); skipped where JAX is not installed."""
import os
import subprocess
import sys

import pytest

pytest.importorskip("jax")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


def _env():
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_smoke_runs_under_jax_without_tensorflow():
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_benchmark.py"), "--smoke",
                           "--models", "cvm_net_i", "--precisions", "mixed", "--batch", "2", "--max_batch", "-1",
                           "--min_seconds", "0.1", "--peak_tflops", "1"],
                          env=_env(), capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "backend jax" in out and "TensorFlow imported: no" in out, out
    line = next(ln for ln in out.splitlines() if ln.startswith("cvm_net_i mixed_bfloat16"))
    assert "pairs/s" in line and "MFU" in line and "% of bf16" in line, line


def test_peak_table_and_largest_batch_prediction():
    before = os.environ.get("KERAS_BACKEND")
    import gpu_benchmark as gb

    assert os.environ.get("KERAS_BACKEND") == before  # importing it must not switch this process's backend

    assert gb.peak_for("NVIDIA H200", "bf16", None)[0] == 989.0
    assert gb.peak_for("NVIDIA H100 80GB HBM3", "tf32", None)[0] == 494.0
    assert gb.peak_for("NVIDIA H100 PCIe", "bf16", None)[0] == 756.0
    assert gb.peak_for("cpu", "bf16", None)[0] is None and gb.peak_for("cpu", "bf16", 5.0)[0] == 5.0

    class Device:
        def memory_stats(self):
            return {"bytes_limit": 100 * 2 ** 30}

    # 12 pairs use 12 GiB of temporaries, 10 GiB of arguments: (0.9 * 100 - 10) / 1 = 80 pairs
    at12 = {"batch": 12, "memory": {"temp_size_in_bytes": 12 * 2 ** 30, "argument_size_in_bytes": 10 * 2 ** 30,
                                    "output_size_in_bytes": 10 * 2 ** 30, "alias_size_in_bytes": 10 * 2 ** 30}}
    assert gb.predicted_largest(at12, Device()) == 80
    assert gb.predicted_largest({"batch": 12, "memory": None}, Device()) is None


def test_models_and_losses_import_without_tensorflow_under_jax():
    code = ("import sys; from cvmnet_tf import layers, losses, models; "
            "m = models.build_model('cvm_net_ii', satellite_shape=(16, 16), ground_shape=(8, 32), width=0.0625, "
            "num_clusters=2, descriptor_dim=4); print('tf' if 'tensorflow' in sys.modules else 'no tf')")
    proc = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=300,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("no tf"), proc.stdout
