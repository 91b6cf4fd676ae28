"""Descriptors of dataset splits: run a model over a pipeline, or an encoder over files, and
save the result for offline evaluation (NumPy + OriCNN ``.mat``).

Used by the per-epoch validation of the training loop, by ``cvmnet-extract`` (writing) and
``cvmnet-evaluate`` (reading: :func:`read_npy`, :func:`read_oricnn_mat`, :func:`read_utm`).

Files :func:`write_descriptors` writes for a pair split (each atomically, and only once
every descriptor is computed and checked; a failure leaves none of them):

- ``<prefix>_satellite.npy``: float32 (N, dim), row i = satellite image of pair index[i];
- ``<prefix>_ground.npy``: float32 (N, dim), row i = ground image of pair index[i];
- ``<prefix>_index.npy``: int64 (N,), position of each row in the split (pairs with an
  unreadable image are skipped and reported, so N can be < len(split));
- ``<prefix>.mat``: OriCNN-compatible ``sat_global_descriptor`` (N, dim),
  ``grd_global_descriptor`` (N, dim), and ``utm`` (N, 2, metres) when the split has it;
- ``<prefix>_distractors.npy``: float32 (M, dim) with a distractor folder (sorted file
  names), database rows N.. for :func:`cvmnet_tf.evaluation.evaluate_retrieval`;
  ``<prefix>_distractors.txt`` their paths.

For a labelled query / gallery split (University-1652's test split):
``<prefix>_query.npy`` / ``<prefix>_gallery.npy`` float32 (N, dim) and
``<prefix>_query_labels.npy`` / ``<prefix>_gallery_labels.npy`` int64 (N,) (gallery
distractors labelled -1), the inputs of ``cvmnet-evaluate --query_labels/--database_labels``.
"""

from __future__ import annotations

import logging
import weakref
from typing import Dict, Optional

import numpy as np

from cvmnet_tf.utils import atomic_io
from cvmnet_tf.utils.text import first_items

__all__ = ["pair_descriptors", "image_descriptors", "labelled_descriptors", "vigor_descriptors", "extract_descriptors",
           "resolve_ground_crop", "precision_agreement", "agreement_lines",
           "check_result", "output_paths", "write_descriptors", "read_npy", "read_oricnn_mat", "read_utm"]

log = logging.getLogger("cvmnet_tf.inference")


def pair_descriptors(model, dataset, *, total_batches: Optional[int] = None, progress: bool = False,
                     jit_compile: bool = False):
    """Descriptors of every pair in ``dataset``.

    Args:
      model: a two-branch ``keras.Model`` with dict inputs/outputs ``satellite`` and
        ``ground`` (see :mod:`cvmnet_tf.models`), run in inference mode.
      dataset: batches of dicts ``{"satellite": (B, Hs, Ws, 3), "ground": (B, Hg, Wg, 3),
        "index": (B,)}`` as made by :func:`cvmnet_tf.data.make_pair_dataset`.
      total_batches: for the progress bar only.

    Returns:
      ``(satellite, ground, index)``: float32 arrays (N, dim), (N, dim) and int64 (N,),
      in dataset order. Pairs the pipeline skipped (unreadable images) are absent, so
      ``index`` says which split rows the descriptors belong to.
    """
    import tensorflow as tf

    @tf.function(reduce_retracing=True, jit_compile=jit_compile)
    def forward(satellite, ground):
        out = model({"satellite": satellite, "ground": ground}, training=False)
        return tf.cast(out["satellite"], tf.float32), tf.cast(out["ground"], tf.float32)

    return _collect(dataset, lambda b: forward(b["satellite"], b["ground"]), total_batches, progress,
                    "the dataset yielded no pairs: every image was skipped or the split is empty")


