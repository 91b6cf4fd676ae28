"""Training throughput and MFU of CVM-Net-I and II on one GPU, under KERAS_BACKEND=jax (run on demand).

The lent GPU machines have JAX (and numpy) but no TensorFlow and no package registry: the
wheels Keras needs are downloaded beforehand into ``.whl/`` (README, "GPU benchmark"), and
this script never imports TensorFlow. One command on the GPU machine, from the repository root:

    pip install --no-index --find-links .whl keras && python benchmarks/gpu_benchmark.py

Measured, at the paper's sizes (512x512 satellite, 224x1232 panorama, VGG16, K = 64, 4096-d
descriptors, conv1_1..conv3_3 frozen as released, weighted soft-margin triplet loss, Adam):
for each model, in float32 and in mixed precision (``mixed_bfloat16``: no loss scaling,
the right choice on Ampere / Hopper), training pairs/s at batch 12 (the released batch) and
at the largest batch that fits (predicted from XLA's memory analysis of the batch-12 step,
then compiled and run; 20 % smaller on an out-of-memory, at most 3 tries). Batches are
random uint8 pixels made on the device: the models take uint8 (their first layer,
``NetworkInput``, does the BGR / mean / cast on the GPU), as the training pipeline ships them.
Each step ends with ``float(loss)``, as the training loop.

MFU = achieved FLOP/s / the GPU's peak. FLOPs per pair = 2 x ``step_macs(model)["total"]``
(benchmarks/train_throughput.py: forward + the backward products of Conv2D / Dense /
NetVLAD, a lower bound of the step's arithmetic). Peaks are dense tensor-core figures per
GPU (:data:`PEAK_TFLOPS`: H100 / H200 SXM bf16 989, tf32 494 TFLOP/s): mixed precision is
compared with the bf16 peak, float32 with the tf32 peak (XLA runs float32 convolutions and
products on TF32 tensor cores by default on Ampere / Hopper). ``--peak_tflops`` overrides.

Budget: under 10 minutes on an H100 / H200 (``--budget_s``, default 540: variants that would
start later are skipped and listed). ``--smoke``: tiny sizes on the CPU in seconds (the test
tests/test_gpu_benchmark.py runs it), no MFU unless ``--peak_tflops`` is given.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time



def require_jax_backend() -> None:
    """Select Keras' JAX backend for this process (called by :func:`main` before Keras is
    imported; importing this module changes nothing, so a test process keeps its backend)."""
    if os.environ.setdefault("KERAS_BACKEND", "jax") != "jax":
        raise SystemExit(f"gpu_benchmark.py runs under KERAS_BACKEND=jax (got {os.environ['KERAS_BACKEND']!r})")
    os.environ.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.92")  # room for the largest-batch search

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

#: Dense peak TFLOP/s (bf16 / fp16 tensor cores, tf32 tensor cores) by GPU name substring,
#: first match wins (NVIDIA data sheets, without sparsity).
PEAK_TFLOPS = (
    ("H200", {"bf16": 989.0, "tf32": 494.0}),
    ("H100 PCIe", {"bf16": 756.0, "tf32": 378.0}),
    ("H100", {"bf16": 989.0, "tf32": 494.0}),
    ("GH200", {"bf16": 989.0, "tf32": 494.0}),
    ("A100", {"bf16": 312.0, "tf32": 156.0}),
    ("L40S", {"bf16": 362.0, "tf32": 183.0}),
    ("A10", {"bf16": 125.0, "tf32": 62.5}),
    ("L4", {"bf16": 121.0, "tf32": 60.0}),
)
PAPER = dict(satellite=(512, 512), ground=(224, 1232), width=1.0, num_clusters=64, descriptor_dim=4096)
SMOKE = dict(satellite=(32, 32), ground=(16, 64), width=0.0625, num_clusters=4, descriptor_dim=16)
PRECISIONS = {"float32": ("float32", "tf32"), "mixed": ("mixed_bfloat16", "bf16")}


def peak_for(device_name: str, kind: str, override: float | None):
    """(TFLOP/s, where it came from) or (None, why not)."""
    if override:
        return float(override), "--peak_tflops"
    for key, peaks in PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return peaks[kind], f"{key} {kind} dense"
    return None, f"no peak known for {device_name!r} (pass --peak_tflops)"


def build(model_name, precision, sizes):
    """(model, optimizer, loss_fn) under the Keras dtype policy ``precision``."""
    import keras

    from cvmnet_tf import losses, models

    keras.config.set_dtype_policy(precision)
    # (not keras.utils.set_random_seed: it imports TensorFlow when it is installed)
    model = models.build_model(model_name, satellite_shape=sizes["satellite"], ground_shape=sizes["ground"],
                               num_clusters=sizes["num_clusters"], descriptor_dim=sizes["descriptor_dim"],
                               width=sizes["width"])
    optimizer = keras.optimizers.Adam(learning_rate=1e-5, beta_1=0.9, beta_2=0.999)
    optimizer.build(model.trainable_variables)
    return model, optimizer, losses.get_loss("weighted_soft_margin_triplet")


def make_step(model, optimizer, loss_fn):
    """jit-compiled ``step(state, sat, grd) -> (loss, state)`` (state donated)."""
    import jax

    def compute_loss(trainable, non_trainable, sat, grd):
        out, non_trainable = model.stateless_call(trainable, non_trainable, {"satellite": sat, "ground": grd},
                                                  training=True)
        return loss_fn(out["satellite"], out["ground"]), non_trainable

    grad_fn = jax.value_and_grad(compute_loss, has_aux=True)

    def step(state, sat, grd):
        trainable, non_trainable, opt_vars = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, sat, grd)
        trainable, opt_vars = optimizer.stateless_apply(opt_vars, grads, trainable)
        return loss, (trainable, non_trainable, opt_vars)

    return jax.jit(step, donate_argnums=0)


def initial_state(model, optimizer):
    """Copies of the variables' values (the step donates its state: each measurement gets its own)."""
    import jax.numpy as jnp

    def values(variables):
        return [jnp.array(v.value, copy=True) for v in variables]
    return values(model.trainable_variables), values(model.non_trainable_variables), values(optimizer.variables)


