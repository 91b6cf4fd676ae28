"""The per-epoch validation of the training loop: recall (and geo-recall / AP / VIGOR's metrics) on a split,
with the figures under both tie rules and the images that could not be read."""

from __future__ import annotations

import numpy as np

__all__ = ["validate_split", "evaluate_model", "evaluate_labelled_model", "evaluate_vigor_model", "chance_recall_at_top_percent",
           "chance_recall_at_k"]


def validate_split(model, split, sizes, config):
    """``(metrics, skipped)`` of ``model`` on ``split``.

    metrics: recall@1/5/10/1% (ground -> satellite), the median rank fraction, the same
    with ties counted against the query ("pessimistic/..."; collapsed descriptors read as
    perfect under the released rule alone) and "tied_queries"; CVACT also geo-recall. A
    labelled :class:`~cvmnet_tf.data.RetrievalSplit` (University-1652): recall@K and AP
    (:func:`evaluate_labelled_model`). skipped: the split's unreadable images
    (:class:`~cvmnet_tf.data.DroppedItem`: index, path, reason), left out of the metrics.
    A :class:`~cvmnet_tf.data.vigor.VigorSplit`: VIGOR's metrics (:func:`evaluate_vigor_model`).
    Ground panoramas get the run's ground crop (``config.ground_crop``: limited FoV /
    unknown orientation at the fixed-seed test headings).
    """
    from cvmnet_tf import data as cv_data
    from cvmnet_tf import evaluation
    from cvmnet_tf.data.vigor import VigorSplit
    from cvmnet_tf.inference.descriptors import pair_descriptors

    if isinstance(split, cv_data.RetrievalSplit):
        return _labelled(model, split, sizes, config)
    if isinstance(split, VigorSplit):
        return _vigor(model, split, sizes, config)

    dataset, report = cv_data.make_pair_dataset(split, sizes, training=False, batch_size=max(config.batch_size, 32),
                                                return_report=True, ground_crop=getattr(config, "ground_crop", None))
    sat, grd, index = pair_descriptors(model, dataset)
    report.observe(index)
    skipped = report.end_epoch(log_result=False).skipped
    result = evaluation.compute_ranks(grd, sat)  # one scan serves every metric below
    metrics = {}
    for prefix, ranks in (("", result.ground_to_satellite), ("pessimistic/", result.ground_to_satellite_pessimistic)):
        metrics.update({f"{prefix}recall@{k}": evaluation.recall_at_k(ranks, k) for k in (1, 5, 10)})
        metrics[f"{prefix}recall@1%"] = evaluation.recall_at_top_percent(ranks, len(sat))
        # Median rank of the true satellite image (0 = first), as a fraction of the database:
        # 0.5 for a random ranking; shows learning before recall@1% moves.
        metrics[f"{prefix}median_rank_fraction"] = float(np.median(ranks) / len(sat))
    metrics["tied_queries"] = float(np.mean(result.ground_to_satellite_pessimistic != result.ground_to_satellite))
    # what a random ranking scores (one true match among N): recall@K = K / N
    metrics["chance_recall@1"] = chance_recall_at_k(np.ones(len(grd)), len(sat), 1)
    metrics["chance_recall@1%"] = chance_recall_at_top_percent(len(sat))
    if split.utm is not None:
        utm = np.asarray(split.utm, dtype=np.float64)[index]
        geo = evaluation.geo_recall(grd, sat, utm, utm, threshold_m=config.geo_threshold_m, ks=(1, 5, 10))
        metrics.update({k: float(v) for k, v in geo.items()})
    metrics["num_database"] = int(sat.shape[0])
    return metrics, skipped


def evaluate_model(model, split, sizes, config) -> dict:
    """The metrics of :func:`validate_split` (without the skipped images)."""
    return validate_split(model, split, sizes, config)[0]


