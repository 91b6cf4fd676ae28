"""Tests of cvmnet_tf.evaluation metrics, geo-recall and published numbers.

Every result is compared with an independent brute-force NumPy reference written
here (full distance matrix 2 - 2 q.d in float64, explicit loops).
"""
import numpy as np
import pytest

from cvmnet_tf.evaluation import geo, metrics, published
from cvmnet_tf.evaluation import (
    comparison_table,
    evaluate_retrieval,
    recall_at_k,
    recall_at_top_percent,
    retrieval_ranks,
    top_k_curve,
    top_percent_k,
)


# ---------------------------------------------------------------- references
def ref_ranks(q, d, true_index):
    """Loop over queries: database items with distance strictly below the true one."""
    dist = 2.0 - 2.0 * (q.astype(np.float64) @ d.astype(np.float64).T)
    out = []
    for i in range(len(q)):
        gt = dist[i, true_index[i]]
        out.append(sum(1 for j in range(d.shape[0]) if dist[i, j] < gt))
    return np.array(out)


def ref_topk_lists(q, d):
    """Database indices by increasing distance, ties by index (MATLAB's stable sort)."""
    dist = 2.0 - 2.0 * (q.astype(np.float64) @ d.astype(np.float64).T)
    return [sorted(range(d.shape[0]), key=lambda j: (dist[i, j], j)) for i in range(len(q))]


def exact_data(rng, n, dim, extra=0):
    """Descriptors on a 1/4 grid: every dot product is exact in float32, so ties are real.

    Planted ties: some database rows duplicate a query's true match, others
    duplicate another row.
    """
    q = rng.integers(-3, 4, size=(n, dim)).astype(np.float32) / 4
    d = np.concatenate([q + rng.integers(-1, 2, size=(n, dim)).astype(np.float32) / 4,
                        rng.integers(-3, 4, size=(extra, dim)).astype(np.float32) / 4])
    d[5] = d[3]           # duplicate of query 3's true match (tie, not strictly closer)
    d[7] = d[9]
    if extra:
        d[n] = d[0]       # a distractor tied with query 0's true match
        d[n + 1] = q[1] * 2   # a distractor strictly closer to query 1 (if q1 . q1 > q1 . d1 / 2)
    return q, d


# ---------------------------------------------------------------- ranks
def test_ranks_match_bruteforce_with_planted_ties_and_block_sizes():
    rng = np.random.default_rng(0)
    q, d = exact_data(rng, 60, 6, extra=25)
    ref = ref_ranks(q, d, np.arange(60))
    # The planted ties are real: query 3 has a database twin equal to its true match.
    sims = q[3] @ d.T
    assert sims[5] == sims[3]
    results = [retrieval_ranks(q, d, block_size=b) for b in (1, 2, 7, 16, 60, None)]
    for r in results:
        assert r.dtype == np.int64
        np.testing.assert_array_equal(r, ref)
    # A tie is never counted: ranks from '<=' would be larger somewhere.
    dist = 2 - 2 * (q.astype(np.float64) @ d.T.astype(np.float64))
    le = np.array([(dist[i] <= dist[i, i]).sum() - 1 for i in range(60)])
    assert (le > ref).any()


def test_ranks_random_gaussian_and_custom_true_index():
    rng = np.random.default_rng(1)
    q = rng.standard_normal((40, 16)).astype(np.float32)
    d = rng.standard_normal((70, 16)).astype(np.float32)
    ti = rng.integers(0, 70, size=40)
    np.testing.assert_array_equal(retrieval_ranks(q, d, true_index=ti, block_size=9), ref_ranks(q, d, ti))
    np.testing.assert_array_equal(retrieval_ranks(q, d), ref_ranks(q, d, np.arange(40)))


