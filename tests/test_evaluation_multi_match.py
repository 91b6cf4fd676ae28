"""Tests of cvmnet_tf.evaluation.multi_match (University-1652 recall@K and AP).

The reference below is written independently of the module: for every query a
full sort of the gallery (float64 similarities, true matches first among equal
values, explicit loops), then University-1652's ``compute_mAP`` loop.
"""
import tracemalloc

import numpy as np
import pytest

from cvmnet_tf.evaluation import labelled_retrieval, metrics, multi_match


# ---------------------------------------------------------------- reference
def ref_positions(q, g, ql, gl):
    sims = q.astype(np.float64) @ g.astype(np.float64).T
    out = []
    for i in range(len(q)):
        is_match = [int(gl[j] == ql[i] and gl[j] != -1) for j in range(len(g))]
        # Sort by decreasing similarity; among equal values true matches first.
        order = sorted(range(len(g)), key=lambda j: (-sims[i, j], -is_match[j]))
        out.append([p for p, j in enumerate(order) if is_match[j]])
    return out


def ref_ap(pos):
    ap, n = 0.0, len(pos)
    for i in range(n):
        precision = (i + 1) / (pos[i] + 1)
        old_precision = i / pos[i] if pos[i] != 0 else 1.0
        ap += (1.0 / n) * (old_precision + precision) / 2
    return ap


def ref_metrics(q, g, ql, gl, ks=(1, 5, 10)):
    pos = ref_positions(q, g, ql, gl)
    out = {f"recall@{k}": np.mean([p[0] < k for p in pos]) for k in ks}
    out["AP"] = np.mean([ref_ap(p) for p in pos])
    return out, pos


def quantised_world(rng, num_classes, per_class, num_queries, num_distractors, dim=5):
    """Descriptors on a 1/4 grid (exact float32 dot products, so many real ties)."""
    centres = rng.integers(-2, 3, size=(num_classes, dim))
    gl = np.repeat(np.arange(num_classes), per_class)
    g = centres[gl] + rng.integers(-1, 2, size=(gl.size, dim))
    ql = rng.integers(0, num_classes, size=num_queries)
    q = centres[ql] + rng.integers(-2, 3, size=(num_queries, dim))
    dis = rng.integers(-2, 3, size=(num_distractors, dim))
    g = np.concatenate([g, dis]) / 4.0
    gl = np.concatenate([gl, np.full(num_distractors, -1)])
    perm = rng.permutation(gl.size)        # interleave matches and distractors
    return (q / 4.0).astype(np.float32), g[perm].astype(np.float32), ql * 10 + 3, np.where(
        gl[perm] >= 0, gl[perm] * 10 + 3, -1)


# ---------------------------------------------------------------- hand example
def test_hand_computed_example_with_ties_and_distractor():
    # 1-D descriptors: similarity = q * g exactly.
    g = np.array([[0.9], [0.8], [0.7], [0.7], [0.5], [0.3]], np.float32)
    gl = np.array([-1, 5, 7, 5, 7, 5])
    q = np.array([[1.0], [-1.0], [0.0]], np.float32)
    ql = np.array([5, 7, 7])
    # q0 (label 5): list 0.9(distr) 0.8(m) 0.7(m, tie: match first) 0.7 0.5 0.3(m) -> positions 1, 2, 5
    #   AP = (1/4 + 7/12 + 9/20) / 3 = 77/180
    # q1 (label 7): -0.3 -0.5(m) -0.7(m, tie won) ... -> positions 1, 2; AP = (1/4 + 7/12) / 2 = 5/12
    # q2 (label 7): everything tied at 0 -> positions 0, 1; AP = 1
    indptr, pos = multi_match.match_positions(q, g, ql, gl)
    assert indptr.tolist() == [0, 3, 5, 7]
    assert pos.tolist() == [1, 2, 5, 1, 2, 0, 1]
    aps = multi_match.average_precisions(indptr, pos)
    np.testing.assert_allclose(aps, [77 / 180, 5 / 12, 1.0], rtol=0, atol=1e-15)
    assert multi_match.average_precision([5, 1, 2]) == pytest.approx(77 / 180, abs=1e-15)
    m = labelled_retrieval(q, g, ql, gl, ks=(1, 2, 3))
    assert m["recall@1"] == pytest.approx(1 / 3) and m["recall@2"] == 1.0 and m["recall@3"] == 1.0
    assert m["AP"] == pytest.approx((77 / 180 + 5 / 12 + 1.0) / 3, abs=1e-15)
    assert (m["num_query"], m["num_gallery"], m["num_distractors"]) == (3, 6, 1)
    assert m["mean_true_matches"] == pytest.approx(7 / 3)
    assert multi_match.first_match_ranks(q, g, ql, gl).tolist() == [1, 1, 0]


