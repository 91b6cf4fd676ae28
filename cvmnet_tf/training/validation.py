"""The per-epoch validation of the training loop: recall (and geo-recall / AP) on a split."""

from __future__ import annotations

import numpy as np

__all__ = ["evaluate_model", "evaluate_labelled_model", "chance_recall_at_top_percent", "chance_recall_at_k"]


def evaluate_model(model, split, sizes, config) -> dict:
    """Recall@1/5/10/1% (ground -> satellite) of ``model`` on ``split``; CVACT also geo-recall.

    A labelled :class:`~cvmnet_tf.data.RetrievalSplit` (University-1652) is evaluated by
    :func:`evaluate_labelled_model` instead.
    """
    from cvmnet_tf import data as cv_data
    from cvmnet_tf import evaluation
    from cvmnet_tf.inference.descriptors import pair_descriptors

    if isinstance(split, cv_data.RetrievalSplit):
        return evaluate_labelled_model(model, split, sizes, config)

    dataset = cv_data.make_pair_dataset(split, sizes, training=False, batch_size=max(config.batch_size, 32))
    sat, grd, index = pair_descriptors(model, dataset)
    ranks = evaluation.retrieval_ranks(grd, sat)  # one scan serves every metric below
    metrics = {f"recall@{k}": evaluation.recall_at_k(ranks, k) for k in (1, 5, 10)}
    metrics["recall@1%"] = evaluation.recall_at_top_percent(ranks, len(sat))
    # Median rank of the true satellite image (0 = first), as a fraction of the database:
    # 0.5 for a random ranking; shows learning before recall@1% moves.
    metrics["median_rank_fraction"] = float(np.median(ranks) / len(sat))
    # what a random ranking scores (one true match among N): recall@K = K / N
    metrics["chance_recall@1"] = chance_recall_at_k(np.ones(len(grd)), len(sat), 1)
    metrics["chance_recall@1%"] = chance_recall_at_top_percent(len(sat))
    if split.utm is not None:
        utm = np.asarray(split.utm, dtype=np.float64)[index]
        geo = evaluation.geo_recall(grd, sat, utm, utm, threshold_m=config.geo_threshold_m, ks=(1, 5, 10))
        metrics.update({k: float(v) for k, v in geo.items()})
    metrics["num_database"] = int(sat.shape[0])
    return metrics


def evaluate_labelled_model(model, split, sizes, config) -> dict:
    """Recall@1/5/10/1% and AP of ``model`` on a labelled query/gallery split.

    Each side runs through its own branch: "ground" images (drone or ground views) through
    the ground encoder, "satellite" images through the satellite encoder. A query's true
    matches are the gallery images with its label (University-1652: several per query).
    """
    from cvmnet_tf import evaluation
    from cvmnet_tf.inference.descriptors import labelled_descriptors

    batch = max(config.batch_size, 32)
    query, query_labels, _ = labelled_descriptors(model, split.query, sizes, batch)
    gallery, gallery_labels, _ = labelled_descriptors(model, split.gallery, sizes, batch)
    k_percent = evaluation.top_percent_k(len(gallery))
    ks = tuple(sorted({1, 5, 10, k_percent}))
    result = evaluation.labelled_retrieval(query, gallery, query_labels, gallery_labels, ks=ks)
    metrics = {f"recall@{k}": float(result[f"recall@{k}"]) for k in (1, 5, 10)}
    metrics["recall@1%"] = float(result[f"recall@{k_percent}"])
    metrics["AP"] = float(result["AP"])
    true_per_query = (np.asarray(query_labels)[:, None] == np.asarray(gallery_labels)[None, :]).sum(1)
    metrics["chance_recall@1"] = chance_recall_at_k(true_per_query, len(gallery), 1)
    metrics["chance_recall@1%"] = chance_recall_at_k(true_per_query, len(gallery), k_percent)
    metrics["num_database"] = int(len(gallery))
    metrics["num_query"] = int(len(query))
    return metrics


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


def chance_recall_at_top_percent(num_database: int, percent: float = 1.0) -> float:
    """Recall@1% of a random ranking: K / N with K = int(0.01 N) + 1."""
    if num_database <= 0:
        return 0.0
    return min(1.0, (int(num_database * percent / 100.0) + 1) / num_database)