def random_batch(batch, sizes, seed=0):
    """uint8 pixels made on the device."""
    import jax

    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    sat = jax.random.randint(k1, (batch, *sizes["satellite"], 3), 0, 256, dtype="int32").astype("uint8")
    grd = jax.random.randint(k2, (batch, *sizes["ground"], 3), 0, 256, dtype="int32").astype("uint8")
    return sat, grd


def is_oom(exc) -> bool:
    text = str(exc)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower() or "Out of memory" in text


def measure(jitted, model, optimizer, batch, sizes, min_seconds, max_steps):
    """Compile (AOT) and time steps at ``batch``. Returns dict (pairs/s, step ms, compile s,
    memory analysis), raising on an out-of-memory."""
    sat, grd = random_batch(batch, sizes)
    state = initial_state(model, optimizer)
    t0 = time.perf_counter()
    compiled = jitted.lower(state, sat, grd).compile()
    compile_s = time.perf_counter() - t0
    memory = None
    try:
        ma = compiled.memory_analysis()
        if ma is not None:
            memory = {k: int(getattr(ma, k)) for k in ("temp_size_in_bytes", "argument_size_in_bytes",
                                                       "output_size_in_bytes", "alias_size_in_bytes")}
    except (AttributeError, NotImplementedError, RuntimeError):
        pass
    loss, state = compiled(state, sat, grd)  # warm-up (first run allocates)
    loss = float(loss)
    steps, t0 = 0, time.perf_counter()
    while steps < max_steps and (steps < 3 or time.perf_counter() - t0 < min_seconds):
        loss, state = compiled(state, sat, grd)
        loss = float(loss)
        steps += 1
    wall = time.perf_counter() - t0
    if not math.isfinite(loss):
        raise FloatingPointError(f"non-finite loss {loss} at batch {batch}")
    del state
    return {"batch": batch, "pairs_per_s": batch * steps / wall, "step_ms": 1e3 * wall / steps, "steps": steps,
            "compile_s": compile_s, "memory": memory, "loss": loss}


