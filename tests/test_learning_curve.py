"""Chance levels in the validation metrics and the learning-curve PNG of a training run."""
import itertools
import json
import math

import numpy as np
import pytest
from PIL import Image

from cvmnet_tf.evaluation.plots import plot_learning_curve
from cvmnet_tf.training import checkpoints as ckpt
from cvmnet_tf.training.validation import chance_recall_at_k, chance_recall_at_top_percent


@pytest.mark.parametrize("n, m, k", [(6, 1, 1), (6, 2, 2), (7, 3, 2), (5, 4, 3)])
def test_chance_recall_matches_enumeration(n, m, k):
    """Recall@K of a random ranking = the share of the N! orderings with a true item in the top K."""
    hits = sum(any(p < m for p in perm[:k]) for perm in itertools.permutations(range(n)))
    assert chance_recall_at_k([m], n, k) == pytest.approx(hits / math.factorial(n), rel=1e-12)


def test_chance_recall_one_match_and_mixed_queries():
    assert chance_recall_at_k([1] * 5, 500, 6) == pytest.approx(6 / 500, rel=1e-12)
    assert chance_recall_at_k([1], 500, 6) == pytest.approx(chance_recall_at_top_percent(500), rel=1e-12)
    assert chance_recall_at_k([1, 4], 300, 1) == pytest.approx((1 / 300 + 4 / 300) / 2, rel=1e-12)


def test_curve_png(tmp_path):
    path = str(tmp_path / "c.png")
    plot_learning_curve([1, 2, 3], [0.01, 0.05, 0.2], [0.1, 0.3, 0.6], 1 / 500, 6 / 500, path, title="t")
    with Image.open(path) as im:
        assert im.size == (800, 500)
        a = np.asarray(im.convert("RGB")).astype(int)
    assert a.std() > 10                                    # something is drawn
    blue = (np.abs(a - (31, 119, 180)).sum(-1) < 40).sum()  # tab:blue recall@1% line and markers
    assert blue > 200
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]
    with pytest.raises(ValueError, match="equal length"):
        plot_learning_curve([1, 2], [0.1], [0.1, 0.2], 0.1, 0.1, path)


def test_result_files_write_the_curve(tmp_path):
    out = str(tmp_path)
    hist = [{"epoch": e, "iterations": 10, "metrics": {"recall@1": 0.01 * e, "recall@1%": 0.1 * e,
                                                       "chance_recall@1": 0.002, "chance_recall@1%": 0.012,
                                                       "num_database": 500}} for e in (1, 2)]
    ckpt.write_result_files(out, "cvm_net_i", hist)
    paths = ckpt.result_paths(out, "cvm_net_i")
    with Image.open(paths["curve"]) as im:
        assert im.format == "PNG"
    with open(paths["metrics"]) as f:
        assert [json.loads(line)["epoch"] for line in f] == [1, 2]
    # records of an older version without chance levels: no curve, no error
    old = [{"epoch": 1, "iterations": 10, "metrics": {"recall@1": 0.1, "recall@1%": 0.2}}]
    assert not ckpt.write_learning_curve(str(tmp_path / "old.png"), "cvm_net_i", old)
    assert not (tmp_path / "old.png").exists()