def image_descriptors(encoder, dataset, *, total_batches: Optional[int] = None, progress: bool = False,
                      jit_compile: bool = False):
    """Descriptors of every image in a one-branch ``dataset``.

    Args:
      encoder: a one-branch ``keras.Model`` ``(B, H, W, 3) -> (B, dim)``, e.g.
        :func:`cvmnet_tf.models.ground_encoder` / :func:`~cvmnet_tf.models.satellite_encoder`
        of a trained model, run in inference mode.
      dataset: batches ``{"image": (B, H, W, 3), "index": (B,)}`` as made by
        :func:`cvmnet_tf.data.make_image_dataset`.

    Returns:
      ``(descriptors, index)``: float32 (N, dim) and int64 (N,) in dataset order; images the
      pipeline skipped are absent, so ``index`` says which input rows they belong to.
    """
    forward = _encoder_forward(encoder, jit_compile)
    return _collect(dataset, lambda b: forward(b["image"]), total_batches, progress,
                    "the dataset yielded no images: every image was skipped or the list is empty")


_FORWARD_CACHE = weakref.WeakKeyDictionary()   # encoder -> {jit_compile: tf.function}
_BRANCH_CACHE = weakref.WeakKeyDictionary()    # two-branch model -> {branch: encoder}


def _encoder_forward(encoder, jit_compile: bool):
    """One tf.function per encoder (kept while the encoder lives): repeated validation
    passes reuse its traces instead of tracing a new function every epoch."""
    import tensorflow as tf

    per_encoder = _FORWARD_CACHE.setdefault(encoder, {})
    if jit_compile not in per_encoder:
        @tf.function(reduce_retracing=True, jit_compile=jit_compile)
        def forward(images):
            return (tf.cast(encoder(images, training=False), tf.float32),)
        per_encoder[jit_compile] = forward
    return per_encoder[jit_compile]


def branch_encoder_of(model, kind: str):
    """:func:`cvmnet_tf.models.branch_encoder` of ``model``, built once per model."""
    from cvmnet_tf import models

    per_model = _BRANCH_CACHE.setdefault(model, {})
    if kind not in per_model:
        per_model[kind] = models.branch_encoder(model, kind)
    return per_model[kind]


def _collect(dataset, forward, total_batches, progress, empty_message):
    """Run ``forward(batch) -> tuple of (B, dim) tensors`` over ``dataset``; returns each output
    concatenated as float32 (N, dim), then the int64 (N,) "index" of the rows."""
    outputs, indices = [], []
    bar = None
    if progress:
        import keras
        bar = keras.utils.Progbar(total_batches, unit_name="batch")
    for i, batch in enumerate(dataset):
        outputs.append([t.numpy() for t in forward(batch)])
        indices.append(batch["index"].numpy())
        if bar is not None:
            bar.update(i + 1)
    if not outputs:
        raise ValueError(empty_message)
    return tuple(np.concatenate(col).astype(np.float32) for col in zip(*outputs)) + (
        np.concatenate(indices).astype(np.int64),)


