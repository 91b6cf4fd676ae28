"""Map localization: tiling / coordinates / errors against a NumPy reference with an oracle
"model" whose descriptors encode position, and the CLI end to end on a synthetic map."""
import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cvmnet_tf.evaluation import localization as loc

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
E0, N0, MPP, H, W = 500000.0, 4000000.0, 2.0, 120, 160


def write_oracle_map(d, query_px):
    """Map whose pixel (row, col) has R = col, G = row; panoramas filled with their pixel."""
    os.makedirs(os.path.join(d, "panoramas"), exist_ok=True)
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing="ij")
    img = np.stack([cols, rows, np.zeros_like(rows)], -1).astype(np.uint8)
    Image.fromarray(img).save(os.path.join(d, "map.png"))
    with open(os.path.join(d, "map.json"), "w") as f:
        json.dump({"metres_per_pixel": MPP, "origin_easting": E0, "origin_northing": N0,
                   "width_px": W, "height_px": H}, f)
    lines = ["path,easting,northing"]
    for i, (r, c) in enumerate(query_px):
        pano = np.zeros((8, 16, 3), np.uint8)
        pano[..., 0], pano[..., 1] = c, r
        Image.fromarray(pano).save(os.path.join(d, "panoramas", f"{i}.png"))
        lines.append(f"panoramas/{i}.png,{E0 + (c + 0.5) * MPP},{N0 - (r + 0.5) * MPP}")
    with open(os.path.join(d, "panoramas.csv"), "w") as f:
        f.write("\n".join(lines) + "\n")


class Oracle:
    """Descriptors whose dot product is -|q - t|^2 / 2 + const(q): argmax = nearest tile."""

    def __init__(self):
        self.tile_shapes = set()

    def satellite(self, tiles):
        tiles = np.asarray(tiles, np.float64)
        self.tile_shapes.add(tiles.shape[1:])
        x = tiles[..., 0].mean(axis=(1, 2)) + 0.5  # continuous column of the tile centre
        y = tiles[..., 1].mean(axis=(1, 2)) + 0.5
        e, n = x * MPP, -y * MPP
        return np.stack([e, n, -(e ** 2 + n ** 2) / 2], -1).astype(np.float32)

    def ground(self, panos):
        panos = np.asarray(panos, np.float64)
        e, n = (panos[:, 0, 0, 0] + 0.5) * MPP, -(panos[:, 0, 0, 1] + 0.5) * MPP
        return np.stack([e, n, np.ones_like(e)], -1).astype(np.float32)