def test_evaluate_retrieval_with_distractors_and_both_directions():
    rng = np.random.default_rng(2)
    n, extra = 50, 30
    q, d = exact_data(rng, n, 5, extra=extra)
    res = metrics.compute_ranks(q, d, directions=("ground_to_satellite", "satellite_to_ground"), block_size=8)
    ref_all = ref_ranks(q, d, np.arange(n))
    ref_true = ref_ranks(q, d[:n], np.arange(n))
    # satellite -> ground: satellite i queries the ground set, true match ground i.
    ref_s2g = ref_ranks(d[:n], q, np.arange(n))
    np.testing.assert_array_equal(res.ground_to_satellite, ref_all)
    np.testing.assert_array_equal(res.ground_to_satellite_no_distractors, ref_true)
    np.testing.assert_array_equal(res.satellite_to_ground, ref_s2g)
    assert res.num_distractors == extra
    out = evaluate_retrieval(q, d, directions=("ground_to_satellite", "satellite_to_ground"), block_size=16)
    k1 = int((n + extra) * 0.01) + 1
    assert out["top_percent_k"] == k1 == 1
    assert out["recall@1"] == pytest.approx(np.mean(ref_all < 1), abs=0)
    assert out["recall@5"] == pytest.approx(np.mean(ref_all < 5), abs=0)
    assert out["recall@10"] == pytest.approx(np.mean(ref_all < 10), abs=0)
    assert out["recall@1%"] == pytest.approx(np.mean(ref_all < k1), abs=0)
    assert out["no_distractors/recall@5"] == pytest.approx(np.mean(ref_true < 5), abs=0)
    assert out["satellite_to_ground/recall@5"] == pytest.approx(np.mean(ref_s2g < 5), abs=0)
    # Distractors only ever push the true match down.
    assert (ref_all >= ref_true).all() and (ref_all > ref_true).any()


def test_recall_functions_and_top_percent_cutoff():
    assert top_percent_k(8884) == 89
    assert top_percent_k(8884, rule="safa") == 88
    assert top_percent_k(8884, rule="sample4geo") == 88
    assert top_percent_k(100) == 2 and top_percent_k(100, rule="safa") == 1
    assert top_percent_k(92802) == 929
    ranks = np.array([0, 88, 89, 5, 200, 0, 1, 9, 10, 4])
    assert recall_at_top_percent(ranks, 8884) == pytest.approx(8 / 10)   # 88 counts, 89 does not
    assert recall_at_top_percent(ranks, 8884, rule="safa") == pytest.approx(7 / 10)  # 88 does not
    assert recall_at_k(ranks, 1) == pytest.approx(0.2)
    assert recall_at_k(ranks, 5) == pytest.approx(0.4)
    assert recall_at_k(ranks, 10) == pytest.approx(0.6)
    curve = top_k_curve(ranks, 12)
    ref = [np.mean([r < k for r in ranks]) for k in range(1, 13)]
    np.testing.assert_allclose(curve, ref, rtol=0, atol=1e-15)
    with pytest.raises(ValueError):
        recall_at_k(ranks, 0)
    with pytest.raises(ValueError):
        top_percent_k(100, rule="other")


def test_top_k_indices_match_stable_sort():
    rng = np.random.default_rng(3)
    q, d = exact_data(rng, 20, 4, extra=10)
    got = metrics.top_k_indices(q, d, 5, rows=[0, 3, 7], block_size=2)
    ref = ref_topk_lists(q, d)
    for row, i in enumerate([0, 3, 7]):
        assert list(got[row]) == ref[i][:5]


# ---------------------------------------------------------------- input checks
@pytest.mark.parametrize("bad, match", [
    (lambda q, d: (q[0], d), "query: descriptors must be a 2-D"),
    (lambda q, d: (q, d[None]), "database: descriptors must be a 2-D"),
    (lambda q, d: (q, d[:, :3]), "dimensions differ"),
    (lambda q, d: (q, d[:5]), "database has 5 rows but there are 10 queries"),
    (lambda q, d: (np.where(np.arange(10)[:, None] == 4, np.nan, q), d), r"query: .*NaN or inf \(first bad row 4\)"),
    (lambda q, d: (q, np.where(np.arange(12)[:, None] == 11, np.inf, d)), r"database: .*NaN or inf \(first bad row 11\)"),
])
def test_input_errors_name_the_array(bad, match):
    rng = np.random.default_rng(4)
    q = rng.standard_normal((10, 4)).astype(np.float32)
    d = rng.standard_normal((12, 4)).astype(np.float32)
    with pytest.raises(ValueError, match=match):
        retrieval_ranks(*bad(q, d))


