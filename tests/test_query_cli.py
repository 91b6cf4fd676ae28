"""``cvmnet-query`` end to end: build an index from a GeoTIFF the test writes (the synthetic
map, UTM 48N), search it with the map's panoramas, check the results against an
independent in-process computation, refuse another model with one line."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

rasterio = pytest.importorskip("rasterio")
pyproj = pytest.importorskip("pyproj")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPO)
UTM48 = "EPSG:32648"
TILE_M, STRIDE_M = 40.0, 20.0


def _query(*args):
    return subprocess.run([sys.executable, "-m", "cvmnet_tf.query", *args], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from rasterio.transform import Affine

    from cvmnet_tf import models
    from cvmnet_tf.data.synthetic import write_map

    root = tmp_path_factory.mktemp("query")
    info = write_map(str(root / "map"), seed=3, size_m=(140.0, 180.0), num_panoramas=3, ground_size=(16, 64),
                     min_spacing_m=20.0, margin_m=30.0)
    image = np.asarray(Image.open(root / "map" / "map.png").convert("RGB"))
    tif = str(root / "map.tif")
    with rasterio.open(tif, "w", driver="GTiff", height=image.shape[0], width=image.shape[1], count=3, dtype="uint8",
                       crs=UTM48, transform=Affine(0.5, 0.0, info["origin_easting"], 0.0, -0.5,
                                                    info["origin_northing"])) as ds:
        ds.write(np.moveaxis(image, -1, 0))
    to_ll = pyproj.Transformer.from_crs(UTM48, "EPSG:4326", always_xy=True)
    rows = ["path,lat,lon"]
    for rel, e, n in info["panoramas"]:
        lon, lat = to_ll.transform(e, n)
        rows.append(f"{os.path.basename(rel)},{lat!r},{lon!r}")
    (root / "truth.csv").write_text("\n".join(rows) + "\n")
    paths = {}
    for name, seed in (("a", 1), ("b", 2)):
        import keras
        keras.utils.set_random_seed(seed)
        m = models.build_model("cvm_net_i", satellite_shape=(32, 32), ground_shape=(16, 64), num_clusters=4,
                               descriptor_dim=16, width=0.0625, weights=None)
        m.get_layer("dim_reduction").bias.assign(np.zeros(16, np.float32))  # spread-out descriptors
        paths[name] = str(root / f"{name}.keras")
        m.save(paths[name])
    return {"root": root, "tif": tif, "info": info, "image": image, "models": paths}


def test_build_search_and_refuse_another_model(world):
    from cvmnet_tf.inference import load_encoder

    root, info = world["root"], world["info"]
    db = str(root / "db.npz")
    proc = _query("build", f"--checkpoint={world['models']['a']}", f"--map={world['tif']}", f"--tile_m={TILE_M}",
                  f"--stride_m={STRIDE_M}", f"--output={db}", "--batch_size=8")
    assert proc.returncode == 0, proc.stderr
    assert "crs EPSG:32648" in proc.stdout and "tiles of 40 m every 20 m" in proc.stdout
    out_dir = root / "out"
    proc = _query("search", f"--checkpoint={world['models']['a']}", f"--index={db}",
                  f"--queries={root / 'map' / 'panoramas'}", f"--truth={root / 'truth.csv'}", f"--output_dir={out_dir}",
                  "--top_k=3")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((out_dir / "results.json").read_text())
    assert len(doc["queries"]) == 3 and doc["crs"] == UTM48

    # independent: tiles cut with NumPy, both branches run here, brute-force ranking
    enc = load_encoder(world["models"]["a"])
    px, stride = int(TILE_M / 0.5), int(STRIDE_M / 0.5)
    h, w = world["image"].shape[:2]
    rows, cols = (h - px) // stride + 1, (w - px) // stride + 1
    tiles = np.stack([world["image"][r * stride:r * stride + px, c * stride:c * stride + px]
                      for r in range(rows) for c in range(cols)])
    centres = np.stack([[info["origin_easting"] + (c * stride + px / 2) * 0.5,
                         info["origin_northing"] - (r * stride + px / 2) * 0.5] for r in range(rows) for c in range(cols)])
    sat = enc.satellite(tiles).astype(np.float64)
    names = sorted(os.path.basename(p) for p, _, _ in info["panoramas"])
    grd = enc.ground(np.stack([np.asarray(Image.open(root / "map" / "panoramas" / n).convert("RGB")) for n in names]))
    s = grd.astype(np.float64) @ sat.T
    tol = 1e3 * np.finfo(np.float32).eps
    truth = {os.path.basename(p): (e, n) for p, e, n in info["panoramas"]}
    for j, q in enumerate(doc["queries"]):
        assert os.path.basename(q["query"]) == names[j]
        top = [t["tile_index"] for t in q["top_k"]]
        assert s[j, top[0]] >= s[j].max() - tol            # the best tile, up to float32 rounding
        assert np.all(np.diff([t["similarity"] for t in q["top_k"]]) <= 0)
        np.testing.assert_allclose([q["top_k"][0]["easting"], q["top_k"][0]["northing"]], centres[top[0]], atol=1e-6)
        # truth given as lat/lon, converted by pyproj into the index's UTM zone: metres error of the best tile
        assert q["error_m"] == pytest.approx(np.hypot(*(centres[top[0]] - truth[names[j]])), abs=1e-3)
    # the summary's chance level: the mean distance from each truth to every tile centre
    chance = np.mean([np.mean(np.hypot(*(centres - np.asarray(truth[n])).T)) for n in names])
    assert doc["summary"]["chance_mean_error_m"] == pytest.approx(chance, abs=1e-3)
    assert doc["summary"]["num_distinct_best_tiles"] == len({q["top_k"][0]["tile_index"] for q in doc["queries"]})
    assert "(a random tile: " in proc.stdout
    reports = sorted(p for p in os.listdir(out_dir) if p.endswith(".png"))
    assert len(reports) == 3
    with Image.open(out_dir / reports[0]) as im:
        assert im.size == (1500, 1350)
    assert "mean error" in proc.stdout and names[0] in proc.stdout

    # another model: one line, exit 1, nothing written
    proc = _query("search", f"--checkpoint={world['models']['b']}", f"--index={db}",
                  f"--queries={root / 'map' / 'panoramas'}", f"--output_dir={root / 'out_b'}")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1 and "built with model" in errors[0], proc.stderr
    assert not (root / "out_b").exists()


def test_usage_errors(world, tmp_path):
    proc = _query()
    assert proc.returncode == 2 and "needs a step first: build or search" in proc.stderr
    proc = _query("build", f"--checkpoint={world['models']['a']}", f"--map={world['tif']}",
                  f"--tiles={tmp_path}/t.csv", f"--output={tmp_path}/x.npz")
    assert proc.returncode == 2 and "exactly one of --map" in proc.stderr