def test_oracle_localization_matches_numpy_reference(tmp_path):
    rng = np.random.default_rng(0)
    # Pixel rows/cols != 2 (mod 5) so that no query is equidistant from two tile centres.
    r = rng.choice([v for v in range(H) if v % 5 != 2], 25)
    c = rng.choice([v for v in range(W) if v % 5 != 2], 25)
    query_px = list(zip(r.tolist(), c.tolist())) + [(0, 0), (H - 1, W - 1)]  # corners: outside the centres
    mdir = str(tmp_path / "map")
    write_oracle_map(mdir, query_px)
    oracle = Oracle()
    out = str(tmp_path / "out")
    summary, res = loc.run_localization(oracle, mdir, out, stride_m=10, tile_m=40, batch_size=37,
                                        thresholds_m=(5, 10, 50), num_heatmaps=2, save_tile_descriptors=True,
                                        progress=False)
    # Independent reference: tiles 20 px every 5 px, centres at pixel edge 10 + 5 j.
    n_px, s_px = 20, 5
    rows, cols = (H - n_px) // s_px + 1, (W - n_px) // s_px + 1
    assert (rows, cols) == (21, 29) and oracle.tile_shapes == {(20, 20, 3)}
    cy, cx = np.meshgrid(s_px * np.arange(rows) + n_px / 2, s_px * np.arange(cols) + n_px / 2, indexing="ij")
    centres = np.stack([E0 + cx.ravel() * MPP, N0 - cy.ravel() * MPP], -1)
    q = np.array([[E0 + (cc + 0.5) * MPP, N0 - (rr + 0.5) * MPP] for rr, cc in query_px])
    dist = np.sqrt(((q[:, None, :] - centres[None]) ** 2).sum(-1))
    ref_best = dist.argmin(1)
    np.testing.assert_array_equal(res["best_index"], ref_best)
    np.testing.assert_allclose(res["predicted_utm"], centres[ref_best], atol=1e-6)
    np.testing.assert_allclose(res["errors_m"], dist.min(1), atol=1e-6)
    # Inside the hull of the centres the error is at most half a stride diagonal.
    inside = np.array([10 <= cc + 0.5 <= W - 10 and 10 <= rr + 0.5 <= H - 10 for rr, cc in query_px])
    assert res["errors_m"][inside].max() <= 10 * np.sqrt(2) / 2 + 1e-9
    # The map corners lie 9.5 px (19 m) diagonally from the nearest tile centre.
    np.testing.assert_allclose(res["errors_m"][-2:], 19 * np.sqrt(2), atol=1e-6)
    # Heatmap of query 0 in row-major tile order.
    t = centres - [E0, N0]
    qq = q[0] - [E0, N0]
    np.testing.assert_allclose(res["similarity_maps"][0].ravel(),
                               t @ qq - (t ** 2).sum(1) / 2, rtol=1e-5, atol=1e-2)
    # Files.
    with open(os.path.join(out, "localization.json")) as f:
        report = json.load(f)
    for d in (5, 10, 50):
        assert report["metrics"][f"recall@{d}m"] == pytest.approx(np.mean(dist.min(1) <= d))
    assert report["metrics"]["mean_error_m"] == pytest.approx(dist.min(1).mean())
    assert report["grid"]["num_tiles"] == rows * cols
    # Chance level beside every figure: a uniformly random tile per query, over all (query, tile) pairs.
    for d in (5, 10, 50):
        assert report["metrics"]["random_tile"][f"recall@{d}m"] == pytest.approx(np.mean(dist <= d), abs=1e-12)
    assert report["metrics"]["random_tile"]["mean_error_m"] == pytest.approx(dist.mean(), rel=1e-9)
    assert report["metrics"]["random_tile"]["median_error_m"] == pytest.approx(np.median(dist), rel=1e-9)
    lines = loc.summary_lines(report["metrics"])
    assert f"mean error     {dist.min(1).mean():6.1f} m  random tile {dist.mean():6.1f} m   paper 676.7 m" in lines
    assert not [line for line in lines if line.startswith("WARNING")]   # the oracle is far better than chance
    with open(os.path.join(out, "predictions.csv")) as f:
        pred = list(csv.DictReader(f))
    np.testing.assert_allclose([float(p["error_m"]) for p in pred], dist.min(1), atol=1e-3)
    np.testing.assert_allclose([float(p["random_tile_mean_error_m"]) for p in pred], dist.mean(1), atol=1e-3)
    np.testing.assert_allclose(np.load(os.path.join(out, "tile_centres.npy")), centres)
    tiles = np.load(os.path.join(out, "tile_descriptors.npy"))
    np.testing.assert_allclose(tiles[:, :2], centres - [E0, N0], atol=1e-3)
    for name in ("recall_vs_distance.png", "heatmap_00000.png", "heatmap_00001.png"):
        with Image.open(os.path.join(out, name)) as im:
            assert im.size[0] >= 400
    assert not [p for p in os.listdir(out) if ".tmp-" in p]


class NaNModel(Oracle):
    def satellite(self, tiles):
        d = super().satellite(tiles)
        d[-1, 0] = np.nan
        return d