def _labelled(model, split, sizes, config):
    from cvmnet_tf import evaluation
    from cvmnet_tf.data.pipeline import SkipReport
    from cvmnet_tf.inference.descriptors import labelled_descriptors

    batch = max(config.batch_size, 32)
    sides, skipped = [], []
    for images in (split.query, split.gallery):
        desc, labels, kept = labelled_descriptors(model, images, sizes, batch)
        size = sizes.ground if images.kind == "ground" else sizes.satellite
        report = SkipReport.for_images(images.paths, size, images.kind, images.dataset)
        report.observe(kept)
        skipped += report.end_epoch(log_result=False).skipped
        sides.append((desc, labels))
    (query, query_labels), (gallery, gallery_labels) = sides
    k_percent = evaluation.top_percent_k(len(gallery))
    ks = tuple(sorted({1, 5, 10, k_percent}))
    result = evaluation.labelled_retrieval(query, gallery, query_labels, gallery_labels, ks=ks)
    metrics = {}
    for prefix in ("", "pessimistic/"):
        metrics.update({f"{prefix}recall@{k}": float(result[f"{prefix}recall@{k}"]) for k in (1, 5, 10)})
        metrics[f"{prefix}recall@1%"] = float(result[f"{prefix}recall@{k_percent}"])
    metrics["tied_queries"] = float(result["tied_queries"])
    metrics["AP"] = float(result["AP"])
    true_per_query = (np.asarray(query_labels)[:, None] == np.asarray(gallery_labels)[None, :]).sum(1)
    metrics["chance_recall@1"] = chance_recall_at_k(true_per_query, len(gallery), 1)
    metrics["chance_recall@1%"] = chance_recall_at_k(true_per_query, len(gallery), k_percent)
    metrics["num_database"] = int(len(gallery))
    metrics["num_query"] = int(len(query))
    return metrics, skipped


def evaluate_labelled_model(model, split, sizes, config) -> dict:
    """Recall@1/5/10/1% and AP of ``model`` on a labelled query/gallery split.

    Each side runs through its own branch: "ground" images (drone or ground views) through
    the ground encoder, "satellite" images through the satellite encoder. A query's true
    matches are the gallery images with its label (University-1652: several per query).
    """
    return _labelled(model, split, sizes, config)[0]


def chance_recall_at_k(true_matches, num_database: int, k: int) -> float:
    """Mean recall@K of a uniformly random ranking of ``num_database`` items, for queries with
    ``true_matches`` (int array) true items each: 1 - C(N - m, K) / C(N, K) per query
    (= K / N for one true match)."""
    m = np.asarray(true_matches, np.int64).ravel()
    n, k = int(num_database), int(k)
    if n <= 0 or m.size == 0:
        return 0.0
    miss = np.ones(m.size)
    for i in range(min(k, n)):   # prod_{i<K} (N - m - i) / (N - i)
        miss *= np.clip((n - m - i) / (n - i), 0.0, 1.0)
    return float(np.mean(1.0 - miss))


def _vigor(model, split, sizes, config):
    from cvmnet_tf.data.splits import DroppedItem
    from cvmnet_tf.evaluation.vigor_metrics import evaluate_vigor
    from cvmnet_tf.inference.descriptors import vigor_descriptors

    out = vigor_descriptors(model, split, sizes, max(config.batch_size, 32), getattr(config, "ground_crop", None))
    kept = out["split"]
    metrics = evaluate_vigor(out["ground"], out["satellite"], kept.positive_index, kept.semi_positive_index,
                             query_latlon=kept.panorama_latlon, satellite_latlon=kept.satellite_latlon,
                             metres_per_pixel=kept.metres_per_pixel)
    # the training loop's chance keys (one positive per query: K / N)
    metrics["chance_recall@1"] = metrics["chance/recall@1"]
    metrics["chance_recall@1%"] = metrics["chance/recall@1%"]
    return metrics, [DroppedItem(i, path, "unreadable image") for i, path in out["skipped"]]


def evaluate_vigor_model(model, split, sizes, config) -> dict:
    """VIGOR's metrics of ``model`` on a :class:`~cvmnet_tf.data.vigor.VigorSplit`: every
    panorama against the whole satellite pool (:func:`cvmnet_tf.inference.descriptors.vigor_descriptors`,
    then :func:`cvmnet_tf.evaluation.vigor_metrics.evaluate_vigor`: recall@1/5/10/1% with
    the positive only, hit rate, metre-level error of the top-1 tile's centre, chance
    levels), in blocks of bounded memory; unreadable images are left out (and returned by
    :func:`validate_split`)."""
    return _vigor(model, split, sizes, config)[0]


def chance_recall_at_top_percent(num_database: int, percent: float = 1.0) -> float:
    """Recall@1% of a random ranking: K / N with K = int(0.01 N) + 1."""
    if num_database <= 0:
        return 0.0
    return min(1.0, (int(num_database * percent / 100.0) + 1) / num_database)
