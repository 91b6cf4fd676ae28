"""The 'votes' decision rule of map localization against a NumPy reference on the whole
(queries x tiles) similarity matrix: streaming top-k with ties, the Gaussian vote, and
cvmnet-localize's --decision flag."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from cvmnet_tf.evaluation import localization as loc
from cvmnet_tf.evaluation.geomap import load_map, make_tile_grid
from cvmnet_tf.evaluation.tile_votes import TopTiles, check_decision, vote_for_tiles
from test_localization import MPP, REPO, Oracle, write_oracle_map


def _reference_top(sim, k):
    """Per row: tile indices sorted by decreasing similarity, then increasing index; first k."""
    order = np.array([sorted(range(sim.shape[1]), key=lambda j: (-sim[i, j], j))[:k] for i in range(sim.shape[0])])
    return order, np.take_along_axis(sim, order, axis=1)


def _reference_vote(centres, sigma):
    """Loop reference of the Gaussian vote among one row's k centres (ties: earlier column)."""
    k = len(centres)
    scores = [sum(np.exp(-((centres[i] - centres[j]) ** 2).sum() / (2 * sigma ** 2)) for j in range(k))
              for i in range(k)]
    return int(np.argmax(scores))


@pytest.mark.parametrize("batch", [1, 3, 7, 50])
def test_streaming_top_k_matches_a_full_sort_with_ties(batch):
    rng = np.random.default_rng(batch)
    sim = rng.integers(0, 6, (9, 41)).astype(np.float32) / 5  # many ties
    top = TopTiles(9, 5)
    for start in range(0, 41, batch):
        idx = np.arange(start, min(start + batch, 41))
        top.update(sim[:, idx], idx)
    ref_idx, ref_sim = _reference_top(sim, 5)
    np.testing.assert_array_equal(top.index, ref_idx)
    np.testing.assert_array_equal(top.similarity, ref_sim)


def test_vote_matches_loop_reference_and_prefers_a_cluster():
    rng = np.random.default_rng(0)
    centres = rng.uniform(0, 200, (6, 8, 2))
    got = vote_for_tiles(centres, 20.0)
    assert got.tolist() == [_reference_vote(c, 20.0) for c in centres]
    # A lone best tile far away loses to a cluster of three slightly worse tiles.
    c = np.array([[[900.0, 900.0], [0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]])
    assert vote_for_tiles(c, 20.0).tolist() == [1]
    # Equal scores: the more similar (earlier) tile wins.
    c = np.array([[[0.0, 0.0], [500.0, 0.0]]])
    assert vote_for_tiles(c, 20.0).tolist() == [0]


def test_bad_vote_parameters_name_the_flag():
    with pytest.raises(ValueError, match="--vote_top_k=0"):
        check_decision("votes", 0, 20.0)
    with pytest.raises(ValueError, match="--vote_sigma_m=-1"):
        check_decision("votes", 5, -1.0)
    with pytest.raises(ValueError, match="--vote_sigma_m=nan"):
        check_decision("votes", 5, float("nan"))
    check_decision("argmax", 0, -1.0)  # the vote parameters do not matter to argmax
    with pytest.raises(ValueError, match="--decision='best'"):
        check_decision("best", 20, 20.0)


class TableEncoder(Oracle):
    """Tile descriptors looked up by tile centre in a fixed random table (any similarity matrix)."""

    def __init__(self, grid, table):
        super().__init__()
        self.lookup = {tuple(np.round(c, 3)): i for i, c in enumerate(grid.centres() - [grid.origin_easting,
                                                                                        grid.origin_northing])}
        self.table = table

    def satellite(self, tiles):
        en = super().satellite(tiles)[:, :2].astype(np.float64)
        return self.table[[self.lookup[tuple(np.round(c, 3))] for c in en]]


@pytest.mark.parametrize("batch", [5, 64])
def test_localize_votes_matches_numpy_reference(tmp_path, batch):
    mdir = str(tmp_path / "map")
    write_oracle_map(mdir, [(30, 40), (60, 100), (90, 20), (10, 150)])
    geo, queries = load_map(mdir)
    grid = make_tile_grid(geo, 40, 10)
    rng = np.random.default_rng(1)
    table = rng.normal(size=(grid.num_tiles, 16)).astype(np.float32)
    q = rng.normal(size=(len(queries), 16)).astype(np.float32)
    q_utm = np.array([[e, n] for _, e, n in queries])
    enc = TableEncoder(grid, table)
    k, sigma = 12, 15.0
    res = loc.localize(enc, geo, grid, q, q_utm, batch_size=batch, decision="votes", vote_top_k=k,
                       vote_sigma_m=sigma)
    sim = q @ table.T
    ref_idx, ref_sim = _reference_top(sim, k)
    centres = grid.centres()
    col = [_reference_vote(centres[row], sigma) for row in ref_idx]
    ref_best = ref_idx[np.arange(len(col)), col]
    np.testing.assert_array_equal(res["best_index"], ref_best)
    np.testing.assert_allclose(res["best_similarity"], sim[np.arange(len(col)), ref_best], rtol=1e-5, atol=0)
    np.testing.assert_allclose(res["predicted_utm"], centres[ref_best])
    assert (ref_best != sim.argmax(1)).any()  # the rule changes something here
    # One vote is the argmax rule.
    one = loc.localize(enc, geo, grid, q, q_utm, batch_size=batch, decision="votes", vote_top_k=1)
    arg = loc.localize(enc, geo, grid, q, q_utm, batch_size=batch)
    np.testing.assert_array_equal(one["best_index"], arg["best_index"])
    np.testing.assert_array_equal(arg["best_index"], sim.argmax(1))


def test_cli_votes_flag_and_bad_values(tmp_path):
    mdir = str(tmp_path / "map")
    write_oracle_map(mdir, [(30, 40)])
    for flag, shown in (("--vote_top_k=0", "--vote_top_k=0"), ("--vote_sigma_m=0", "--vote_sigma_m=0")):
        proc = subprocess.run([sys.executable, "-m", "cvmnet_tf.localization", f"--checkpoint={mdir}",
                               f"--map_dir={mdir}", "--stride_m=10", f"--output_dir={tmp_path / 'out'}",
                               "--decision=votes", flag], cwd=REPO, capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert shown in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not os.path.exists(tmp_path / "out")


def test_run_localization_records_the_rule(tmp_path):
    mdir = str(tmp_path / "map")
    write_oracle_map(mdir, [(30, 40), (60, 100)])
    out = str(tmp_path / "out")
    loc.run_localization(Oracle(), mdir, out, stride_m=10, tile_m=40, progress=False, decision="votes",
                         vote_top_k=5, vote_sigma_m=12.5, num_heatmaps=0)
    with open(os.path.join(out, "localization.json")) as f:
        report = json.load(f)
    assert report["decision"]["rule"] == "votes" and report["decision"]["top_k"] == 5
    assert report["decision"]["sigma_m"] == 12.5
    with pytest.raises(ValueError, match="--decision='best'"):
        loc.run_localization(Oracle(), mdir, str(tmp_path / "o2"), stride_m=10, tile_m=40, progress=False,
                             decision="best")
    assert not os.path.exists(tmp_path / "o2")
    assert MPP == 2.0
