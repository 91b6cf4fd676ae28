"""Query-your-own-images library (cvmnet_tf.georef): maps, CRSs, tables, index, search, reports."""
import csv
import importlib.util
import json
import os
import sys

import numpy as np
import pytest
from PIL import Image

from cvmnet_tf.data.synthetic import write_map
from cvmnet_tf.georef import coords, index as index_lib, maps, search, tables

# pyproj is in the optional [geo] extra (.ci/run installs it; `pip install -e ".[test]"` alone does not)
needs_pyproj = pytest.mark.skipif(importlib.util.find_spec("pyproj") is None,
                                  reason="needs pyproj: pip install -e '.[geo]'")

EPS32 = np.finfo(np.float32).eps
TILE_M, STRIDE_M = 40.0, 20.0
UTM48 = "EPSG:32648"       # Singapore's zone: the synthetic map's origin is a plausible UTM 48N point


# ----------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def synthetic_map(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("map"))
    info = write_map(os.path.join(root, "map"), seed=2, size_m=(140.0, 180.0), num_panoramas=3, ground_size=(16, 64),
                     min_spacing_m=20.0, margin_m=30.0)
    return os.path.join(root, "map"), info


class OracleEncoder:
    """A hand-made descriptor: the 8 x 8 grey thumbnail, mean-removed, unit norm. A crop
    of the map matches the tile it was cut from (no learning involved)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        out = []
        for im in np.asarray(images):
            g = np.asarray(Image.fromarray(im).convert("L").resize((8, 8), Image.BILINEAR), np.float64).ravel()
            g -= g.mean()
            out.append(g / max(np.linalg.norm(g), 1e-9))
        return np.asarray(out, np.float32)


def tile_by_numpy(image, i, cols, tile_px, stride_px):
    r, c = divmod(i, cols)
    return image[r * stride_px:r * stride_px + tile_px, c * stride_px:c * stride_px + tile_px]


def write_queries_at(root, raster, points_xy, size_px):
    """Crops of the map centred on metric points (the 'ground images' of the oracle)."""
    os.makedirs(root, exist_ok=True)
    rows = []
    m = raster.metres_per_pixel
    for j, (x, y) in enumerate(points_xy):
        c = int(round((x - raster.origin_x) / m - size_px / 2))
        r = int(round((raster.origin_y - y) / m - size_px / 2))
        Image.fromarray(raster.image[r:r + size_px, c:c + size_px]).save(os.path.join(root, f"q{j}.png"))
        rows.append((f"q{j}.png", x, y))
    with open(os.path.join(root, "truth.csv"), "w") as f:
        f.write("path,easting,northing\n" + "".join(f"{p},{x},{y}\n" for p, x, y in rows))
    return os.path.join(root, "truth.csv")


# ----------------------------------------------------------------------- maps and CRSs
@needs_pyproj
def test_map_folder_json_bounds_and_world_file_agree(synthetic_map, tmp_path):
    folder, info = synthetic_map
    r = maps.read_map(folder)
    assert (r.metres_per_pixel, r.origin_x, r.origin_y, r.crs) == (info["metres_per_pixel"], info["origin_easting"],
                                                                   info["origin_northing"], None)
    h, w = r.image.shape[:2]
    img = str(tmp_path / "plain.png")
    Image.fromarray(r.image).save(img)
    with open(img + ".json", "w") as f:
        json.dump({"bounds": {"west": r.origin_x, "east": r.origin_x + w * 0.5, "north": r.origin_y,
                              "south": r.origin_y - h * 0.5}, "crs": UTM48}, f)
    b = maps.read_map(img)
    assert (b.metres_per_pixel, b.origin_x, b.origin_y, b.crs) == (0.5, r.origin_x, r.origin_y, UTM48)
    os.remove(img + ".json")
    with open(str(tmp_path / "plain.pgw"), "w") as f:   # A D B E C F, C/F = centre of pixel (0, 0)
        f.write(f"0.5\n0\n0\n-0.5\n{r.origin_x + 0.25}\n{r.origin_y - 0.25}\n")
    wf = maps.read_map(img, crs=UTM48)
    assert (wf.metres_per_pixel, wf.origin_x, wf.origin_y, wf.crs) == (0.5, r.origin_x, r.origin_y, UTM48)
    np.testing.assert_array_equal(wf.image, r.image)
    grid = r.tile_grid(TILE_M, STRIDE_M)
    assert (grid.tile_px, grid.stride_px) == (80, 40)
    assert grid.cols == (w - 80) // 40 + 1 and grid.rows == (h - 80) // 40 + 1


@needs_pyproj
def test_map_errors_are_one_line(tmp_path):
    img = str(tmp_path / "m.png")
    Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(img)
    with pytest.raises(FileNotFoundError, match="has no geo-reference") as e:
        maps.read_map(img)
    assert "\n" not in str(e.value)
    with open(img + ".json", "w") as f:
        json.dump({"bounds": {"west": 0, "east": 20, "south": 0, "north": 30}}, f)
    with pytest.raises(ValueError, match="pixels must be square"):
        maps.read_map(img)
    with open(img + ".json", "w") as f:
        json.dump({"metres_per_pixel": 1.0, "origin_easting": 0, "origin_northing": 0, "crs": "EPSG:4326"}, f)
    with pytest.raises(ValueError, match="not projected in metres"):
        maps.read_map(img)
    with pytest.raises(ValueError, match="tile_m=30"):
        maps.read_map(img, crs=UTM48).tile_grid(30, 5)


@needs_pyproj
def test_crs_conversions_and_utm_zones():
    assert coords.utm_crs(1.29, 103.85) == "EPSG:32648"
    assert coords.utm_crs(41.88, -87.63) == "EPSG:32616"
    assert coords.utm_crs(-33.87, 151.21) == "EPSG:32756"
    # on zone 48's central meridian (105 E): x = 500 km false easting, y = 0.9996 x the WGS84
    # meridian arc (series to e^6, far below a millimetre at 1.3 degrees)
    a, f = 6378137.0, 1 / 298.257223563
    e2 = f * (2 - f)
    phi = np.radians(1.3)
    arc = a * ((1 - e2 / 4 - 3 * e2 ** 2 / 64 - 5 * e2 ** 3 / 256) * phi
               - (3 * e2 / 8 + 3 * e2 ** 2 / 32 + 45 * e2 ** 3 / 1024) * np.sin(2 * phi)
               + (15 * e2 ** 2 / 256 + 45 * e2 ** 3 / 1024) * np.sin(4 * phi)
               - 35 * e2 ** 3 / 3072 * np.sin(6 * phi))
    x0, y0 = coords.latlon_to_xy(1.3, 105.0, UTM48)
    assert abs(x0 - 500000.0) < 1e-6 and abs(y0 - 0.9996 * arc) < 1e-3
    lat = np.array([1.30, 1.31]); lon = np.array([103.80, 103.85])
    x, y = coords.latlon_to_xy(lat, lon, UTM48)
    lat2, lon2 = coords.xy_to_latlon(x, y, UTM48)
    np.testing.assert_allclose(lat2, lat, atol=1e-9)
    np.testing.assert_allclose(lon2, lon, atol=1e-9)
    nan_lat, _ = coords.xy_to_latlon(x, y, None)
    assert np.isnan(nan_lat).all()


def test_missing_geo_extra_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "pyproj", None)
    monkeypatch.setitem(sys.modules, "rasterio", None)
    coords._crs.cache_clear()
    coords._transformer.cache_clear()
    try:
        with pytest.raises(coords.GeoExtraMissing, match=r"needs rasterio, part of the optional \[geo\] extra") as e:
            maps.read_geotiff(str(tmp_path / "x.tif"))
        assert "\n" not in str(e.value) and "pip install" in str(e.value)
        p = tmp_path / "t.csv"
        p.write_text("path,lat,lon\na.png,1.3,103.8\n")
        with pytest.raises(coords.GeoExtraMissing, match="lat/lon columns"):
            tables.read_located_csv(str(p), check_files=False)
        # a local metric frame needs no extra
        p.write_text("path,easting,northing\na.png,1,2\n")
        assert tables.read_located_csv(str(p), check_files=False).crs is None
    finally:
        coords._crs.cache_clear()
        coords._transformer.cache_clear()


@needs_pyproj
def test_tables_latlon_easting_and_errors(tmp_path):
    import pyproj

    (tmp_path / "a.png").write_bytes(b"x")
    p = tmp_path / "t.csv"
    p.write_text("path,lat,lon,extra\na.png,1.30,103.80,z\nmissing.png,1.31,103.81,z\n")
    t = tables.read_located_csv(str(p))
    assert t.crs == "EPSG:32648" and len(t) == 1 and t.dropped[0].path.endswith("missing.png")
    ref = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:32648", always_xy=True).transform(103.80, 1.30)
    np.testing.assert_allclose(t.xy[0], ref, rtol=0, atol=1e-6)
    p.write_text("path,x,y\na.png,1,2\n")
    with pytest.raises(ValueError, match="lat,lon .* or easting,northing"):
        tables.read_located_csv(str(p))
    p.write_text("path,easting,northing\na.png,1,2\na.png,oops,3\n")
    with pytest.raises(ValueError, match=r"t.csv:3: easting must be a number"):
        tables.read_located_csv(str(p))


# ----------------------------------------------------------------------- index
def test_map_index_descriptors_centres_and_memmap(synthetic_map, tmp_path):
    folder, _ = synthetic_map
    enc = OracleEncoder()
    out = str(tmp_path / "idx.npz")
    idx = index_lib.build_index(out, folder, enc, "fp-1", {"size": [8, 8]}, tile_m=TILE_M, stride_m=STRIDE_M,
                                batch_size=3)
    r = maps.read_map(folder)
    g = idx.grid
    assert isinstance(idx.descriptors, np.memmap) and idx.descriptors.shape == (g["rows"] * g["cols"], 64)
    ref = enc(np.stack([tile_by_numpy(r.image, i, g["cols"], 80, 40) for i in range(idx.num_tiles)]))
    np.testing.assert_allclose(idx.descriptors, ref, rtol=0, atol=8 * EPS32)   # same maths, float32 storage
    i = np.arange(idx.num_tiles)
    cx = r.origin_x + ((i % g["cols"]) * 40 + 40) * 0.5
    cy = r.origin_y - ((i // g["cols"]) * 40 + 40) * 0.5
    np.testing.assert_array_equal(idx.xy, np.stack([cx, cy], 1))
    assert np.isnan(idx.latlon).all() and idx.names[g["cols"] + 2] == "r0001_c0002"
    assert [f for f in os.listdir(tmp_path) if f != "idx.npz"] == []        # no temporary left
    # refuse another model, other preprocessing, an existing file
    with pytest.raises(index_lib.IndexMismatchError, match="built with model fp-1") as e:
        index_lib.load_index(out, "fp-2")
    assert "\n" not in str(e.value)
    with pytest.raises(index_lib.IndexMismatchError, match="other preprocessing \\(size"):
        index_lib.load_index(out, "fp-1", {"size": [9, 9]})
    assert index_lib.load_index(out, "fp-1", {"size": (8, 8)}).num_tiles == idx.num_tiles
    with pytest.raises(FileExistsError, match="exists"):
        index_lib.build_index(out, folder, enc, "fp-1", {}, tile_m=TILE_M, stride_m=STRIDE_M)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a tile index"):
        index_lib.load_index(str(tmp_path / "bad.npz"))


def test_failed_build_leaves_nothing(synthetic_map, tmp_path):
    folder, _ = synthetic_map
    calls = []

    def broken(images):
        calls.append(1)
        if len(calls) == 2:
            return np.full((len(images), 4), np.nan, np.float32)
        return np.ones((len(images), 4), np.float32)

    with pytest.raises(ValueError, match="NaN or inf"):
        index_lib.build_index(str(tmp_path / "idx.npz"), folder, broken, "fp", {}, tile_m=TILE_M, stride_m=STRIDE_M,
                              batch_size=2)
    assert os.listdir(tmp_path) == []


def test_fingerprint_is_architecture_plus_weights(tmp_path):
    import keras

    from cvmnet_tf import models
    from cvmnet_tf.inference.fingerprint import model_fingerprint

    kw = dict(satellite_shape=(16, 16), ground_shape=(16, 32), descriptor_dim=8, width=0.0625, weights=None)
    a = models.build_model("siamese_vgg", **kw)
    b = models.MODELS["siamese_vgg"].cls(name="renamed", backbone="vgg16", **kw)   # another name, fresh weights
    assert b.name != a.name and model_fingerprint(b) != model_fingerprint(a)
    b.set_weights(a.get_weights())
    fa = model_fingerprint(a)
    assert len(fa) == 64 and model_fingerprint(b) == fa             # identical models hash alike
    a.save(str(tmp_path / "a.keras"))
    assert model_fingerprint(keras.saving.load_model(str(tmp_path / "a.keras"))) == fa   # a .keras round trip
    w = b.weights[-1]
    w.assign(w.numpy() + 1e-3)
    assert model_fingerprint(b) != fa                                # any weight
    c = models.build_model("siamese_vgg", **dict(kw, descriptor_dim=9))
    assert model_fingerprint(c) != fa                                # the architecture


# ----------------------------------------------------------------------- search
@pytest.mark.parametrize("block_rows", [1, 4, 7, 1000])
def test_top_k_search_brute_force_with_ties(block_rows):
    rng = np.random.default_rng(0)
    d = rng.integers(-2, 3, size=(23, 5)).astype(np.float32)
    q = rng.integers(-2, 3, size=(6, 5)).astype(np.float32)
    idx = index_lib.TileIndex(d, np.zeros((23, 2)), np.full((23, 2), np.nan), [str(i) for i in range(23)],
                              {"kind": "tiles"})
    ti, ts, sims = search.top_k_search(idx, q, 7, block_bytes=4 * len(q) * block_rows)
    s = q.astype(np.float64) @ d.T.astype(np.float64)
    ref = np.argsort(-s, axis=1, kind="stable")[:, :7]        # decreasing, lower row first on ties
    np.testing.assert_array_equal(ti, ref)
    np.testing.assert_array_equal(ts, np.take_along_axis(s, ref, 1))
    np.testing.assert_array_equal(sims, s)
    assert len(np.unique(s)) < s.size / 3                    # there were ties to break
    ti2, _, _ = search.top_k_search(idx, q, 100)
    assert ti2.shape == (6, 23)


def test_oracle_localizes_map_crops_and_writes_outputs(synthetic_map, tmp_path):
    folder, _ = synthetic_map
    r = maps.read_map(folder)
    enc = OracleEncoder()
    idx = index_lib.build_index(str(tmp_path / "idx.npz"), folder, enc, "oracle", {}, tile_m=TILE_M,
                                stride_m=STRIDE_M)
    # queries: map crops centred 3 m off three tile centres
    picks = [0, idx.num_tiles // 2, idx.num_tiles - 1]
    pts = idx.xy[picks] + [3.0, -3.0]
    truth = write_queries_at(str(tmp_path / "q"), r, pts, 80)
    out = search.query_index_files(str(tmp_path / "idx.npz"), enc, str(tmp_path / "q"), str(tmp_path / "out"),
                                   model_fingerprint="oracle", preprocessing={}, top_k=3, truth_csv=truth)
    doc = json.load(open(out["json"]))
    assert [q["top_k"][0]["tile_index"] for q in doc["queries"]] == picks
    np.testing.assert_allclose([q["error_m"] for q in doc["queries"]], [np.hypot(3, 3)] * 3, rtol=1e-12)
    with open(out["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9 and rows[0]["rank"] == "1"
    np.testing.assert_allclose(float(rows[0]["easting"]), idx.xy[picks[0], 0])
    np.testing.assert_allclose(float(rows[0]["true_easting"]), pts[0, 0])
    assert len(out["reports"]) == 3
    with Image.open(out["reports"][1]) as im:
        assert im.size == (1500, 1350)
    assert doc["summary"]["median_error_m"] == pytest.approx(np.hypot(3, 3))


def test_real_model_end_to_end_on_the_synthetic_map(synthetic_map, tmp_path):
    from cvmnet_tf import models
    from cvmnet_tf.georef import encoder_preprocessing
    from cvmnet_tf.inference import load_encoder

    folder, info = synthetic_map
    m = models.build_model("cvm_net_i", satellite_shape=(32, 32), ground_shape=(16, 64), num_clusters=4,
                           descriptor_dim=16, width=0.0625, weights=None)
    m.save(str(tmp_path / "m.keras"))
    enc = load_encoder(str(tmp_path / "m.keras"))
    sat, grd, prep, fp = enc.satellite, enc.ground, encoder_preprocessing(enc), enc.info["model_fingerprint"]
    path = str(tmp_path / "idx.npz")
    idx = index_lib.build_index(path, folder, sat, fp, prep, tile_m=TILE_M, stride_m=STRIDE_M, batch_size=4)
    r = maps.read_map(folder)
    g = idx.grid
    tiles = np.stack([tile_by_numpy(r.image, i, g["cols"], 80, 40) for i in range(idx.num_tiles)])
    ref = sat(tiles)       # one batch, where the index saw batches of 4
    # unit vectors through ~20 float32 layers; batch composition changes the summation order
    np.testing.assert_allclose(idx.descriptors, ref, rtol=0, atol=1e3 * EPS32)
    out = search.query_index_files(path, grd, os.path.join(folder, "panoramas"), str(tmp_path / "out"),
                                   model_fingerprint=fp, preprocessing=prep, top_k=4,
                                   truth_csv=os.path.join(folder, "panoramas.csv"))
    doc = json.load(open(out["json"]))
    q = grd(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in search.list_query_images(
        os.path.join(folder, "panoramas"))]))
    s = q.astype(np.float64) @ np.asarray(idx.descriptors, np.float64).T
    tol = 1e3 * EPS32
    for j, qd in enumerate(doc["queries"]):
        got = [t["tile_index"] for t in qd["top_k"]]
        # the returned tiles are the most similar ones, up to float32 rounding
        assert s[j, got[0]] >= s[j].max() - tol
        assert np.all(np.diff([t["similarity"] for t in qd["top_k"]]) <= 0)
        truth = next(p for p in info["panoramas"] if os.path.basename(p[0]) == os.path.basename(qd["query"]))
        assert qd["true_easting"] == pytest.approx(truth[1], abs=1e-3)
        assert qd["error_m"] == pytest.approx(np.hypot(*(idx.xy[got[0]] - truth[1:])), abs=1e-3)
    with pytest.raises(index_lib.IndexMismatchError):
        search.query_index_files(path, grd, folder + "/panoramas", str(tmp_path / "o2"), model_fingerprint="x" * 64,
                                 preprocessing=prep)


@needs_pyproj
def test_geotiff_and_tile_folder_databases_with_latlon(synthetic_map, tmp_path):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import Affine
    import pyproj

    folder, _ = synthetic_map
    r = maps.read_map(folder)
    tif = str(tmp_path / "map.tif")
    h, w = r.image.shape[:2]
    with rasterio.open(tif, "w", driver="GTiff", height=h, width=w, count=3, dtype="uint8", crs=UTM48,
                       transform=Affine(0.5, 0.0, r.origin_x, 0.0, -0.5, r.origin_y)) as ds:
        ds.write(np.moveaxis(r.image, -1, 0))
    g = maps.read_map(tif)
    assert g.crs == UTM48 and (g.origin_x, g.origin_y, g.metres_per_pixel) == (r.origin_x, r.origin_y, 0.5)
    np.testing.assert_array_equal(g.image, r.image)
    enc = OracleEncoder()
    idx = index_lib.build_index(str(tmp_path / "tif.npz"), tif, enc, "o", {}, tile_m=TILE_M, stride_m=STRIDE_M)
    to_ll = pyproj.Transformer.from_crs(UTM48, "EPSG:4326", always_xy=True)
    lon, lat = to_ll.transform(idx.xy[:, 0], idx.xy[:, 1])
    np.testing.assert_allclose(idx.latlon, np.stack([lat, lon], 1), rtol=0, atol=1e-12)
    # the same tiles as files, listed with lat/lon; one corrupt, one missing
    os.makedirs(tmp_path / "tiles")
    gr = idx.tile_grid()
    lines = ["path,lat,lon"]
    for i in range(idx.num_tiles):
        name = f"tiles/t{i:03d}.png"
        Image.fromarray(tile_by_numpy(r.image, i, gr.cols, 80, 40)).save(tmp_path / name)
        lines.append(f"{name},{float(idx.latlon[i, 0])!r},{float(idx.latlon[i, 1])!r}")
    (tmp_path / "tiles" / "t001.png").write_bytes(b"\x89PNG\r\n\x1a\n corrupt")
    lines.append("tiles/gone.png,1.3,103.8")
    (tmp_path / "tiles.csv").write_text("\n".join(lines) + "\n")
    tidx = index_lib.build_index(str(tmp_path / "tiles.npz"), str(tmp_path / "tiles.csv"), enc, "o", {})
    assert tidx.kind == "tiles" and tidx.num_tiles == idx.num_tiles - 1 and tidx.crs == UTM48
    skipped = {os.path.basename(p): why for p, why in tidx.meta["skipped"]}
    assert skipped == {"t001.png": "unreadable image", "gone.png": "image file missing"}
    keep = [i for i in range(idx.num_tiles) if i != 1]
    np.testing.assert_allclose(tidx.xy, idx.xy[keep], rtol=0, atol=1e-6)     # lat/lon -> UTM round trip
    np.testing.assert_allclose(tidx.descriptors, idx.descriptors[keep], rtol=0, atol=8 * EPS32)
    # queries with lat/lon truth against both databases
    pts = idx.xy[[gr.cols + 1, 2 * gr.cols + 2]] + [4.0, 2.0]       # interior tiles, crops stay inside
    write_queries_at(str(tmp_path / "q"), r, pts, 80)
    qlon, qlat = to_ll.transform(pts[:, 0], pts[:, 1])
    (tmp_path / "q" / "truth_ll.csv").write_text(
        "path,lat,lon\n" + "".join(f"q{j}.png,{float(a)!r},{float(b)!r}\n" for j, (a, b) in enumerate(zip(qlat, qlon))))
    for db, name in ((str(tmp_path / "tif.npz"), "map"), (str(tmp_path / "tiles.npz"), "tiles")):
        out = search.query_index_files(db, enc, str(tmp_path / "q"), str(tmp_path / f"out_{name}"),
                                       model_fingerprint="o", preprocessing={}, top_k=3,
                                       truth_csv=str(tmp_path / "q" / "truth_ll.csv"))
        doc = json.load(open(out["json"]))
        errors = [q["error_m"] for q in doc["queries"]]
        np.testing.assert_allclose(errors, [np.hypot(4, 2)] * 2, atol=1e-6)
        best = doc["queries"][0]["top_k"][0]
        assert best["lat"] == pytest.approx(idx.latlon[gr.cols + 1, 0], abs=1e-9)
        assert len(out["reports"]) == 2