# ---------------------------------------------------------------- brute force
@pytest.mark.parametrize("per_class, force", [(1, None), (3, "count"), (12, None), (12, "count"), (2, "sort")])
def test_matches_bruteforce_reference_with_ties_and_distractors(per_class, force, monkeypatch):
    if force == "count":
        monkeypatch.setattr(multi_match, "SORT_WHEN_MATCHES_ABOVE", 10 ** 6)
    elif force == "sort":
        monkeypatch.setattr(multi_match, "SORT_WHEN_MATCHES_ABOVE", 0)
    rng = np.random.default_rng(per_class)
    q, g, ql, gl = quantised_world(rng, num_classes=9, per_class=per_class, num_queries=37, num_distractors=23)
    ref, ref_pos = ref_metrics(q, g, ql, gl)
    # The data do contain ties involving true matches (the tie rule is exercised).
    sims = q.astype(np.float64) @ g.astype(np.float64).T
    ties = sum(np.count_nonzero(sims[i][gl != ql[i]] == sims[i][gl == ql[i]][:, None]) for i in range(len(q)))
    assert ties > 20
    for bs in (None, 1, 5, 36, 37, 100):
        indptr, pos = multi_match.match_positions(q, g, ql, gl, block_size=bs)
        assert [pos[indptr[i]:indptr[i + 1]].tolist() for i in range(len(q))] == ref_pos
        m = labelled_retrieval(q, g, ql, gl, block_size=bs)
        for key, val in ref.items():
            assert m[key] == pytest.approx(val, abs=1e-12), (key, bs)
        assert m["num_distractors"] == 23 and m["num_gallery"] == g.shape[0]


def test_gaussian_data_against_float64_reference():
    rng = np.random.default_rng(7)
    centres = rng.standard_normal((15, 16))
    gl = np.concatenate([np.repeat(np.arange(15), rng.integers(1, 11, 15)), -np.ones(40, int)])
    g = np.concatenate([centres[gl[gl >= 0]] + 0.9 * rng.standard_normal((np.count_nonzero(gl >= 0), 16)),
                        rng.standard_normal((40, 16))])
    ql = rng.integers(0, 15, 60)
    q = centres[ql] + 0.9 * rng.standard_normal((60, 16))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q, g = q.astype(np.float32), g.astype(np.float32)
    ref, _ = ref_metrics(q, g, ql, gl, ks=(1, 3, 10))
    m = labelled_retrieval(q, g, ql, gl, ks=(1, 3, 10), block_size=7)
    assert 0.05 < ref["AP"] < 0.95       # a non-trivial case
    for key, val in ref.items():
        assert m[key] == pytest.approx(val, abs=1e-12), key