# ---------------------------------------------------------------- geo
def _geo_setup():
    rng = np.random.default_rng(5)
    n, extra = 40, 20
    q = rng.standard_normal((n, 8)).astype(np.float32)
    d = np.concatenate([q + 0.8 * rng.standard_normal((n, 8)).astype(np.float32),
                        rng.standard_normal((extra, 8)).astype(np.float32)])
    q_utm = rng.uniform(0, 5000, (n, 2))
    d_utm = np.concatenate([q_utm, rng.uniform(0, 5000, (extra, 2))])
    # Planted neighbours of query i among the extra rows: 3-4-5 triangle exactly
    # at 5 m (inclusive), 4.99 m (near), 5.01 m and 20 m (far).
    offsets = [(3.0, 4.0), (0.0, 4.99), (5.01, 0.0), (20.0, 0.0)]
    for k, i in enumerate(range(0, 20, 2)):
        for m, off in enumerate(offsets[:2] if k % 2 else offsets[2:]):
            d_utm[n + 2 * k + m] = q_utm[i] + off
    q_utm[39] = [1e6, 1e6]   # no database row within 5 m: never a hit
    return q, d, q_utm, d_utm


def test_geo_recall_matches_bruteforce_recallgeo():
    q, d, q_utm, d_utm = _geo_setup()
    ranks = geo.geo_ranks(q, d, q_utm, d_utm, threshold_m=5.0, block_size=7)
    lists = ref_topk_lists(q, d)
    max_k = 30
    ref_curve = np.zeros(max_k)
    for i in range(len(q)):
        within = [np.sqrt(((q_utm[i] - d_utm[j]) ** 2).sum()) <= 5.0 for j in lists[i][:max_k]]
        ref_curve += np.cumsum(within) > 0
    ref_curve /= len(q)
    np.testing.assert_allclose(top_k_curve(ranks, max_k), ref_curve, rtol=0, atol=1e-15)
    assert ranks[39] == d.shape[0]
    # The planted near rows make the geo recall higher than exact-id recall.
    plain = retrieval_ranks(q, d)
    # (query 39 was moved away from its own satellite image, so it is excluded.)
    assert (ranks[:39] <= plain[:39]).all() and (ranks[:39] < plain[:39]).any()
    out = geo.geo_recall(q, d, q_utm, d_utm, ks=(1, 5))
    assert out["geo/recall@1"] == pytest.approx(ref_curve[0], abs=1e-15)
    assert out["geo/recall@5"] == pytest.approx(ref_curve[4], abs=1e-15)


def test_near_sets_threshold_is_inclusive():
    q_utm = np.array([[0.0, 0.0], [100.0, 100.0]])
    d_utm = np.array([[3.0, 4.0], [0.0, 5.01], [100.0, 100.0], [0.0, -4.99], [103.0, 96.0]])
    indptr, idx = geo.near_sets(q_utm, d_utm, 5.0)
    assert list(idx[indptr[0]:indptr[1]]) == [0, 3]
    assert list(idx[indptr[1]:indptr[2]]) == [2, 4]


def test_localization_errors_and_recall_at_distance():
    q, d, q_utm, d_utm = _geo_setup()
    best, err = geo.localization_errors(q, d, q_utm, d_utm, block_size=5)
    sims = q.astype(np.float64) @ d.T.astype(np.float64)
    ref_best = sims.argmax(axis=1)
    np.testing.assert_array_equal(best, ref_best)
    ref_err = np.array([np.hypot(*(q_utm[i] - d_utm[ref_best[i]])) for i in range(len(q))])
    np.testing.assert_allclose(err, ref_err, rtol=1e-12)
    th = [0.0, 5.0, 100.0, 1000.0, 1e7]
    np.testing.assert_allclose(geo.recall_at_distance(err, th), [np.mean(ref_err <= t) for t in th], atol=1e-15)
    s = geo.localization_summary(err, (100,))
    assert s["localization/mean_error_m"] == pytest.approx(ref_err.mean(), rel=1e-12)
    assert s["localization/recall@100m"] == pytest.approx(np.mean(ref_err <= 100), abs=1e-15)


