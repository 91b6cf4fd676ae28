"""Training throughput of CVM-Net: the released TF1 graph vs this package (run on demand; not a test).

One training step = one Adam update (lr 1e-5, betas 0.9/0.999) on a batch of
``--batch_size`` pairs (12, as released) with the weighted soft-margin triplet loss
(alpha 10, exhaustive), VGG16 conv1_1..conv3_3 frozen, dropout 0.2 on the trained layers.
Variants (each in its own subprocess, so peak RSS is per variant and TF1 graph mode
does not leak into the others):

  released  (a) the released TF1 graph (github david-husx/crossview_localisation,
            src/CVM-Net) read from ``--released_code_dir`` at run time and run under
            tf.compat.v1 with a shim (benchmarks/released_tf1.py), fed by feed_dict as
            its train.py; skipped with a message when no clone is given.
  eager     (b) this package, cvmnet_tf.training.step's step run eagerly (python_function).
  compiled  (c) the same step as the training loop runs it (tf.function).
  xla       (d) tf.function(jit_compile=True).
  pipeline  (e) (c) fed by the real tf.data input pipeline (make_pair_dataset, training
            augmentation) from CVUSA-layout JPEGs on disk (750x750 satellite, 1232x224
            panoramas of smooth noise, written once to ``--data_dir`` or a temp folder).
  jax       optional: the model under KERAS_BACKEND=jax, jax.jit (stateless_call).
  bf16      (f) (c) under Keras' mixed_bfloat16 policy (no loss scaling; float32 variables,
            NetVLAD and loss), whatever --precision says: the issue-17 target is >= 1.5x the
            released graph's pairs/s at --image_size half on a CPU with AMX or AVX512_BF16.
            The CPU model and its bf16 flags (/proc/cpuinfo) are printed first; on a CPU
            with neither, bf16 is emulated and the target does not apply (said so).

(b)-(d) and jax reuse one batch held in memory. Every step ends with ``float(loss)`` (as
the training loop). ``--warmup`` steps (tracing/compilation) are excluded; the median of
``--windows`` timed windows of ``--steps`` steps is reported (with ``--rounds`` > 1 the
whole variant list runs again in reversed order and all windows are pooled), with the
subprocess' peak RSS and pairs/s relative to the released graph. The load average is
printed before and after: the machine may be shared.

    python benchmarks/train_throughput.py --released_code_dir /path/to/crossview_localisation \
        --image_size half --models cvm_net_i,cvm_net_ii
    python benchmarks/train_throughput.py --released_code_dir ... --image_size paper \
        --warmup 1 --windows 2 --steps 1 --variants released,compiled,pipeline
    python benchmarks/train_throughput.py --released_code_dir ... --variants released,compiled,bf16
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

VARIANTS = ("released", "eager", "compiled", "xla", "pipeline", "jax", "bf16")
LABELS = {"released": "(a) released TF1 graph", "eager": "(b) eager", "compiled": "(c) tf.function",
          "xla": "(d) tf.function + XLA", "pipeline": "(e) (c) + tf.data from JPEGs", "jax": "JAX jit",
          "bf16": "(f) (c) in mixed_bfloat16"}
#: The bf16 target of issue 17 (pairs/s of (f) over (a), same run).
BF16_TARGET = 1.5


def peak_rss_mib() -> float:
    """Peak resident set size of this process in MiB (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ----------------------------------------------------------------------------- child side

def _random_batch(batch_size, sizes, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    sat = rng.normal(0, 50, (batch_size, *sizes[0], 3)).astype(np.float32)
    grd = rng.normal(0, 50, (batch_size, *sizes[1], 3)).astype(np.float32)
    return sat, grd


def _time_steps(run_one, spec):
    """Run warm-up then timed windows; returns dict of timings. ``run_one()`` -> float loss."""
    import math

    t0 = time.perf_counter()
    loss = run_one()
    first = time.perf_counter() - t0
    for _ in range(spec["warmup"] - 1):
        loss = run_one()
    window_s = []
    for _ in range(spec["windows"]):
        t0 = time.perf_counter()
        for _ in range(spec["steps"]):
            loss = run_one()
        window_s.append(time.perf_counter() - t0)
    if not math.isfinite(loss):
        raise FloatingPointError(f"{spec['variant']} {spec['model']}: non-finite loss {loss}")
    return {"first_step_s": first, "window_s": window_s, "loss": loss}


def _child_released(spec):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import released_tf1

    released = released_tf1.load_released(spec["released_code_dir"])
    sizes = spec["sizes"]
    t0 = time.perf_counter()
    step, info = released_tf1.build_training_session(released, spec["model"], sizes[0], sizes[1],
                                                     spec["batch_size"])
    build_s = time.perf_counter() - t0
    sat, grd = _random_batch(spec["batch_size"], sizes)
    result = _time_steps(lambda: step(sat, grd), spec)
    result.update(build_s=build_s, **info)
    return result


def _build_ours(spec):
    import keras

    from cvmnet_tf import losses, models

    policy = "mixed_bfloat16" if spec["variant"] == "bf16" else spec["precision"]
    keras.mixed_precision.set_global_policy(policy)
    keras.utils.set_random_seed(0)
    sizes = spec["sizes"]
    model = models.build_model(spec["model"], satellite_shape=tuple(sizes[0]), ground_shape=tuple(sizes[1]),
                               num_clusters=spec["num_clusters"], descriptor_dim=spec["descriptor_dim"],
                               width=spec["width"])
    optimizer = keras.optimizers.Adam(learning_rate=1e-5, beta_1=0.9, beta_2=0.999)
    if policy == "mixed_float16":  # loss scaling for float16 only (bfloat16 has float32's range)
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    loss_fn = losses.get_loss("weighted_soft_margin_triplet")
    info = {"trainable_variables": len(model.trainable_variables),
            "trainable_parameters": int(sum(int(v.numpy().size) for v in model.trainable_variables))}
    return model, optimizer, loss_fn, info


def write_jpeg_dataset(data_dir, num_pairs, seed=0):
    """CVUSA-layout JPEGs (bingmap/19 750x750, streetview/panos 1232x224, splits/train-19zl.csv)
    of smooth noise (compressible like photographs), ``num_pairs`` pairs. Returns data_dir."""
    import numpy as np
    from PIL import Image

    csv = os.path.join(data_dir, "splits", "train-19zl.csv")
    if os.path.isfile(csv):
        with open(csv) as f:
            if sum(1 for _ in f) >= num_pairs:
                return data_dir
    rng = np.random.default_rng(seed)
    for sub in ("splits", "bingmap/19", "streetview/panos"):
        os.makedirs(os.path.join(data_dir, sub), exist_ok=True)

    def smooth(h, w):
        small = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
        big = Image.fromarray(small).resize((w, h), Image.BILINEAR)
        noise = rng.integers(-12, 13, (h, w, 3))
        return Image.fromarray(np.clip(np.asarray(big, np.int32) + noise, 0, 255).astype(np.uint8))

    lines = []
    for i in range(num_pairs):
        sat, grd = f"bingmap/19/{i:07d}.jpg", f"streetview/panos/{i:07d}.jpg"
        smooth(750, 750).save(os.path.join(data_dir, sat), quality=90)
        smooth(224, 1232).save(os.path.join(data_dir, grd), quality=90)
        lines.append(f"{sat},{grd},annotations/{i:07d}.png\n")
    tmp = f"{csv}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        f.writelines(lines)
    os.replace(tmp, csv)
    with open(os.path.join(data_dir, "splits", "val-19zl.csv"), "w") as f:
        f.writelines(lines[:1])
    return data_dir


def _child_tensorflow(spec):
    import tensorflow as tf

    from cvmnet_tf.training.step import make_train_step

    t0 = time.perf_counter()
    model, optimizer, loss_fn, info = _build_ours(spec)
    variant = spec["variant"]
    step = make_train_step(model, optimizer, loss_fn, jit_compile=(variant == "xla") or
                           (variant == "pipeline" and spec["pipeline_jit"]))
    build_s = time.perf_counter() - t0
    if variant == "eager":
        step = step.python_function
    if variant == "pipeline":
        from cvmnet_tf import data as cv_data

        split = cv_data.load_split("cvusa", spec["data_dir"], "train")
        sizes = cv_data.ImageSizes(satellite=tuple(spec["sizes"][0]), ground=tuple(spec["sizes"][1]))
        dataset = cv_data.make_pair_dataset(split, sizes, training=True, batch_size=spec["batch_size"],
                                            shuffle=True, seed=0).repeat()
        iterator = iter(dataset)

        def run_one():
            return float(step(next(iterator)))
    else:
        sat, grd = _random_batch(spec["batch_size"], spec["sizes"])
        batch = {"satellite": tf.constant(sat), "ground": tf.constant(grd)}

        def run_one():
            return float(step(batch))
    result = _time_steps(run_one, spec)
    result.update(build_s=build_s, **info)
    return result


def _child_jax(spec):
    import jax

    t0 = time.perf_counter()
    model, optimizer, loss_fn, info = _build_ours(spec)
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

    train_step = jax.jit(train_step, donate_argnums=0)
    state = [(trainable, non_trainable, opt_vars)]
    sat, grd = (jax.numpy.asarray(a) for a in _random_batch(spec["batch_size"], spec["sizes"]))
    build_s = time.perf_counter() - t0

    def run_one():
        loss, state[0] = train_step(state[0], sat, grd)
        return float(loss)

    result = _time_steps(run_one, spec)
    result.update(build_s=build_s, **info)
    return result


def child_main(spec):
    runner = {"released": _child_released, "jax": _child_jax}.get(spec["variant"], _child_tensorflow)
    result = runner(spec)
    result["peak_rss_mib"] = peak_rss_mib()
    print("RESULT " + json.dumps(result), flush=True)


# ---------------------------------------------------------------------- arithmetic ceiling

def _node_shapes(node):
    """(input shapes, output shapes) of a Keras 3 graph node, as tuples."""
    def shapes(tensors):
        return [tuple(t.shape) for t in tensors]
    return shapes(node.input_tensors), shapes(node.output_tensors)


def _layer_macs(layer, in_shape, out_shape) -> int:
    """Multiply-adds of one call of ``layer`` on ONE sample: Conv2D, Dense and NetVLAD
    (soft-assignment 1x1 conv + residual aggregation, 2 N K D); other layers count 0."""
    import math

    kind = type(layer).__name__
    if kind == "Conv2D":
        kh, kw, cin, cout = (int(v) for v in layer.kernel.shape)
        return int(out_shape[1]) * int(out_shape[2]) * kh * kw * cin * cout // int(layer.groups)
    if kind == "Dense":
        rows = math.prod(int(v) for v in in_shape[1:-1])
        return rows * int(layer.kernel.shape[0]) * int(layer.kernel.shape[1])
    if kind == "NetVLAD":
        n = int(in_shape[1]) * int(in_shape[2])
        return 2 * n * int(layer.num_clusters) * int(in_shape[3])
    return 0


def step_macs(model) -> dict:
    """Multiply-adds per training pair of the step (both branches): ``forward``,
    ``backward`` (weight gradients of every trainable Conv2D/Dense/NetVLAD + input
    gradients of every weighted layer with a trainable layer upstream; frozen conv1-3
    need neither) and ``total``. Counts Conv2D, Dense and NetVLAD only, so it is a lower
    bound of the step's arithmetic (pooling, ReLU, dropout, normalisation and the loss
    are memory-bound and small). Assumes each nested model is a chain (the VGG/AlexNet
    backbones are)."""
    totals = {"forward": 0, "backward": 0}

    def walk(layer, calls, upstream_trainable):
        inner = getattr(layer, "layers", None)
        if inner:  # a nested model (backbone), possibly called more than once (shared)
            sub_calls = calls * max(1, len(layer._inbound_nodes))
            flag = upstream_trainable
            for sub in inner:
                flag = walk(sub, sub_calls, flag)
            return flag
        weighted = bool(layer.weights) and type(layer).__name__ in ("Conv2D", "Dense", "NetVLAD")
        for node in layer._inbound_nodes:
            ins, outs = _node_shapes(node)
            if not ins or not outs:
                continue
            macs = calls * _layer_macs(layer, ins[0], outs[0])
            totals["forward"] += macs
            if weighted and layer.trainable:
                totals["backward"] += macs  # weight gradient
            if weighted and upstream_trainable:
                totals["backward"] += macs  # input gradient
        return upstream_trainable or (weighted and layer.trainable)

    # Top level: the branches' backbones start from images (nothing upstream); a head
    # layer (NetVLAD, FC, ...) has a trainable layer upstream once any backbone had one.
    head_upstream_trainable = False
    for layer in model.layers:
        is_backbone = bool(getattr(layer, "layers", None))
        trained = walk(layer, 1, False if is_backbone else head_upstream_trainable)
        head_upstream_trainable = head_upstream_trainable or trained
    totals["total"] = totals["forward"] + totals["backward"]
    return totals


def sgemm_gflops(n: int = 4096, repeats: int = 3) -> float:
    """Best float32 matrix-product rate (GFLOP/s, 2 flops per multiply-add) of numpy's BLAS
    on this machine, all cores: (n x n) @ (n x 2n) products. The practical peak of the
    float32 arithmetic every convolution library here is built from."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, 2 * n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2.0 * n * n * 2 * n / best / 1e9


def print_ceiling(summary, models, variants, sizes, args):
    """GFLOP/s reached by each variant (from :func:`step_macs`) against the measured
    sgemm rate, and what a 1.5x speed-up of the released graph would need."""
    import keras

    from cvmnet_tf import models as cvm_models

    rate = sgemm_gflops()
    print(f"\narithmetic ceiling: numpy sgemm {rate:.1f} GFLOP/s on this machine "
          f"({os.cpu_count()} CPUs); step arithmetic counted over Conv2D/Dense/NetVLAD (lower bound)\n")
    print("| model | GMAC/pair fwd | GMAC/pair bwd | variant | GFLOP/s | % of sgemm |")
    print("|---|---:|---:|---|---:|---:|")
    for model_name in models:
        keras.backend.clear_session()
        model = cvm_models.build_model(model_name, satellite_shape=tuple(sizes[0]),
                                       ground_shape=tuple(sizes[1]), num_clusters=args.num_clusters,
                                       descriptor_dim=args.descriptor_dim, width=args.width)
        macs = step_macs(model)
        gflop_per_pair = 2 * macs["total"] / 1e9
        for variant in variants:
            s = summary.get((model_name, variant))
            if s is None:
                continue
            g = s["pairs_s"] * gflop_per_pair
            print(f"| {model_name} | {macs['forward'] / 1e9:.1f} | {macs['backward'] / 1e9:.1f} | "
                  f"{LABELS[variant]} | {g:.1f} | {100 * g / rate:.0f} % |")
        base = summary.get((model_name, "released"))
        if base is not None:
            need = 1.5 * base["pairs_s"] * gflop_per_pair
            print(f"| {model_name} | | | 1.5x (a) would need | {need:.1f} | {100 * need / rate:.0f} % |")


# ---------------------------------------------------------------------------- parent side

def run_child(spec, timeout):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env["KERAS_BACKEND"] = "jax" if spec["variant"] == "jax" else "tensorflow"
    cmd = [sys.executable, os.path.abspath(__file__), "--_child", json.dumps(spec)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-25:])
    raise RuntimeError(f"variant {spec['variant']} / {spec['model']} failed (exit {proc.returncode}):\n{tail}")


def summarise(results, batch_size):
    """Pool the windows of each (model, variant); median pairs/s, max peak RSS."""
    rows = {}
    for r in results:
        key = (r["model"], r["variant"])
        row = rows.setdefault(key, {"pairs_s": [], "rss": [], "first": [], "build": []})
        steps = r["steps"]
        row["pairs_s"] += [steps * batch_size / w for w in r["window_s"]]
        row["rss"].append(r["peak_rss_mib"])
        row["first"].append(r["first_step_s"])
        row["build"].append(r["build_s"])
    out = {}
    for key, row in rows.items():
        pairs = statistics.median(row["pairs_s"])
        out[key] = {"pairs_s": pairs, "steps_s": pairs / batch_size, "peak_rss_mib": max(row["rss"]),
                    "windows": len(row["pairs_s"]), "spread": (min(row["pairs_s"]), max(row["pairs_s"])),
                    "first_step_s": statistics.median(row["first"]), "build_s": statistics.median(row["build"])}
    return out


def print_table(summary, models, variants, sizes, batch_size):
    print(f"\nsatellite {sizes[0][0]}x{sizes[0][1]}, ground {sizes[1][0]}x{sizes[1][1]}, batch {batch_size}\n")
    print("| model | variant | pairs/s | steps/s | min-max pairs/s | peak RSS MiB | vs (a) pairs/s | vs (a) RSS |"
          " first step s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for model in models:
        base = summary.get((model, "released"))
        for variant in variants:
            s = summary.get((model, variant))
            if s is None:
                continue
            ratio = f"{s['pairs_s'] / base['pairs_s']:.2f}x" if base else "-"
            rss_ratio = f"{s['peak_rss_mib'] / base['peak_rss_mib']:.2f}x" if base else "-"
            print(f"| {model} | {LABELS[variant]} | {s['pairs_s']:.3f} | {s['steps_s']:.4f} | "
                  f"{s['spread'][0]:.3f}-{s['spread'][1]:.3f} | {s['peak_rss_mib']:.0f} | {ratio} | {rss_ratio} | "
                  f"{s['first_step_s']:.1f} |")


def print_cpu():
    """The CPU model, its vector / matrix flags and whether it runs bfloat16 natively."""
    from cvmnet_tf.utils.precision import cpu_bf16_support, cpu_flags

    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    flags = cpu_flags()
    shown = sorted(f for f in flags if f.startswith(("avx512", "amx")) or f in ("avx2", "fma"))
    native = cpu_bf16_support(flags)
    print(f"CPU: {model}; flags: {' '.join(shown) or 'none of avx2/avx512/amx'}", flush=True)
    print("bfloat16: " + (f"native ({', '.join(native)})" if native else
                          "NEITHER amx_bf16 NOR avx512_bf16 on this CPU: bf16 is emulated (slower than float32); "
                          "the bf16 target applies to CPUs with AMX or AVX512_BF16 only"), flush=True)


def print_bf16_target(summary, models, image_size):
    """(f) bf16 over (a) released per model against :data:`BF16_TARGET`."""
    from cvmnet_tf.utils.precision import cpu_bf16_support

    applies = bool(cpu_bf16_support()) and image_size == "half"
    print(f"\nbf16 target: (f) >= {BF16_TARGET}x (a) pairs/s at --image_size half on a CPU with AMX or "
          "AVX512_BF16" + ("" if applies else " (does not apply to this run: "
                           + ("no native bf16" if not cpu_bf16_support() else f"--image_size {image_size}") + ")"))
    for model in models:
        bf16, base, f32 = (summary.get((model, v)) for v in ("bf16", "released", "compiled"))
        if bf16 is None or base is None:
            print(f"  {model}: needs variants released and bf16 in the same run")
            continue
        ratio = bf16["pairs_s"] / base["pairs_s"]
        extra = f"; vs (c) float32 {bf16['pairs_s'] / f32['pairs_s']:.2f}x" if f32 else ""
        verdict = ("MET" if ratio >= BF16_TARGET else "NOT MET") if applies else "n/a"
        print(f"  {model}: {bf16['pairs_s']:.3f} / {base['pairs_s']:.3f} pairs/s = {ratio:.2f}x {verdict}{extra}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--released_code_dir", default=None,
                        help="clone of github.com/david-husx/crossview_localisation (or its src/CVM-Net); "
                             "without it variant 'released' is skipped")
    parser.add_argument("--variants", default="released,eager,compiled,xla,pipeline",
                        help=f"comma list of {VARIANTS}")
    parser.add_argument("--models", default="cvm_net_i,cvm_net_ii")
    parser.add_argument("--image_size", default="half",
                        help="paper (512x512, 224x1232), half (256x256, 112x616), small, tiny, or HxW,HxW")
    parser.add_argument("--precision", default="float32", choices=("float32", "mixed_float16", "mixed_bfloat16"),
                        help="policy of this package's variants (the released graph is float32; (f) is always "
                             "mixed_bfloat16)")
    parser.add_argument("--batch_size", type=int, default=12)
    parser.add_argument("--num_clusters", type=int, default=64)
    parser.add_argument("--descriptor_dim", type=int, default=4096)
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--steps", type=int, default=2, help="steps per timed window")
    parser.add_argument("--windows", type=int, default=3, help="timed windows per run")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (>= 1: tracing)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the variant list this many times, alternating its order")
    parser.add_argument("--pipeline_jit", action="store_true", help="(e) uses the XLA step instead of (c)")
    parser.add_argument("--data_dir", default=None,
                        help="folder for the JPEGs of (e) (written if absent; default: a temp folder)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per variant run")
    parser.add_argument("--no_ceiling", action="store_true",
                        help="skip the arithmetic-ceiling table (GFLOP/s vs the measured sgemm rate)")
    parser.add_argument("--json_out", default=None, help="also write all raw results here")
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        child_main(json.loads(args._child))
        return

    from cvmnet_tf.data.registry import image_sizes

    sizes = image_sizes(args.image_size)
    variants = [v for v in args.variants.split(",") if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        parser.error(f"--variants: unknown {bad}; choose from {VARIANTS}")
    if args.warmup < 1 or args.steps < 1 or args.windows < 1:
        parser.error("--warmup, --steps and --windows must be >= 1")
    models_ = [m for m in args.models.split(",") if m]
    bad = [m for m in models_ if m not in ("cvm_net_i", "cvm_net_ii")]
    if bad:
        parser.error(f"--models: only cvm_net_i, cvm_net_ii are benchmarked, got {bad}")
    if "released" in variants:
        if not args.released_code_dir:
            print("SKIPPED (a) released TF1 graph: no --released_code_dir given (a clone of "
                  "github.com/david-husx/crossview_localisation); ratios are not computed.")
            variants.remove("released")
        else:
            sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
            from released_tf1 import find_code_dir

            find_code_dir(args.released_code_dir)  # clear error now, not in a child
            if (args.num_clusters, args.descriptor_dim, args.width) != (64, 4096, 1.0):
                parser.error("variant 'released' is the paper's network: --num_clusters 64 "
                             "--descriptor_dim 4096 --width 1 only")
    tmp = None
    if "pipeline" in variants:
        data_dir = args.data_dir
        if data_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="cvmnet_train_throughput_")
            data_dir = tmp.name
        num = args.batch_size * (args.warmup + args.windows * args.steps + 2)
        print(f"writing/using {num} CVUSA-layout JPEG pairs in {data_dir}", flush=True)
        write_jpeg_dataset(data_dir, num)
        args.data_dir = data_dir
    print_cpu()
    print(f"load average before: {os.getloadavg()}  ({os.cpu_count()} CPUs)", flush=True)
    print("command: " + " ".join([os.path.basename(sys.executable)] + sys.argv), flush=True)
    results = []
    for rnd in range(args.rounds):
        order = variants if rnd % 2 == 0 else variants[::-1]
        for model in models_:
            for variant in order:
                spec = {"variant": variant, "model": model, "sizes": [list(s) for s in sizes],
                        "batch_size": args.batch_size, "precision": args.precision,
                        "num_clusters": args.num_clusters, "descriptor_dim": args.descriptor_dim,
                        "width": args.width, "steps": args.steps, "windows": args.windows,
                        "warmup": args.warmup, "released_code_dir": args.released_code_dir,
                        "data_dir": args.data_dir, "pipeline_jit": args.pipeline_jit}
                t0 = time.perf_counter()
                r = run_child(spec, args.timeout)
                r.update(spec)
                results.append(r)
                rate = args.steps * args.batch_size / statistics.median(r["window_s"])
                print(f"round {rnd + 1} {model:<11} {LABELS[variant]:<28} {rate:8.3f} pairs/s  "
                      f"peak RSS {r['peak_rss_mib']:7.0f} MiB  loss {r['loss']:.4f}  "
                      f"({time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.2f})", flush=True)
    print(f"load average after: {os.getloadavg()}", flush=True)
    summary = summarise(results, args.batch_size)
    print_table(summary, models_, variants, sizes, args.batch_size)
    if "bf16" in variants:
        print_bf16_target(summary, models_, args.image_size)
    if not args.no_ceiling:
        print_ceiling(summary, models_, variants, sizes, args)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(results, f, indent=1)
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