def test_one_match_per_query_equals_single_match_ranks():
    # Unique labels, query i <-> gallery row i, distractors after: same ranks as metrics.retrieval_ranks.
    rng = np.random.default_rng(3)
    q = rng.integers(-3, 4, (50, 6)).astype(np.float32) / 4
    g = np.concatenate([q + rng.integers(-1, 2, (50, 6)) / 4, rng.integers(-3, 4, (30, 6)) / 4]).astype(np.float32)
    labels = np.arange(50)
    gl = np.concatenate([labels, -np.ones(30, int)])
    np.testing.assert_array_equal(multi_match.first_match_ranks(q, g, labels, gl, block_size=9),
                                  metrics.retrieval_ranks(q, g))
    indptr, pos = multi_match.match_positions(q, g, labels, gl)
    np.testing.assert_allclose(multi_match.average_precisions(indptr, pos),
                               [ref_ap([p]) for p in pos], rtol=0, atol=1e-15)
    # One match at position r: old_precision = 0 / r = 0, so AP = 1 / (2 (r + 1)); 1 at r = 0.
    assert (pos > 0).sum() > 10 and (pos == 0).sum() > 10
    np.testing.assert_allclose(multi_match.average_precisions(indptr, pos),
                               np.where(pos == 0, 1.0, 0.5 / (pos + 1)), rtol=0, atol=1e-15)


def test_memory_stays_bounded_by_the_block():
    rng = np.random.default_rng(0)
    nq, ng, dim, bs = 600, 20000, 4, 50
    q = rng.standard_normal((nq, dim)).astype(np.float32)
    g = rng.standard_normal((ng, dim)).astype(np.float32)
    gl = rng.integers(0, 400, ng)
    ql = rng.choice(np.unique(gl), nq)
    tracemalloc.start()
    try:
        multi_match.labelled_retrieval(q, g, ql, gl, block_size=bs)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    block = bs * ng * 4                      # one float32 similarity block = 4 MB
    # float32 block + bool block + labels/argsort (a few x 8 * ng bytes) + positions; never (nq x ng).
    assert peak < 2 * block + 40 * ng + 200 * nq + (1 << 20), peak
    assert peak < nq * ng                    # far below even a bool (nq, ng) matrix


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("case, match", [
    ("nan", r"query: descriptors contain NaN or inf \(first bad row 1\)"),
    ("dim", "descriptor dimensions differ: query has dim 3, gallery has dim 4"),
    ("shape", "gallery: descriptors must be a 2-D array"),
    ("qlen", "query labels: 3 labels for 4 descriptor rows"),
    ("glen", "gallery labels: 5 labels for 6 descriptor rows"),
    ("qneg", r"query labels: labels must be >= 0; row 2 has -1"),
    ("gneg", r"gallery labels: labels must be >= 0 or -1 \(distractor\); row 0 has -2"),
    ("float", "labels must be integers"),
    ("nomatch", r"2 of 4 queries have no true match in gallery .*first: query row 1, label 8"),
    ("ks", "ks must be a positive integer"),
])
def test_errors(case, match):
    q = np.ones((4, 4), np.float32)
    g = np.ones((6, 4), np.float32)
    ql = np.array([1, 2, 1, 2])
    gl = np.array([1, 2, -1, 1, 2, 2])
    kw = {}
    if case == "nan":
        q[1, 0] = np.nan
    elif case == "dim":
        q = np.ones((4, 3), np.float32)
    elif case == "shape":
        g = np.ones(6, np.float32)
    elif case == "qlen":
        ql = ql[:3]
    elif case == "glen":
        gl = gl[:5]
    elif case == "qneg":
        ql = np.array([1, 2, -1, 2])
    elif case == "gneg":
        gl = np.array([-2, 2, -1, 1, 2, 2])
    elif case == "float":
        ql = np.array([1.0, 2.5, 1.0, 2.0])
    elif case == "nomatch":
        ql = np.array([1, 8, 9, 2])
    elif case == "ks":
        kw["ks"] = (1, 0)
    with pytest.raises(ValueError, match=match):
        labelled_retrieval(q, g, ql, gl, **kw)


def test_average_precision_input_errors():
    with pytest.raises(ValueError, match="at least one"):
        multi_match.average_precision([])
    with pytest.raises(ValueError, match="strictly increasing"):
        multi_match.average_precisions(np.array([0, 2]), np.array([3, 3]))
    with pytest.raises(ValueError, match="strictly increasing"):
        multi_match.average_precisions(np.array([0, 2]), np.array([0, 0]))
    with pytest.raises(ValueError, match="indptr"):
        multi_match.average_precisions(np.array([0, 0, 1]), np.array([0]))


