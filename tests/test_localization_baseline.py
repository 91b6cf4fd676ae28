"""The random-tile baseline of the localization experiment against a plain loop."""
import math

import numpy as np

from cvmnet_tf.evaluation.geomap import GeoMap, make_tile_grid
from cvmnet_tf.evaluation.localization import baseline_line, random_tile_baseline


def test_random_tile_baseline_matches_a_loop():
    geo = GeoMap(np.zeros((120, 160, 3), np.uint8), 2.0, 500000.0, 4000000.0)
    grid = make_tile_grid(geo, tile_m=40.0, stride_m=10.0)
    rng = np.random.default_rng(0)
    q = np.stack([500000.0 + rng.uniform(0, 320, 70), 4000000.0 - rng.uniform(0, 240, 70)], 1)
    got = random_tile_baseline(grid, q, (25.0, 100.0), block=16)
    centres = grid.centres()
    hits, err = {25.0: 0.0, 100.0: 0.0}, 0.0
    for qe, qn in q:
        ds = np.array([math.hypot(ce - qe, cn - qn) for ce, cn in centres])
        for t in hits:
            hits[t] += np.mean(ds <= t) / len(q)
        err += ds.mean() / len(q)
    for t in hits:
        assert abs(got[f"recall@{t:g}m"] - hits[t]) <= 1e-12
    assert abs(got["mean_error_m"] - err) <= 1e-12 * err
    assert 0 < got["recall@25m"] < got["recall@100m"] < 1
    # the centres themselves: a grid of tile_px / 2 + stride_px steps from the north-west corner
    assert np.allclose(centres[0], (500000.0 + 20.0, 4000000.0 - 20.0))
    line = baseline_line({"recall@100m": 3 * got["recall@100m"], "mean_error_m": 50.0, "random_tile": got})
    assert "3.00x" in line and "a random tile" in line
