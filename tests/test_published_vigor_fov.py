"""Published VIGOR / limited-FoV rows (in evaluation.published): sources and comparison tables."""
import numpy as np
import pytest

from cvmnet_tf.evaluation import published, vigor_metrics


def test_every_vigor_row_names_its_source_and_rule():
    rows = [r for r in published.PUBLISHED if r.dataset.startswith("vigor_")]
    assert rows
    for r in rows:
        assert r.source and r.dataset in ("vigor_same", "vigor_cross") and r.cutoff_rule in published.CUTOFF_RULE_TEXT
        vals = [v for v in (r.recall_at_1, r.recall_at_5, r.recall_at_10, r.recall_at_1_percent) if v is not None]
        assert vals == sorted(vals) and all(0 <= v <= 100 for v in vals)   # recall grows with K
    tg = published.find_published("transgeo", "vigor_same")
    assert [(r.recall_at_1, r.recall_at_1_percent) for r in tg] == [(61.48, 99.56)]
    # Sample4Geo's VIGOR rows, values as read (HyperAI's Papers with Code mirror); same-area R@5/R@10 unread
    row = lambda r: (r.recall_at_1, r.recall_at_5, r.recall_at_10, r.recall_at_1_percent, r.hit_rate, r.cutoff_rule)
    assert [row(r) for r in published.find_published("sample4geo", "vigor_cross")] == [
        (61.70, 83.50, 88.00, 98.17, 69.87, "sample4geo")]
    assert [row(r) for r in published.find_published("sample4geo", "vigor_same")] == [
        (77.86, None, None, 99.61, 89.82, "sample4geo")]
    for r in rows:   # every VIGOR row names where it was read; hit rate <= R@1% (a hit needs no negative above)
        assert "second-hand" in r.note and (r.hit_rate is None or r.hit_rate <= r.recall_at_1_percent)
    # the VIGOR rows do not leak into the CVUSA / CVACT comparisons (one Sample4Geo row each)
    assert len(published.find_published("sample4geo", "cvusa")) == len(published.find_published("sample4geo",
                                                                                                "cvact_val")) == 1
    # the standard CVUSA rows are not mixed with limited-FoV ones and vice versa
    assert published.find_published("cvm_net_i", "cvusa", fov=90, orientation="unknown") == []
    assert len(published.find_published("cvm_net_i", "cvusa")) == 8


def test_vigor_table_from_evaluate_vigor():
    d = np.eye(300, 8, dtype=np.float32)
    d[8:] = 0.1 * np.random.default_rng(0).normal(size=(292, 8))    # |distractor . e_i| < 1: positives win
    out = vigor_metrics.evaluate_vigor(d[:8], d, np.arange(8))
    table = published.vigor_comparison_table(out, "same", label="synthetic")
    assert "| ours | synthetic | 100.00 |" in table
    assert "N = 300, K = 4" in table and "61.48" in table
    assert "| random ranking | chance | 0.33 | 1.67 | 3.33 | 1.33 |" in table
    assert "| 77.86 | - | - | 99.61 | 89.82 | rank < N // 100 (Sample4Geo) |" in table
    assert "Published tables not read here (to fill in): VIGOR paper" in table
    cross = published.vigor_comparison_table(out, "cross")
    assert "| sample4geo | Sample4Geo (Deuser et al. 2023), as re-reported on HyperAI" in cross
    assert "| 61.70 | 83.50 | 88.00 | 98.17 | 69.87 | rank < N // 100 (Sample4Geo) |" in cross
    assert "61.48" not in cross   # TransGeo's same-area row stays out of the cross-area table
    none = published.vigor_comparison_table(out, "cross", model="transgeo")
    assert "No published cross-area row could be read here" in none and "TransGeo (CVPR 2022) cross-area" in none
    with pytest.raises(ValueError, match="area must be"):
        published.vigor_comparison_table(out, "both")


def test_fov_table_says_when_nothing_is_published():
    table = published.fov_comparison_table({"recall@1": 0.1, "recall@1%": 0.5}, "cvusa", 90)
    assert "| ours | this run | 90 | unknown | fixed headings, seed 2019 (DSM) | 10.00 | - | - | 50.00 |" in table
    assert "No published cvusa row at FoV 90" in table and "DSM (Shi et al., CVPR 2020)" in table