def test_bad_input_is_a_clear_error_without_output(tmp_path):
    mdir = str(tmp_path / "map")
    write_oracle_map(mdir, [(30, 30)])
    out = str(tmp_path / "out")
    with pytest.raises(ValueError, match="NaN"):
        loc.run_localization(NaNModel(), mdir, out, stride_m=10, tile_m=40, progress=False)
    with pytest.raises(ValueError, match="larger than the map"):
        loc.run_localization(Oracle(), mdir, out, stride_m=10, tile_m=400, progress=False)
    with pytest.raises(ValueError, match="--stride_m"):
        loc.run_localization(Oracle(), mdir, out, stride_m=-1, tile_m=40, progress=False)
    with pytest.raises(ValueError, match="thresholds"):
        loc.run_localization(Oracle(), mdir, out, stride_m=10, tile_m=40, thresholds_m=(), progress=False)
    with open(os.path.join(mdir, "map.json"), "w") as f:
        json.dump({"metres_per_pixel": MPP, "origin_easting": E0}, f)
    with pytest.raises(ValueError, match="map.json: 'origin_northing'"):
        loc.run_localization(Oracle(), mdir, out, stride_m=10, tile_m=40, progress=False)
    assert not os.path.exists(out)


def test_cli_on_synthetic_map_with_random_model(tmp_path):
    pytest.importorskip("tensorflow")
    from cvmnet_tf.data.synthetic import write_map
    from test_export import make_checkpoint

    mdir = str(tmp_path / "map")
    meta = write_map(mdir, seed=1, size_m=(200.0, 240.0), metres_per_pixel=1.0, num_panoramas=4,
                     ground_size=(16, 64))
    ckpt, _ = make_checkpoint(tmp_path / "run", dataset="cvusa", seed=5)
    out = str(tmp_path / "out")
    proc = subprocess.run([sys.executable, "-m", "cvmnet_tf.localization", f"--checkpoint={ckpt}",
                           f"--map_dir={mdir}", "--stride_m=20", "--tile_m=60", f"--output_dir={out}",
                           "--thresholds_m=25,50,100", "--batch_size=16", "--num_heatmaps=1"],
                          cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(os.path.join(out, "localization.json")) as f:
        report = json.load(f)
    assert report["grid"]["rows"] == 8 and report["grid"]["cols"] == 10
    with open(os.path.join(out, "predictions.csv")) as f:
        pred = list(csv.DictReader(f))
    assert len(pred) == len(meta["panoramas"])
    true = np.array([[float(p["true_easting"]), float(p["true_northing"])] for p in pred])
    guess = np.array([[float(p["pred_easting"]), float(p["pred_northing"])] for p in pred])
    np.testing.assert_allclose(true, [[e, n] for _, e, n in meta["panoramas"]], atol=1e-3)
    err = np.sqrt(((true - guess) ** 2).sum(1))
    np.testing.assert_allclose([float(p["error_m"]) for p in pred], err, atol=2e-3)
    assert report["metrics"]["mean_error_m"] == pytest.approx(err.mean(), abs=2e-3)
    assert report["metrics"]["recall@100m"] == pytest.approx(np.mean(err <= 100))
    # Every printed figure has the random-tile (chance) value beside it, as in localization.json.
    m = report["metrics"]
    assert "random tile = chance level" in proc.stdout
    chance = m["random_tile"]
    assert (f"mean error     {m['mean_error_m']:6.1f} m  random tile {chance['mean_error_m']:6.1f} m   "
            "paper 676.7 m") in proc.stdout
    assert (f"recall@100m    {100 * m['recall@100m']:6.1f}%   random tile {100 * chance['recall@100m']:6.1f}%"
            "   paper 67.1%") in proc.stdout
    chance_level = m["mean_error_m"] >= 0.9 * chance["mean_error_m"]
    assert ("the model localizes at chance level here" in proc.stdout) == chance_level
    # Predicted positions are tile centres: 30 m + 20 m steps from the north-west corner.
    e0, n0 = meta["origin_easting"], meta["origin_northing"]
    np.testing.assert_allclose(((guess[:, 0] - e0 - 30) / 20) % 1, 0, atol=1e-6)
    np.testing.assert_allclose(((n0 - guess[:, 1] - 30) / 20) % 1, 0, atol=1e-6)
    assert os.path.isfile(os.path.join(out, "heatmap_00000.png"))
    assert os.path.isfile(os.path.join(out, "recall_vs_distance.png"))
