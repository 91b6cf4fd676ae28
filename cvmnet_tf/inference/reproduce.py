"""Reproduce the published CVUSA numbers from the released CVM-Net checkpoints, in one call.

The released repository's README (github david-husx/crossview_localisation) links one
Google Drive archive with "two models CVM-Net-I and CVM-Net-II" and, in ``init/``, "the
models used to initialise the model" (VGG16 from ImageNet, the rest random). The trained
ones are TF1 checkpoints (``model.ckpt.index`` / ``.data-*``) in the released variable
layout (:mod:`cvmnet_tf.inference.tf1`). :func:`reproduce_released`

1. finds the checkpoint under ``released_model`` (a ``model.ckpt`` prefix, or a folder
   searched recursively; ``init/`` models are skipped, the network is read from the
   variable names: ``netvlad_grd`` + ``dim_reduction`` = CVM-Net-I, ``netvlad/hidden1_weights``
   = CVM-Net-II);
2. converts it to ``<output_dir>/<model>.keras`` (:func:`cvmnet_tf.inference.tf1.convert`);
3. extracts the descriptors of CVUSA's validation split (8,884 pairs, the released
   ``val-19zl.csv``) at the released input sizes (512x512 satellite, 224x1232 panorama,
   exactly as the released ``input_data.py`` reads them);
4. evaluates recall@1/5/10/1% (the released ``validate()`` rule: K = int(0.01 N) + 1) and
   returns the comparison table beside the paper's 91.4 % (CVM-Net-I) / 87.2 %
   (CVM-Net-II) and the later re-reports.

Files under ``output_dir`` (nothing existing is replaced unless ``overwrite``):
``<model>.keras``, ``<model>_val_{satellite,ground,index}.npy`` + ``.mat``,
``<model>_metrics.json``, ``<model>_comparison.md``.
"""
from __future__ import annotations

import os
from typing import Optional

from cvmnet_tf.utils import atomic_io

__all__ = ["find_released_checkpoint", "reproduce_released", "PAPER_RECALL_AT_1_PERCENT"]

#: CVUSA recall@1% of paper Table 1 (percent).
PAPER_RECALL_AT_1_PERCENT = {"cvm_net_i": 91.4, "cvm_net_ii": 87.2}


def _under_init(path: str) -> bool:
    return "init" in [part.lower() for part in os.path.normpath(path).split(os.sep)]


def find_released_checkpoint(released_model: str, model: Optional[str] = None) -> tuple:
    """``(prefix, model name)`` of the trained released checkpoint under ``released_model``
    (module docstring, step 1). ValueError naming ``--released_model`` when there is none,
    when it holds neither network, or when several match (listing them)."""
    from cvmnet_tf.inference import tf1

    if not os.path.exists(released_model) and not os.path.exists(released_model + ".index"):
        raise ValueError(f"--released_model={released_model!r} does not exist")
    found = tf1.find_tf1_checkpoints(released_model)
    if not found:
        raise ValueError(f"--released_model={released_model!r}: no TF1 checkpoint (model.ckpt.index + "
                         "model.ckpt.data-*) found there")
    trained = [p for p in found if not _under_init(os.path.relpath(p, released_model))] or found
    named = []
    for prefix in trained:
        shapes, _ = tf1.read_tf1_checkpoint(prefix)
        name = tf1.infer_model_name(shapes)
        if name is not None and (model is None or name == model):
            named.append((prefix, name))
    if not named:
        what = f"a {model} checkpoint" if model else "a CVM-Net-I or CVM-Net-II checkpoint"
        raise ValueError(f"--released_model={released_model!r}: {what} is not among {', '.join(trained)}")
    if len(named) > 1:
        raise ValueError(f"--released_model={released_model!r} holds {len(named)} matching checkpoints "
                         f"({', '.join(f'{p} ({n})' for p, n in named)}); pass one prefix or --model")
    return named[0]


def reproduce_released(released_model: str, data_dir: str, output_dir: str, *, model: Optional[str] = None,
                       image_size: str = "paper", split: str = "val", batch_size: int = 16, max_pairs: int = 0,
                       overwrite: bool = False, progress: bool = True) -> dict:
    """Steps 1-4 of the module docstring. Returns {"checkpoint", "model", "metrics"
    (fractions, :func:`cvmnet_tf.evaluation.evaluate_retrieval`), "table" (Markdown),
    "files", "skipped"}. ``image_size``: the CVUSA size name or ``HxW,HxW`` (``paper`` is the
    released one; others only for quick checks), ``max_pairs``: first N pairs only (0: all)."""
    from cvmnet_tf.data.registry import image_sizes
    from cvmnet_tf.evaluation import comparison_table, evaluate_retrieval
    from cvmnet_tf.evaluation.metrics import top_percent_k
    from cvmnet_tf.inference import tf1
    from cvmnet_tf.inference.descriptors import extract_descriptors, output_paths, write_descriptors

    prefix, name = find_released_checkpoint(released_model, model)
    satellite_size, ground_size = image_sizes(image_size, "cvusa")
    keras_file = os.path.join(output_dir, f"{name}.keras")
    desc_prefix = os.path.join(output_dir, f"{name}_{split}")
    files = {"keras": keras_file, "metrics": os.path.join(output_dir, f"{name}_metrics.json"),
             "comparison": os.path.join(output_dir, f"{name}_comparison.md"),
             **output_paths(desc_prefix, False)}
    existing = [p for p in files.values() if os.path.exists(p)]
    if existing and not overwrite:
        raise ValueError(f"--output_dir={output_dir!r} already holds {', '.join(existing)}; pass --overwrite to "
                         "replace them or choose another --output_dir")
    os.makedirs(output_dir, exist_ok=True)
    tf1.convert(prefix, name, keras_file, satellite_size=satellite_size, ground_size=ground_size)
    result = extract_descriptors(keras_file, "cvusa", data_dir, split, batch_size=batch_size, max_pairs=max_pairs,
                                 progress=progress)
    write_descriptors(desc_prefix, result)
    metrics = evaluate_retrieval(result["ground"], result["satellite"])
    label = f"released {os.path.basename(os.path.dirname(prefix)) or prefix} checkpoint, converted"
    table = comparison_table(metrics, model=name, dataset="cvusa", backbone="vgg16",
                             loss="weighted_soft_margin_triplet", label=label)
    num_pairs = len(result["satellite"])
    chance = top_percent_k(num_pairs) / num_pairs   # a random ranking's recall@1%
    note = (f"\nPaper Table 1 (CVUSA, recall@1%): {PAPER_RECALL_AT_1_PERCENT[name]} %; this evaluation: "
            f"{100 * metrics['recall@1%']:.2f} % (a random ranking: {100 * chance:.2f} %) on "
            f"{len(result['ground'])} pairs of {split} "
            f"({len(result['skipped'])} skipped), inputs {satellite_size[0]}x{satellite_size[1]} / "
            f"{ground_size[0]}x{ground_size[1]}.\n")
    atomic_io.write_json(files["metrics"], dict(metrics, checkpoint=os.path.abspath(prefix), model=name,
                                                split=split, num_skipped=len(result["skipped"])))
    atomic_io.write_text(files["comparison"], table + note)
    return {"checkpoint": prefix, "model": name, "metrics": metrics, "table": table + note, "files": files,
            "skipped": result["skipped"]}