def test_utm_errors():
    q = np.ones((3, 2), np.float32)
    with pytest.raises(ValueError, match="query_utm"):
        geo.geo_ranks(q, q, np.zeros((2, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="database_utm"):
        geo.geo_ranks(q, q, np.zeros((3, 2)), np.zeros((3, 3)))


# ---------------------------------------------------------------- published
def test_published_values():
    def one(**kw):
        rows = published.find_published(**kw)
        assert len(rows) == 1, rows
        return rows[0]

    assert one(model="cvm_net_i", dataset="cvusa", backbone="alexnet", loss="weighted_quadruplet") \
        .recall_at_1_percent == 73.7
    assert one(model="cvm_net_ii", dataset="cvusa", backbone="vgg16", loss="contrastive").recall_at_1_percent == 79.8
    assert one(model="CVM-Net-II", dataset="vohays").recall_at_1_percent == 66.6
    assert one(model="siamese_alexnet", dataset="cvusa").recall_at_1_percent == 4.7
    assert one(model="zhai", dataset="cvusa").recall_at_1_percent == 43.2
    r = one(model="cvm_net_i", dataset="cvact_val")
    assert (r.recall_at_1, r.recall_at_5, r.recall_at_10, r.recall_at_1_percent) == (20.15, 45.00, 56.87, 87.57)
    s = one(model="safa", dataset="cvusa")
    assert (s.recall_at_1, s.recall_at_1_percent, s.cutoff_rule) == (89.84, 99.64, "safa")
    s4 = one(model="sample4geo", dataset="cvact_val")
    assert (s4.recall_at_1, s4.recall_at_1_percent, s4.cutoff_rule) == (90.81, 98.77, "sample4geo")
    cvusa_rows = published.find_published(model="cvm_net_i", dataset="cvusa", backbone="vgg16",
                                          loss="weighted_soft_margin_triplet")
    assert sorted(r.recall_at_1_percent for r in cvusa_rows) == [91.4, 91.4, 91.54, 93.62]
    assert published.LOCALIZATION == {"recall_within_100m_percent": 67.1, "mean_error_m": 676.7}


def test_comparison_table():
    res = {"recall@1": 0.1234, "recall@5": 0.3, "recall@10": 0.4, "recall@1%": 0.8765,
           "num_database": 8884, "top_percent_k": 89}
    md = comparison_table(res, model="cvm_net_ii", dataset="cvusa", backbone="vgg16", loss="weighted_quadruplet")
    lines = md.splitlines()
    assert lines[0].startswith("| Setting |")
    ours = [ln for ln in lines if "this run" in ln][0]
    assert "| 12.34 |" in ours and "| 87.65 |" in ours and "K = 89" in ours and "int(0.01 N) + 1" in ours
    theirs = [ln for ln in lines if "Table 2" in ln]
    assert len(theirs) == 1 and "| 88.70 |" in theirs[0]
    md2 = comparison_table(res, model="cvm_net_i", dataset="cvact_val", include_state_of_the_art=True)
    assert "| 87.57 |" in md2 and "98.17" in md2 and "rank < int(0.01 N) (SAFA)" in md2
    with pytest.raises(ValueError, match="no published numbers"):
        comparison_table(res, model="cvm_net_iii", dataset="cvusa")


# ---------------------------------------------------------------- ties (collapsed descriptors)
def ref_pessimistic_ranks(q, d, true_index):
    """Loop over queries: OTHER database items at least as close as the true one (ties
    counted against the query). Exact on the 1/4 grid of exact_data."""
    dist = 2.0 - 2.0 * (q.astype(np.float64) @ d.astype(np.float64).T)
    return np.array([sum(1 for j in range(d.shape[0]) if j != true_index[i] and dist[i, j] <= dist[i, true_index[i]])
                     for i in range(len(q))])


def test_pessimistic_ranks_count_ties_against_the_query_with_distractors_and_blocks():
    rng = np.random.default_rng(3)
    n, extra = 50, 30
    q, d = exact_data(rng, n, 5, extra=extra)
    ref = ref_pessimistic_ranks(q, d, np.arange(n))
    ref_true = ref_pessimistic_ranks(q, d[:n], np.arange(n))
    strict = ref_ranks(q, d, np.arange(n))
    assert (ref > strict).sum() >= 3          # the planted ties are there and decide some ranks
    for b in (1, 7, 50, None):
        res = metrics.compute_ranks(q, d, block_size=b)
        np.testing.assert_array_equal(res.ground_to_satellite, strict)
        np.testing.assert_array_equal(res.ground_to_satellite_pessimistic, ref)
        np.testing.assert_array_equal(res.ground_to_satellite_no_distractors_pessimistic, ref_true)
    out = metrics.summarize_ranks(res)
    for k in (1, 5, 10):
        assert out[f"pessimistic/recall@{k}"] == np.mean(ref < k)
        assert out[f"no_distractors/pessimistic/recall@{k}"] == np.mean(ref_true < k)
    assert out["tied_queries"] == np.mean(ref != strict)


def test_collapsed_descriptors_read_perfect_only_under_the_released_rule():
    n, dim = 200, 32
    k1 = top_percent_k(n)
    for q in (np.zeros((n, dim), np.float32), np.full((n, dim), 0.25, np.float32)):
        out = evaluate_retrieval(q, q.copy())
        assert out["recall@1"] == out["recall@1%"] == 1.0            # the released rule: ties win
        assert out["pessimistic/recall@1"] == out["pessimistic/recall@1%"] == 0.0
        assert out["pessimistic/recall@10"] == 0.0 and out["tied_queries"] == 1.0
        warning = metrics.tie_warning(out)
        assert warning.startswith("ties decide this ranking: 100.0% of the queries")
        assert "recall@1 is 100.00%" in warning
    # Near-constant: one shared direction plus noise far below float32 resolution of the dot product.
    rng = np.random.default_rng(4)
    base = rng.standard_normal(dim).astype(np.float32)
    base /= np.linalg.norm(base)
    q = (base + 1e-9 * rng.standard_normal((n, dim))).astype(np.float32)
    out = evaluate_retrieval(q, q.copy())
    assert out["tied_queries"] > 0.9 and out["pessimistic/recall@1%"] < 0.1 < out["recall@1%"]
    assert metrics.tie_warning(out) is not None and k1 == 3
    # Well-separated descriptors: both rules agree, no warning.
    g = rng.standard_normal((n, dim)).astype(np.float32)
    out = evaluate_retrieval(g, g + 0.5 * rng.standard_normal((n, dim)).astype(np.float32))
    assert out["tied_queries"] == 0.0 and metrics.tie_warning(out) is None
    for k in (1, 5, 10):
        assert out[f"pessimistic/recall@{k}"] == out[f"recall@{k}"]


# ---------------------------------------------------------------- chance level of localization
@pytest.mark.parametrize("max_pairs", [7, 1 << 22])
def test_random_tile_baseline_matches_all_pairs(max_pairs):
    rng = np.random.default_rng(5)
    # Integer positions: many equal distances (ties at the thresholds and in the median).
    q_utm = rng.integers(0, 40, size=(13, 2)).astype(np.float64) * 5
    tiles = rng.integers(0, 40, size=(29, 2)).astype(np.float64) * 5
    dist = np.sqrt(((q_utm[:, None, :] - tiles[None]) ** 2).sum(-1))
    th = (0.0, 25.0, 50.0, 100.0, 1000.0)
    out = geo.random_tile_baseline(q_utm, tiles, th, prefix="x/", max_pairs=max_pairs)
    for t in th:
        assert out[f"x/random_tile/recall@{t:g}m"] == pytest.approx(np.mean(dist <= t), abs=1e-15)
    assert out["x/random_tile/mean_error_m"] == pytest.approx(dist.mean(), rel=1e-12)
    assert out["x/random_tile/median_error_m"] == pytest.approx(np.median(dist), rel=1e-12)
    # An even number of pairs (median between two values) and one tile.
    out = geo.random_tile_baseline(q_utm[:4], tiles[:3], th, max_pairs=max_pairs)
    assert out["localization/random_tile/median_error_m"] == pytest.approx(np.median(dist[:4, :3]), rel=1e-12)
    out = geo.random_tile_baseline(q_utm, tiles[:1], th, max_pairs=max_pairs)
    assert out["localization/random_tile/mean_error_m"] == pytest.approx(dist[:, 0].mean(), rel=1e-12)
    np.testing.assert_allclose(geo.random_tile_mean_errors(q_utm, tiles, max_pairs=max_pairs), dist.mean(1),
                               rtol=1e-12)
    with pytest.raises(ValueError, match="thresholds_m"):
        geo.random_tile_baseline(q_utm, tiles, ())