def predicted_largest(at12: dict, device, multiple: int = 4):
    """The largest batch XLA's memory analysis of the batch-12 step predicts to fit, or None."""
    mem, stats = at12.get("memory"), None
    try:
        stats = device.memory_stats()
    except (AttributeError, RuntimeError):
        pass
    if not mem or not stats or not stats.get("bytes_limit"):
        return None
    per_pair = mem["temp_size_in_bytes"] / at12["batch"]
    fixed = mem["argument_size_in_bytes"] + mem["output_size_in_bytes"] - mem["alias_size_in_bytes"]
    usable = 0.9 * stats["bytes_limit"] - fixed
    return max(at12["batch"], int(usable // per_pair) // multiple * multiple) if per_pair > 0 else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU (seconds; the test's mode)")
    ap.add_argument("--models", default="cvm_net_i,cvm_net_ii")
    ap.add_argument("--precisions", default="mixed,float32", help="comma list of: mixed (bf16), float32")
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--max_batch", type=int, default=0,
                    help="largest batch to try (0: predicted from memory; smoke: 4); -1: skip the search")
    ap.add_argument("--min_seconds", type=float, default=3.0, help="timed seconds per measurement")
    ap.add_argument("--budget_s", type=float, default=540.0, help="skip measurements that would start later")
    ap.add_argument("--peak_tflops", type=float, default=None, help="override the GPU peak (one value for all)")
    ap.add_argument("--json", default=None, help="also write the results to this JSON file")
    ap.add_argument("--retrieval_queries", type=int, default=None,
                    help="queries (= database size) of the timed recall scan on JAX (default: CVACT_test's 92,802; "
                         "smoke: 512; 0: skip)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    require_jax_backend()

    if args.smoke:
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import keras

    from train_throughput import step_macs

    sizes = dict(SMOKE if args.smoke else PAPER)
    sizes["satellite"], sizes["ground"] = tuple(sizes["satellite"]), tuple(sizes["ground"])
    device = jax.devices()[0]
    name = getattr(device, "device_kind", str(device))
    print(f"device: {name} ({device.platform}), {jax.device_count()} device(s); jax {jax.__version__}, "
          f"keras {keras.__version__}, backend {keras.backend.backend()}")
    if not args.smoke and device.platform != "gpu":
        print("warning: no GPU visible to JAX: the figures below are the CPU's")
    for key in ("bf16", "tf32"):
        print(f"peak {key}: " + "%s TFLOP/s (%s)" % peak_for(name, key, args.peak_tflops))
    print(f"sizes: satellite {sizes['satellite']}, ground {sizes['ground']}, width {sizes['width']}, "
          f"K {sizes['num_clusters']}, dim {sizes['descriptor_dim']}")

    results, skipped = [], []
    for precision in args.precisions.split(","):
        policy, peak_kind = PRECISIONS[precision]
        for model_name in args.models.split(","):
            label = f"{model_name} {policy}"
            if time.perf_counter() - t_start > args.budget_s:
                skipped.append(label)
                continue
            model, optimizer, loss_fn = build(model_name, policy, sizes)
            flops_per_pair = 2 * step_macs(model)["total"]
            jitted = make_step(model, optimizer, loss_fn)
            peak, _ = peak_for(name, peak_kind, args.peak_tflops)

            def record(r, what):
                r.update(model=model_name, precision=policy, what=what, gflop_per_pair=flops_per_pair / 1e9,
                         tflops=r["pairs_per_s"] * flops_per_pair / 1e12)
                r["mfu"] = r["tflops"] / peak if peak else None
                results.append(r)
                print(f"{label:28s} {what:8s} {r['batch']:4d}: {r['pairs_per_s']:8.1f} pairs/s, "
                      f"{r['step_ms']:8.1f} ms/step, {r['tflops']:7.3g} TFLOP/s, MFU "
                      + (f"{100 * r['mfu']:.1f} % of {peak_kind}" if peak else "n/a")
                      + f" (compile {r['compile_s']:.0f} s)", flush=True)

            at12 = measure(jitted, model, optimizer, args.batch, sizes, args.min_seconds, 200)
            record(at12, "batch")  # the released batch
            if args.max_batch < 0:
                continue
            if time.perf_counter() - t_start > args.budget_s:
                skipped.append(label + " largest batch")
                continue
            target = args.max_batch or (4 if args.smoke else predicted_largest(at12, device))
            tries = 0
            while target and target > args.batch and tries < 3:
                tries += 1
                try:
                    record(measure(jitted, model, optimizer, target, sizes, args.min_seconds, 100), "largest")
                    break
                except Exception as exc:  # noqa: BLE001 - XlaRuntimeError has no stable import path
                    if not is_oom(exc):
                        raise
                    print(f"{label}: batch {target} does not fit, trying {int(target * 0.8)}", flush=True)
                    target = int(target * 0.8) // 4 * 4
            if target is None:
                print(f"{label}: no memory analysis on this device: pass --max_batch to search", flush=True)
            jax.clear_caches()

    retrieval = None
    n_ret = args.retrieval_queries if args.retrieval_queries is not None else (512 if args.smoke else 92802)
    if n_ret and time.perf_counter() - t_start <= args.budget_s:
        from cvmnet_tf.evaluation.metrics import benchmark_retrieval

        retrieval = benchmark_retrieval(num_query=n_ret, dim=64 if args.smoke else 4096, device="jax")
        print(f"retrieval (blocked recall scan, float32, same tie rule as NumPy): {retrieval['num_query']} x "
              f"{retrieval['num_database']} x {retrieval['dim']} on {retrieval['device']}: {retrieval['seconds']:.1f} s, "
              f"{retrieval['tflop']:.1f} TFLOP, {retrieval['tflop_per_s']:.1f} TFLOP/s "
              + ("" if args.smoke else "(NumPy/BLAS on a 2-core CPU: about 500 s at CVACT_test's size)"), flush=True)
    elif n_ret:
        skipped.append("retrieval")

    per_pair = {r["model"]: r["gflop_per_pair"] for r in results}
    print("FLOPs per training pair (2 x step_macs, a lower bound): "
          + ", ".join(f"{m} {g:.4g} GFLOP" for m, g in per_pair.items()))
    print("paper (Hu et al. 2018): ~10 pairs/s on 2x GTX 1080 Ti; target: >= 400 pairs/s on one H100/H200 "
          "in mixed precision")
    if skipped:
        print("skipped (time budget): " + "; ".join(skipped))
    print("TensorFlow imported: " + ("yes (it should not be)" if "tensorflow" in sys.modules else "no"))
    print(f"total {time.perf_counter() - t_start:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"device": name, "sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in sizes.items()},
                       "results": results, "retrieval": retrieval, "skipped": skipped}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