def labelled_descriptors(model, images, sizes, batch_size: int, progress: bool = False):
    """Descriptors of one side of a labelled split (:class:`cvmnet_tf.data.LabelledImages`)
    through the branch of its kind ("ground" images, e.g. drone views, through the ground
    encoder). Returns (float32 (N, dim), int64 labels (N,), kept indices (N,))."""
    from cvmnet_tf import data as cv_data

    encoder = branch_encoder_of(model, images.kind)
    size = sizes.ground if images.kind == "ground" else sizes.satellite
    ds = cv_data.make_image_dataset(images.paths, size, images.kind, batch_size, dataset=images.dataset)
    desc, index = image_descriptors(encoder, ds, total_batches=-(-len(images) // batch_size), progress=progress)
    return desc, images.labels[index], index


def vigor_descriptors(model, split, sizes, batch_size: int, ground_crop=None, progress: bool = False) -> dict:
    """Descriptors of a :class:`cvmnet_tf.data.vigor.VigorSplit`: the whole satellite pool
    through the satellite branch and every panorama through the ground branch (with the
    ground crop: limited FoV / unknown orientation at the fixed test headings).

    Returns {"satellite": float32 (M', dim), "ground": float32 (N', dim), "split": the
    split restricted to the images that could be read (:meth:`VigorSplit.restrict`: a
    query whose positive is unreadable is dropped), "skipped": [(index, path)]}; row i of
    "ground" is query i of "split", row j of "satellite" its pool row j. Memory: one batch
    of images at a time plus the descriptors.
    """
    from cvmnet_tf import data as cv_data

    sat_ds = cv_data.make_image_dataset(split.satellite_paths, sizes.satellite, "satellite", batch_size,
                                        dataset="vigor")
    sat, sat_idx = image_descriptors(branch_encoder_of(model, "satellite"), sat_ds, progress=progress,
                                     total_batches=-(-split.num_satellites // batch_size))
    grd_ds = cv_data.make_image_dataset(split.panorama_paths, sizes.ground, "ground", batch_size, dataset="vigor",
                                        ground_crop=ground_crop)
    grd, grd_idx = image_descriptors(branch_encoder_of(model, "ground"), grd_ds, progress=progress,
                                     total_batches=-(-len(split) // batch_size))
    kept, positions = split.restrict(sat_idx, grd_idx)
    skipped = [(int(i), split.satellite_paths[i]) for i in np.setdiff1d(np.arange(split.num_satellites), sat_idx)]
    skipped += [(int(i), split.panorama_paths[i]) for i in np.setdiff1d(np.arange(len(split)), grd_idx)]
    _log_skipped(skipped)
    return {"satellite": sat, "ground": grd[positions], "split": kept, "skipped": skipped}


def _labelled_with_encoder(enc, images, batch_size, progress):
    fn = enc.ground if images.kind == "ground" else enc.satellite
    desc, kept, skipped = _encode_files(fn, images.paths, batch_size, images.kind, progress)
    return desc, images.labels[kept], kept, skipped


def _encode_files(fn, paths, batch_size, what, progress):
    from cvmnet_tf.inference.encoders import encode_image_files
    return encode_image_files(fn, paths, batch_size, what, progress=progress)


def resolve_ground_crop(info: dict, fov: Optional[float] = None, random_orientation: Optional[bool] = None,
                        fov_test_seed: Optional[int] = None, flag: str = "--fov"):
    """The :class:`cvmnet_tf.data.fov.GroundCrop` to evaluate a model with: its training
    run's (``info["fov"]``, ``random_orientation``, ``fov_test_seed``, from
    :func:`cvmnet_tf.inference.load_model` or a SavedModel's export info), each overridden
    when given. The field of view is fixed by the network's ground input width: another
    ``fov`` is a ValueError naming ``flag``; the orientation may differ (e.g. testing a
    north-aligned model with unknown orientation)."""
    from cvmnet_tf.data.fov import GroundCrop

    own = float(info.get("fov") or 360.0)
    if fov is not None and float(fov) != own:
        raise ValueError(f"{flag}={fov:g}: the model was trained with a field of view of {own:g} degrees (its ground "
                         f"input is {info.get('ground_size')}); evaluate it at {own:g} or train a {fov:g}-degree model")
    return GroundCrop(own, bool(info.get("random_orientation", False)) if random_orientation is None
                      else bool(random_orientation),
                      int(info.get("fov_test_seed", 2019)) if fov_test_seed is None else int(fov_test_seed))


def extract_descriptors(checkpoint: str, dataset: str, data_dir: str, split: str = "val", *,
                        batch_size: int = 16, distractor_dir: Optional[str] = None, max_pairs: int = 0,
                        progress: bool = True, fov: Optional[float] = None,
                        random_orientation: Optional[bool] = None, fov_test_seed: Optional[int] = None,
                        precision: Optional[str] = None, shard_index: int = 0, num_shards: int = 1,
                        shard_mode: str = "contiguous", **loader_options) -> Dict[str, object]:
    """Descriptors of every pair of ``split`` (and of optional distractor images).

    Args:
      checkpoint: checkpoint folder, .keras file or SavedModel folder.
      dataset: a dataset of :data:`cvmnet_tf.data.DATASETS` (loader and ground preprocessing).
      data_dir: the dataset's root folder; split: e.g. "val".
      batch_size: images per forward pass.
      distractor_dir: folder of extra satellite images (database rows N..); for a dataset
        whose loader takes distractors itself (University-1652) it goes to the loader.
      max_pairs: use only the first max_pairs pairs (labelled split: queries) (0: all).
      fov, random_orientation, fov_test_seed: the ground crop of panorama datasets
        (:func:`resolve_ground_crop`; default: the model's training run's). With a
        checkpoint the panoramas are resized, then cropped (the training pipeline); with
        a SavedModel of a FoV model, which takes the cropped photo, the raw panorama is
        cropped at the same heading first (:func:`cvmnet_tf.inference.encoders.panorama_crop_transform`).
      precision: compute precision of a checkpoint (none / fp16 / bf16,
        :func:`cvmnet_tf.inference.precision.with_precision`; None: the model's own; a
        SavedModel keeps its export's). The descriptors are float32 in every precision.
      shard_index, num_shards, shard_mode: encode only shard ``shard_index`` of
        ``num_shards`` of the pairs (after ``max_pairs``) and of the distractor images
        (:func:`cvmnet_tf.inference.shards.shard_rows`: "contiguous" or "strided"); pair
        splits only. "index" then holds positions in the whole split, and the result gets
        "shard" (what :func:`cvmnet_tf.inference.shards.write_shard` records) and
        "distractor_index" (positions of the kept distractors in the whole list).
      loader_options: extra options of the dataset's loader (e.g. University-1652 ``task``).

    Returns:
      pair split: dict with "satellite", "ground" float32 (N, dim), "index" int64 (N,),
      "utm" float64 (N, 2) or None, "distractors" float32 (M, dim) or None,
      "distractor_paths" list, "skipped" [(index, path)], "info" (model info);
      labelled split: "query", "gallery" float32, "query_labels", "gallery_labels" int64,
      "skipped", "info".
    """
    from cvmnet_tf import data as cv_data
    from cvmnet_tf.inference import serving
    from cvmnet_tf.inference.encoders import load_encoder

    if dataset not in cv_data.DATASET_NAMES:
        raise ValueError(f"--dataset={dataset!r}: choose one of {', '.join(cv_data.DATASET_NAMES)}")
    spec = cv_data.get_dataset(dataset)
    if batch_size < 1:
        raise ValueError(f"--batch_size={batch_size}: must be >= 1")
    if distractor_dir and "distractor_dir" in spec.loader_options:
        loader_options["distractor_dir"], distractor_dir = distractor_dir, None
    from cvmnet_tf.inference.shards import check_shard_arguments, shard_record, shard_rows

    check_shard_arguments(shard_index, num_shards, shard_mode)
    enc = load_encoder(checkpoint, dataset, precision) if serving.is_saved_model(checkpoint) else None
    split_data = cv_data.load_split(dataset, data_dir, split, **loader_options)
    if isinstance(split_data, cv_data.RetrievalSplit):
        if num_shards > 1:
            raise ValueError(f"--num_shards={num_shards}: sharding takes pair splits; {spec.title}'s {split!r} split "
                             "is a labelled query / gallery split (extract it in one run)")
        return _extract_labelled(checkpoint, enc, split_data, batch_size, max_pairs, progress, precision)
    if hasattr(split_data, "as_pair_split"):
        raise ValueError(f"--dataset={dataset}: a VIGOR split is a satellite pool with positives and semi-positives, "
                         "not pairs; train_vigor.py evaluates it with VIGOR's metrics "
                         "(cvmnet_tf.inference.descriptors.vigor_descriptors + evaluation.vigor_metrics.evaluate_vigor)")
    pair_split = split_data
    if max_pairs:
        pair_split = pair_split.subset(range(min(max_pairs, len(pair_split))))
    if len(pair_split) == 0:
        raise ValueError(f"split {split!r} of {data_dir!r} holds no pairs")
    all_distractors = cv_data.list_distractor_images(distractor_dir) if distractor_dir else []
    total = len(pair_split)
    rows = shard_rows(total, shard_index, num_shards, shard_mode)
    distractor_rows = shard_rows(len(all_distractors), shard_index, num_shards, shard_mode)
    if num_shards > 1:
        if not len(rows):
            raise ValueError(f"--num_shards={num_shards}: more shards than the {total} pairs of split {split!r}")
        pair_split = pair_split.subset(rows)
    distractor_paths = [all_distractors[i] for i in distractor_rows]
    crop_options = {"fov": fov, "random_orientation": random_orientation, "fov_test_seed": fov_test_seed}
    if enc is not None:
        crop = resolve_ground_crop(enc.info, **crop_options)
        sat, grd, index, distractors, skipped, kept_distractors = _pairs_with_encoder(
            enc, pair_split, distractor_paths, batch_size, progress, crop)
        info = enc.info
    else:
        sat, grd, index, distractors, skipped, info, kept_distractors = _pairs_with_model(
            checkpoint, dataset, pair_split, distractor_paths, batch_size, progress, crop_options, precision)
    _log_skipped(skipped)
    utm = None if pair_split.utm is None else np.asarray(pair_split.utm, np.float64)[index]
    out = {"satellite": sat, "ground": grd, "index": np.asarray(rows[index], np.int64), "utm": utm,
           "distractors": distractors, "distractor_paths": distractor_paths, "skipped": skipped,
           "info": info}
    if num_shards > 1:
        out["distractor_index"] = np.asarray(distractor_rows[kept_distractors], np.int64)
        out["shard"] = shard_record(shard_index, num_shards, shard_mode, total, len(all_distractors),
                                    checkpoint=checkpoint, dataset=dataset, data_dir=data_dir, split=split,
                                    max_pairs=max_pairs, info=info, loader_options=loader_options,
                                    ground_crop=crop_options)
    return out


def _pairs_with_encoder(enc, pair_split, distractor_paths, batch_size, progress, crop=None):
    """Pair descriptors through a RawImageEncoder (SavedModel): images read from the files."""
    from cvmnet_tf.inference.encoders import encode_image_files, panorama_crop_transform

    sat, sat_idx, s_skip = _encode_files(enc.satellite, pair_split.satellite_paths, batch_size, "satellite", progress)
    panorama = enc.info.get("panorama_size") or enc.info.get("ground_size")
    transform = None if crop is None else panorama_crop_transform(crop, panorama[1], len(pair_split))
    grd, grd_idx, g_skip = encode_image_files(enc.ground, pair_split.ground_paths, batch_size, "ground",
                                              progress=progress, transform=transform)
    index = np.intersect1d(sat_idx, grd_idx)
    sat = sat[np.searchsorted(sat_idx, index)]
    grd = grd[np.searchsorted(grd_idx, index)]
    skipped, distractors, kept = s_skip + g_skip, None, np.zeros(0, np.int64)
    if distractor_paths:
        distractors, kept, d_skip = _encode_files(enc.satellite, distractor_paths, batch_size, "distractor", progress)
        skipped += d_skip
    return sat, grd, index, distractors, skipped, np.asarray(kept, np.int64)


def _pairs_with_model(checkpoint, dataset, pair_split, distractor_paths, batch_size, progress, crop_options=None,
                      precision=None):
    """Pair descriptors through a loaded checkpoint and the tf.data pipelines."""
    from cvmnet_tf import data as cv_data
    from cvmnet_tf import models
    from cvmnet_tf.inference import checkpoints
    from cvmnet_tf.inference.fingerprint import model_fingerprint
    from cvmnet_tf.inference.precision import model_precision, with_precision

    keras_model, info = checkpoints.load_model(checkpoint)
    keras_model = with_precision(keras_model, precision)
    info = dict(info, precision=model_precision(keras_model), model_fingerprint=model_fingerprint(keras_model))
    crop = resolve_ground_crop(info, **(crop_options or {}))
    ground = info["panorama_size"] if crop.fov_deg < 360.0 else info["ground_size"]
    sizes = cv_data.ImageSizes(satellite=tuple(info["satellite_size"]), ground=tuple(ground))
    ds = cv_data.make_pair_dataset(pair_split, sizes, training=False, batch_size=batch_size, ground_crop=crop)
    total = -(-len(pair_split) // batch_size)
    sat, grd, index = pair_descriptors(keras_model, ds, total_batches=total, progress=progress)
    missing = sorted(set(range(len(pair_split))) - set(index.tolist()))
    skipped = [(i, f"{pair_split.satellite_paths[i]} / {pair_split.ground_paths[i]}") for i in missing]
    distractors, kept = None, np.zeros(0, np.int64)
    if distractor_paths:
        encoder = models.satellite_encoder(keras_model)
        dds = cv_data.make_image_dataset(distractor_paths, sizes.satellite, "satellite", batch_size, dataset=dataset)
        chunks, kept = [], []
        for b in dds:
            chunks.append(np.asarray(encoder(b["image"], training=False), np.float32))
            kept.append(b["index"].numpy())
        if not chunks:
            raise ValueError(f"--distractor_dir: no readable image among {len(distractor_paths)} file(s)")
        distractors, kept = np.concatenate(chunks), np.concatenate(kept).astype(np.int64)
        if len(distractors) != len(distractor_paths):
            skipped.append((-1, f"{len(distractor_paths) - len(distractors)} distractor image(s)"))
    return sat, grd, index, distractors, skipped, info, kept


def _extract_labelled(checkpoint, enc, split, batch_size, max_queries, progress, precision=None):
    import dataclasses

    from cvmnet_tf import data as cv_data
    from cvmnet_tf.inference import checkpoints

    if max_queries:
        split = dataclasses.replace(split, query=split.query.subset(range(min(max_queries, len(split.query)))))
    out, skipped = {"info": None}, []
    if enc is None:
        from cvmnet_tf.inference.precision import model_precision, with_precision

        model, info = checkpoints.load_model(checkpoint)
        model = with_precision(model, precision)
        info = dict(info, precision=model_precision(model))
        sizes = cv_data.ImageSizes(satellite=tuple(info["satellite_size"]), ground=tuple(info["ground_size"]))
    for side in ("query", "gallery"):
        images = getattr(split, side)
        if enc is None:
            desc, labels, kept = labelled_descriptors(model, images, sizes, batch_size, progress)
            skipped += [(i, images.paths[i]) for i in sorted(set(range(len(images))) - set(kept.tolist()))]
        else:
            desc, labels, kept, side_skipped = _labelled_with_encoder(enc, images, batch_size, progress)
            skipped += side_skipped
            info = enc.info
        out[side], out[f"{side}_labels"] = desc, np.asarray(labels, np.int64)
    _log_skipped(skipped)
    out.update(skipped=skipped, info=info, task=split.task)
    return out


def _log_skipped(skipped):
    if skipped:
        log.warning("%d item(s) skipped (unreadable or wrong size): %s", len(skipped),
                    first_items([p for _, p in skipped], 10))


def precision_agreement(reference: Dict[str, object], other: Dict[str, object],
                        ks=(1, 5, 10)) -> Dict[str, object]:
    """How far ``other``'s descriptors (e.g. bf16) are from ``reference``'s (float32) for the
    same pair split (both :func:`extract_descriptors` results of the same rows).

    Returns {"satellite" / "ground": {"max_cosine_difference", "mean_cosine_difference"}
    (1 - cos between the two descriptors of each image, over the images), "recall": {key:
    [reference, other, other - reference]} for recall@K and recall@1% (fractions), "rows",
    "precision": [reference's, other's]}. ValueError when the rows differ."""
    from cvmnet_tf.evaluation.metrics import evaluate_retrieval

    if "query" in reference or "query" in other:
        raise ValueError("precision_agreement compares pair-split results (satellite / ground descriptors)")
    if not np.array_equal(np.asarray(reference["index"]), np.asarray(other["index"])):
        raise ValueError("precision_agreement: the two results hold different rows of the split")
    out: Dict[str, object] = {"rows": int(len(reference["index"])),
                              "precision": [(reference.get("info") or {}).get("precision"),
                                            (other.get("info") or {}).get("precision")]}
    for side in ("satellite", "ground"):
        a = np.asarray(reference[side], np.float64)
        b = np.asarray(other[side], np.float64)
        cos = np.einsum("ij,ij->i", a, b) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1),
                                                        np.finfo(np.float64).tiny)
        out[side] = {"max_cosine_difference": float(np.max(1.0 - cos)),
                     "mean_cosine_difference": float(np.mean(1.0 - cos))}
    ref = evaluate_retrieval(reference["ground"], reference["satellite"], ks=ks)
    new = evaluate_retrieval(other["ground"], other["satellite"], ks=ks)
    keys = [f"recall@{k}" for k in ks] + ["recall@1%"]
    out["recall"] = {k: [ref[k], new[k], new[k] - ref[k]] for k in keys}
    return out


def agreement_lines(agreement: Dict[str, object]) -> list:
    """Printable lines of :func:`precision_agreement`'s dict (recalls in percent)."""
    ref, new = (p or "model's own" for p in agreement["precision"])
    lines = [f"Agreement of {new} with {ref} descriptors over {agreement['rows']} pairs:"]
    for side in ("satellite", "ground"):
        d = agreement[side]
        lines.append(f"  {side}: 1 - cos max {d['max_cosine_difference']:.3e}, mean {d['mean_cosine_difference']:.3e}")
    lines.append("  " + ", ".join(f"{k} {100 * a:.2f}% -> {100 * b:.2f}% ({100 * c:+.2f})"
                                  for k, (a, b, c) in agreement["recall"].items()))
    return lines


def check_result(result: Dict[str, object]) -> None:
    """Raise ValueError when the descriptors are inconsistent or not finite."""
    from cvmnet_tf.evaluation.metrics import check_descriptors
    if "query" in result:
        for side in ("query", "gallery"):
            d = check_descriptors(result[side], f"{side} descriptors")
            if np.asarray(result[f"{side}_labels"]).shape != (d.shape[0],):
                raise ValueError(f"{side}_labels must have shape ({d.shape[0]},)")
        if result["query"].shape[1] != result["gallery"].shape[1]:
            raise ValueError(f"query descriptors have dim {result['query'].shape[1]}, the gallery "
                             f"{result['gallery'].shape[1]}")
        return
    sat = check_descriptors(result["satellite"], "satellite descriptors")
    grd = check_descriptors(result["ground"], "ground descriptors")
    if sat.shape != grd.shape:
        raise ValueError(f"satellite descriptors {sat.shape} and ground descriptors {grd.shape} differ in shape")
    index = np.asarray(result["index"])
    if index.shape != (sat.shape[0],):
        raise ValueError(f"index has shape {index.shape}, expected ({sat.shape[0]},)")
    if result.get("utm") is not None and np.asarray(result["utm"]).shape != (sat.shape[0], 2):
        raise ValueError(f"utm has shape {np.asarray(result['utm']).shape}, expected ({sat.shape[0]}, 2)")
    if result.get("distractors") is not None:
        d = check_descriptors(result["distractors"], "distractor descriptors")
        if d.shape[1] != sat.shape[1]:
            raise ValueError(f"distractor descriptors have dim {d.shape[1]}, the pairs {sat.shape[1]}")


def output_paths(prefix: str, result_or_distractors) -> Dict[str, str]:
    """{kind: path} of the files :func:`write_descriptors` writes for ``result`` (or, for a
    pair split, a bool: with distractors)."""
    if isinstance(result_or_distractors, dict) and "query" in result_or_distractors:
        return {k: f"{prefix}_{k}.npy" for k in ("query", "query_labels", "gallery", "gallery_labels")}
    with_distractors = (result_or_distractors.get("distractors") is not None
                        if isinstance(result_or_distractors, dict) else bool(result_or_distractors))
    paths = {"satellite": f"{prefix}_satellite.npy", "ground": f"{prefix}_ground.npy",
             "index": f"{prefix}_index.npy", "mat": f"{prefix}.mat"}
    if with_distractors:
        paths["distractors"] = f"{prefix}_distractors.npy"
        paths["distractor_paths"] = f"{prefix}_distractors.txt"
    return paths


def _save_npy(path, array):
    with open(path, "wb") as f:
        np.save(f, array)


def write_descriptors(prefix: str, result: Dict[str, object]) -> Dict[str, str]:
    """Write the files of the module docstring; all-or-nothing (temporary names first,
    renamed once every file is written). Returns {kind: path}."""
    import scipy.io

    check_result(result)
    paths = output_paths(prefix, result)
    with atomic_io.atomic_paths(paths) as tmps:
        if "query" in result:
            for key in ("query", "gallery"):
                _save_npy(tmps[key], np.ascontiguousarray(result[key], np.float32))
                _save_npy(tmps[f"{key}_labels"], np.asarray(result[f"{key}_labels"], np.int64))
            return paths
        for key in ("satellite", "ground", "distractors"):
            if key in paths:
                _save_npy(tmps[key], np.ascontiguousarray(result[key], np.float32))
        _save_npy(tmps["index"], np.asarray(result["index"], np.int64))
        mat = {"sat_global_descriptor": np.asarray(result["satellite"], np.float32),
               "grd_global_descriptor": np.asarray(result["ground"], np.float32)}
        if result.get("utm") is not None:
            mat["utm"] = np.asarray(result["utm"], np.float64)
        with open(tmps["mat"], "wb") as f:
            scipy.io.savemat(f, mat)
        if "distractor_paths" in paths:
            with open(tmps["distractor_paths"], "w", encoding="utf-8") as f:
                f.write("".join(p + "\n" for p in result["distractor_paths"]))
    return paths


# ------------------------------------------------------------------ descriptor files (read)
def read_npy(path: str, what: str) -> np.ndarray:
    """A ``.npy`` array (no pickles); ValueError naming ``what`` (e.g. the flag) and the file."""
    import os

    if not os.path.isfile(path):
        raise ValueError(f"{what}: file not found: {path}")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic != b"\x93NUMPY":
        kind = "an .npz archive" if magic[:2] == b"PK" else "a pickle" if magic[:1] == b"\x80" else (
            "empty" if not magic else "text or another format")
        raise ValueError(f"{what}: {path} is not a .npy array file ({kind}; write descriptors with numpy.save)")
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickled" in str(exc) or "allow_pickle" in str(exc):
            raise ValueError(f"{what}: {path} holds Python objects (an object array), not numbers; descriptors "
                             "must be a numeric (N, dim) array (they are never unpickled)") from None
        raise ValueError(f"{what}: {path} is a damaged .npy file ({exc})") from None
    except OSError as exc:
        raise ValueError(f"{what}: cannot read {path}: {exc}") from None


def read_oricnn_mat(path: str, what: str = "--descriptors_mat"):
    """(ground, satellite) descriptors of an OriCNN-style ``.mat`` (``grd_global_descriptor``,
    ``sat_global_descriptor``, as :func:`write_descriptors` writes); ValueError otherwise."""
    import os

    if not os.path.isfile(path):
        raise ValueError(f"{what}: file not found: {path}")
    from scipy.io import loadmat

    try:
        mat = loadmat(path)
    except NotImplementedError:
        raise ValueError(f"{what}: {path} is a MATLAB v7.3 (HDF5) file, which is not supported; save it with "
                         "'-v7' or scipy.io.savemat") from None
    except Exception as exc:  # noqa: BLE001 - scipy raises several kinds (MatReadError, TypeError, ...)
        raise ValueError(f"{what}: {path} is not a readable MATLAB .mat file ({exc})") from None
    missing = [k for k in ("grd_global_descriptor", "sat_global_descriptor") if k not in mat]
    if missing:
        raise ValueError(f"{what}: {path} lacks {missing}; found {sorted(k for k in mat if not k.startswith('__'))}")
    return mat["grd_global_descriptor"], mat["sat_global_descriptor"]


def read_utm(path: str, what: str) -> np.ndarray:
    """(N, 2) positions in metres from ``.npy`` or text (``.csv``: comma separated)."""
    import os

    if path.endswith(".npy"):
        return read_npy(path, what)
    if not os.path.isfile(path):
        raise ValueError(f"{what}: file not found: {path}")
    try:
        return np.loadtxt(path, delimiter="," if path.endswith(".csv") else None, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{what}: cannot parse {path} as (N, 2) numbers: {exc}") from exc