# ---------------------------------------------------------------- published University-1652 rows
def test_published_university1652_rows_and_table():
    from cvmnet_tf.evaluation import comparison_table, published

    def one(**kw):
        rows = published.find_published(dataset="university1652", **kw)
        assert len(rows) == 1, rows
        return rows[0]

    r = one(loss="weighted_soft_margin_triplet", task="drone_to_satellite")
    assert (r.recall_at_1, r.ap, r.recall_at_5) == (53.21, 58.03, None)
    r = one(loss="contrastive", task="satellite_to_drone")
    assert (r.recall_at_1, r.ap) == (63.91, 52.24)
    assert one(loss="instance_loss", task="drone2satellite").recall_at_1 == 58.23
    assert len(published.find_published(dataset="University-1652")) == 12
    assert published.find_published(model="siam_fcanet", dataset="cvusa")[0].recall_at_1_percent == 98.3
    res = {"recall@1": 0.4321, "recall@5": 0.6, "recall@10": 0.7, "AP": 0.4876, "task": "satellite_to_drone"}
    md = comparison_table(res, model="cvm_net_i", dataset="university1652", loss="weighted_soft_margin_triplet")
    lines = md.splitlines()
    assert lines[0] == "| Setting | Source | Task | R@1 | R@5 | R@10 | AP |"
    assert "| this run | satellite_to_drone | 43.21 | 60.00 | 70.00 | 48.76 |" in lines[2]
    assert len([ln for ln in lines if "U1652 leaderboard" in ln]) == 1 and "| 65.62 | - | - | 54.47 |" in md
    md_all = comparison_table({"recall@1": 0.5, "AP": 0.6}, model=None, dataset="university1652")
    assert len([ln for ln in md_all.splitlines() if "U1652 leaderboard" in ln]) == 12
    with pytest.raises(ValueError, match="task must be one of"):
        comparison_table(res, model=None, dataset="university1652", task="street_to_satellite")
    with pytest.raises(ValueError, match="no published University-1652 numbers"):
        comparison_table(res, model=None, dataset="university1652", loss="quadruplet")


# ---------------------------------------------------------------- ties counted against the query
@pytest.mark.parametrize("per_class", [1, 4])
def test_pessimistic_first_rank_counts_tied_non_matches(per_class):
    """Reference: the non-matching gallery items at least as similar as the best true match
    (exact on the 1/4 grid); the released rule's first rank counts only strictly more similar ones."""
    rng = np.random.default_rng(10 + per_class)
    q, g, ql, gl = quantised_world(rng, num_classes=9, per_class=per_class, num_queries=37, num_distractors=23)
    sims = q.astype(np.float64) @ g.astype(np.float64).T
    ref = np.array([np.count_nonzero(sims[i][gl != ql[i]] >= sims[i][gl == ql[i]].max()) for i in range(len(q))])
    strict = np.array([p[0] for p in ref_positions(q, g, ql, gl)])
    assert (ref > strict).sum() >= 3
    for bs in (None, 1, 5, 37):
        indptr, pos, pessimistic = multi_match.labelled_ranks(q, g, ql, gl, block_size=bs)
        np.testing.assert_array_equal(pos[indptr[:-1]], strict)
        np.testing.assert_array_equal(pessimistic, ref)
    m = labelled_retrieval(q, g, ql, gl, ks=(1, 5))
    assert m["pessimistic/recall@1"] == np.mean(ref < 1) and m["pessimistic/recall@5"] == np.mean(ref < 5)
    assert m["tied_queries"] == np.mean(ref != strict)
    # All-equal descriptors: every query first under the released rule, last with ties against it.
    same = np.ones((len(q), 5), np.float32)
    m = labelled_retrieval(same, np.ones((len(g), 5), np.float32), ql, gl, ks=(1,))
    assert m["recall@1"] == 1.0 and m["pessimistic/recall@1"] == 0.0 and m["tied_queries"] == 1.0
    assert metrics.tie_warning(m) is not None
