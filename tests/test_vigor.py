"""VIGOR loader (cvmnet_tf.data.vigor) and metrics (cvmnet_tf.evaluation.vigor_metrics).

The loader fixture is written by hand in the release's exact file names and line format
(independent of the synthetic writer); the metrics are checked against a brute-force
NumPy transcription of VIGOR's ``validate_top`` loop.
"""
import math
import os
import tracemalloc

import numpy as np
import pytest

from cvmnet_tf.data import vigor
from cvmnet_tf.evaluation import metrics, vigor_metrics as vm

EPS32 = np.finfo(np.float32).eps


# ----------------------------------------------------------------------- fixture
def _sat_name(lat, lon):
    return f"satellite_{lat!r}_{lon!r}.png"


def _pano_name(i, lat, lon):
    return f"pano{i:03d}x,{lat:.6f},{lon:.6f},.jpg"


def _touch(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(b"x")


def write_vigor_fixture(root, cities=vigor.CITIES, sats_per_city=5, panos_per_city=3, corrected=False):
    """Returns {city: (sat names, [(pano name, [4 sat rows in city], offsets (4, 2))])}."""
    layout = {}
    splits = "splits__corrected" if corrected else "splits"
    for ci, city in enumerate(cities):
        sats = [_sat_name(40.0 + ci + 0.001 * k, -70.0 - ci - 0.002 * k) for k in range(sats_per_city)]
        for s in sats:
            _touch(os.path.join(root, city, "satellite", s))
        with open(os.path.join(_mk(root, splits, city), vigor.SATELLITE_LIST), "w") as f:
            f.write("".join(s + "\n" for s in sats))
        panos = []
        for j in range(panos_per_city):
            rows = [(j + k) % sats_per_city for k in range(4)]
            offs = np.array([[10.0 * j + k, -3.0 * k - j] for k in range(4)])
            name = _pano_name(j, 40.0 + ci + 0.0005 * j, -70.0 - ci - 0.0007 * j)
            _touch(os.path.join(root, city, "panorama", name))
            panos.append((name, rows, offs))
        for area, split in (("same", "train"), ("same", "test"), ("cross", "test")):
            sel = panos if area == "cross" else [p for q, p in enumerate(panos) if (q % 2 == 0) == (split == "train")]
            lines = [" ".join([name] + [f"{sats[r]} {o[0]:.1f} {o[1]:.1f}" for r, o in zip(rows, offs)])
                     for name, rows, offs in sel]
            with open(os.path.join(root, splits, city, vigor.label_file_name(area, split, corrected)), "w") as f:
                f.write("\n".join(lines) + "\n")
        layout[city] = (sats, panos)
    return layout


def _mk(*parts):
    p = os.path.join(*parts)
    os.makedirs(p, exist_ok=True)
    return p


# ----------------------------------------------------------------------- loader
def test_same_area_split_reads_pool_labels_and_offsets(tmp_path):
    layout = write_vigor_fixture(str(tmp_path))
    s = vigor.load_vigor_split(str(tmp_path), "test", area="same")
    assert s.cities == vigor.CITIES
    assert s.num_satellites == 4 * 5
    # pool order: the released loader's city order, line order within a city
    expected_pool = [os.path.join(str(tmp_path), c, "satellite", n) for c in vigor.CITIES for n in layout[c][0]]
    assert s.satellite_paths == expected_pool
    # same-area test = odd panoramas of each city (fixture), in city order
    exp = [(ci, p) for ci, c in enumerate(vigor.CITIES) for q, p in enumerate(layout[c][1]) if q % 2 == 1]
    assert len(s) == len(exp)
    for row, (ci, (name, rows, offs)) in enumerate(exp):
        assert s.panorama_paths[row] == os.path.join(str(tmp_path), vigor.CITIES[ci], "panorama", name)
        assert s.positive_index[row] == ci * 5 + rows[0]
        np.testing.assert_array_equal(s.semi_positive_index[row], [ci * 5 + r for r in rows[1:]])
        np.testing.assert_array_equal(s.offsets_px[row], offs)
        lat, lon = (float(v) for v in name.split(",")[1:3])
        np.testing.assert_array_equal(s.panorama_latlon[row], [lat, lon])
    lat, lon = vigor.parse_satellite_name(layout["Seattle"][0][2])
    np.testing.assert_array_equal(s.satellite_latlon[5 + 2], [lat, lon])
    assert s.dropped == []
    pairs = s.as_pair_split()
    assert pairs.satellite_paths[0] == s.satellite_paths[s.positive_index[0]]
    assert pairs.ground_paths == s.panorama_paths and pairs.dataset == "vigor"
    ret = s.as_retrieval_split()
    np.testing.assert_array_equal(ret.query.labels, s.positive_index)
    np.testing.assert_array_equal(ret.gallery.labels, np.arange(20))


def test_cross_area_uses_only_the_test_cities(tmp_path):
    write_vigor_fixture(str(tmp_path))
    s = vigor.load_vigor_split(str(tmp_path), "test", area="cross")
    assert s.cities == ("SanFrancisco", "Chicago")
    assert s.num_satellites == 10 and len(s) == 6
    assert all("/SanFrancisco/" in p or "/Chicago/" in p for p in s.satellite_paths + s.panorama_paths)
    # Chicago's labels index into the second half of the pool
    assert s.positive_index[3:].min() >= 5


def test_query_pixel_follows_the_released_convention(tmp_path):
    write_vigor_fixture(str(tmp_path))
    s = vigor.load_vigor_split(str(tmp_path), "test", area="cross")
    d = s.offsets_px[:, 0]
    # released visualisation: plt.plot(320 - delta[1], 320 + delta[0]) = (x=col, y=row)
    np.testing.assert_array_equal(s.query_pixel(0), np.stack([320 + d[:, 0], 320 - d[:, 1]], 1))
    np.testing.assert_array_equal(s.query_pixel(0, tile_size=64), np.stack([32 + d[:, 0] / 10, 32 - d[:, 1] / 10], 1))


def test_missing_images_are_dropped_reindexed_and_reported(tmp_path):
    root = str(tmp_path)
    layout = write_vigor_fixture(root)
    sats, panos = layout["SanFrancisco"]
    # panorama 0 of SF: positive = sat 0, semis 1, 2, 3. Remove sat 1 (a semi of pano 0,
    # the positive of pano 1) and the image of Chicago's panorama 2.
    os.remove(os.path.join(root, "SanFrancisco", "satellite", sats[1]))
    os.remove(os.path.join(root, "Chicago", "panorama", layout["Chicago"][1][2][0]))
    s = vigor.load_vigor_split(root, "test", area="cross")
    assert s.num_satellites == 9
    assert os.path.join(root, "SanFrancisco", "satellite", sats[1]) not in s.satellite_paths
    names = [os.path.basename(p) for p in s.panorama_paths]
    assert panos[1][0] not in names and layout["Chicago"][1][2][0] not in names and len(s) == 4
    reasons = {os.path.basename(d.path): d.reason for d in s.dropped}
    assert reasons[sats[1]] == "image file missing"
    assert reasons[panos[1][0]].startswith("positive satellite removed")
    assert reasons[layout["Chicago"][1][2][0]] == "image file missing"
    # pano 0 keeps its positive (row 0) and loses semi 1 (-> -1); rows after the gap shift by one
    assert s.positive_index[0] == 0
    np.testing.assert_array_equal(s.semi_positive_index[0], [-1, 1, 2])
    for row in range(len(s)):
        assert os.path.basename(s.satellite_paths[s.positive_index[row]]) in (sats + layout["Chicago"][0])


def test_without_satellites_keeps_every_index_pointing_at_the_same_file(tmp_path):
    write_vigor_fixture(str(tmp_path))
    s = vigor.load_vigor_split(str(tmp_path), "test", area="same")
    before = {(p, k): s.satellite_paths[i] for p, row in zip(s.panorama_paths, s.semi_positive_index)
              for k, i in enumerate(row)}
    t = s.without_satellites([3, 7, 19], reason="unreadable image")
    assert t.num_satellites == 17
    for p, row in zip(t.panorama_paths, t.semi_positive_index):
        for k, i in enumerate(row):
            if i >= 0:
                assert t.satellite_paths[i] == before[(p, k)]
            else:
                assert s.satellite_paths.index(before[(p, k)]) in (3, 7, 19)


@pytest.mark.parametrize("what", ["splits", "satellite_list", "labels"])
def test_missing_list_files_name_the_path(tmp_path, what):
    root = str(tmp_path)
    write_vigor_fixture(root)
    target = {"splits": os.path.join(root, "splits"),
              "satellite_list": os.path.join(root, "splits", "Chicago", vigor.SATELLITE_LIST),
              "labels": os.path.join(root, "splits", "Seattle", "same_area_balanced_test.txt")}[what]
    if os.path.isdir(target):
        import shutil
        shutil.rmtree(target)
    else:
        os.remove(target)
    with pytest.raises(FileNotFoundError) as err:
        vigor.load_vigor_split(root, "test", area="same")
    assert target in str(err.value) and "\n" not in str(err.value)


def test_malformed_lines_name_file_and_line(tmp_path):
    root = str(tmp_path)
    layout = write_vigor_fixture(root)
    label = os.path.join(root, "splits", "Chicago", "pano_label_balanced.txt")
    with open(label, "a") as f:
        f.write("only three fields\n")
    with pytest.raises(ValueError, match=r"pano_label_balanced.txt:4: expected 13 fields"):
        vigor.load_vigor_split(root, "test", area="cross")
    sats = layout["Chicago"][0]
    with open(label, "w") as f:
        f.write(" ".join([_pano_name(0, 1.0, 2.0), "satellite_9.0_9.0.png 1 2"] + [f"{x} 0 0" for x in sats[:3]]) + "\n")
    with pytest.raises(ValueError, match=r"pano_label_balanced.txt:1: satellite 'satellite_9.0_9.0.png' is not"):
        vigor.load_vigor_split(root, "test", area="cross")


def test_corrected_labels_folder_and_names(tmp_path):
    write_vigor_fixture(str(tmp_path), corrected=True)
    s = vigor.load_vigor_split(str(tmp_path), "train", area="same", corrected_labels=True)
    assert "same_area_balanced_train__corrected.txt" in s.source and len(s) == 4 * 2
    with pytest.raises(FileNotFoundError, match="splits"):
        vigor.load_vigor_split(str(tmp_path), "train", area="same")


# ----------------------------------------------------------------------- metrics
def reference_vigor(q, d, pos, semi):
    """Brute-force transcription of VIGOR validate_top (float64 similarities)."""
    s = q.astype(np.float64) @ d.astype(np.float64).T
    rank, hit = [], []
    for i in range(len(q)):
        gt = s[i, pos[i]]
        closer = s[i] > gt
        rank.append(int(closer.sum()))
        m = np.ones(d.shape[0])
        m[[j for j in semi[i] if j >= 0]] = 0
        hit.append(int((closer * m).sum()) < 1)
    return np.array(rank), np.array(hit), np.argmax(s, axis=1)


def integer_problem(rng, n=37, m=53, dim=6):
    """Small-integer descriptors: every dot product is exact in float32, so ties are exact."""
    q = rng.integers(-2, 3, size=(n, dim)).astype(np.float32)
    d = rng.integers(-2, 3, size=(m, dim)).astype(np.float32)
    pos = rng.integers(0, m, size=n)
    semi = np.stack([(pos + k * 7) % m for k in (1, 2, 3)], 1)
    semi[::5, 1] = -1
    return q, d, pos, semi


def float_problem(seed, n, m, dim):
    """Gaussian descriptors; semi-positives are the 3 pool rows after the positive."""
    rng = np.random.default_rng(seed)
    q = rng.normal(size=(n, dim)).astype(np.float32)
    d = rng.normal(size=(m, dim)).astype(np.float32)
    pos = rng.integers(0, m, n)
    return q, d, pos, np.stack([(pos + k) % m for k in (1, 2, 3)], 1)


@pytest.mark.parametrize("rows_per_block", [1, 3, 7, 37, 1000])
def test_ranks_hits_best_match_brute_force_with_ties(rows_per_block):
    rng = np.random.default_rng(0)
    q, d, pos, semi = integer_problem(rng)
    res = vm.vigor_ranks(q, d, pos, semi, block_bytes=5 * d.shape[0] * rows_per_block)
    assert res.block_rows == min(rows_per_block, len(q))
    r, h, b = reference_vigor(q, d, pos, semi)
    assert 0 < h.sum() < len(h) and len(np.unique(q @ d.T)) < 40  # 37 x 53 similarities, < 40 values: ties
    np.testing.assert_array_equal(res.positive_rank, r)
    np.testing.assert_array_equal(res.hit, h)
    np.testing.assert_array_equal(res.best_index, b)


def test_float_descriptors_within_rounding_bounds():
    n, m, dim = 40, 300, 64
    q, d, pos, semi = float_problem(1, n, m, dim)
    res = vm.vigor_ranks(q, d, pos, semi, block_bytes=5 * m * 7)
    s = q.astype(np.float64) @ d.astype(np.float64).T
    t = s[np.arange(n), pos][:, None]
    # a float32 dot product of length dim errs by at most ~dim * eps32 * sum|q_k d_k|
    tol = 2 * dim * EPS32 * (np.abs(q).astype(np.float64) @ np.abs(d).astype(np.float64).T).max()
    assert np.all(res.positive_rank >= (s > t + tol).sum(1))
    assert np.all(res.positive_rank <= (s > t - tol).sum(1))


def test_hit_rule_is_the_released_one_not_top1_membership():
    # database rows: 0 positive, 1 semi, 2 negative; query sims 0.5, 0.9, 0.7
    d = np.eye(3, dtype=np.float32)
    q = np.array([[0.5, 0.9, 0.7],    # semi > negative > positive: VIGOR says miss
                  [0.7, 0.9, 0.5],    # semi > positive > negative: hit
                  [0.5, 0.6, 0.6]],   # semi == negative > positive: miss
                 np.float32)
    res = vm.vigor_ranks(q, d, [0, 0, 0], [[1, -1, -1]] * 3)
    np.testing.assert_array_equal(res.hit, [False, True, False])
    np.testing.assert_array_equal(res.positive_rank, [2, 1, 2])
    np.testing.assert_array_equal(res.best_index, [1, 1, 1])  # lowest row among equal maxima


def test_without_semi_positives_matches_cvmnet_metrics():
    rng = np.random.default_rng(2)
    q, d, pos, _ = integer_problem(rng, n=20, m=31)
    res = vm.vigor_ranks(q, d, pos, None)
    np.testing.assert_array_equal(res.positive_rank, metrics.retrieval_ranks(q, d, true_index=pos))
    np.testing.assert_array_equal(res.hit, res.positive_rank == 0)


def test_evaluate_vigor_keys_cutoff_and_duplicate_semis():
    rng = np.random.default_rng(3)
    q, d, pos, semi = integer_problem(rng, n=30, m=250)
    semi[:, 2] = semi[:, 1]                 # duplicated semi-positive: excluded once
    semi[0, 0] = pos[0]                     # the positive listed as a semi: ignored
    out = vm.evaluate_vigor(q, d, pos, semi, block_bytes=5 * 250 * 4)
    r, h, _ = reference_vigor(q, d, pos, semi)
    assert out["top_percent_k"] == int(250 * 0.01) + 1 == 3
    for k in (1, 5, 10):
        assert out[f"recall@{k}"] == np.mean(r < k)
    assert out["recall@1%"] == np.mean(r < 3)
    assert out["hit_rate"] == np.mean(h)
    s4g = vm.evaluate_vigor(q, d, pos, semi, top_percent_rule="sample4geo")
    assert s4g["top_percent_k"] == 250 // 100 and s4g["recall@1%"] == np.mean(r < 2)


def test_bad_inputs_fail_with_one_line():
    d = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match=r"positive_index values must lie in \[0, 3\)"):
        vm.vigor_ranks(d, d, [0, 1, 3])
    with pytest.raises(ValueError, match="semi_positive_index values"):
        vm.vigor_ranks(d, d, [0, 1, 2], [[-2], [0], [0]])
    with pytest.raises(ValueError, match="block_bytes"):
        vm.vigor_ranks(d, d, [0, 1, 2], block_bytes=0)


def test_blocked_pass_allocates_at_most_two_blocks():
    n, m, dim = 400, 6000, 16
    q, d, pos, semi = float_problem(4, n, m, dim)
    block_bytes = 5 * m * 9            # 9 rows: 270 kB per block
    vm.vigor_ranks(q[:10], d, pos[:10], semi[:10], block_bytes=block_bytes)  # warm up imports/caches
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        res = vm.vigor_ranks(q, d, pos, semi, block_bytes=block_bytes)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert res.block_rows == 9
    full_matrix = n * m * 4
    assert peak <= 2 * block_bytes, (peak, block_bytes)
    assert peak < full_matrix / 10


# ----------------------------------------------------------------------- metre level
def haversine_m(a, b, r=vm.EARTH_RADIUS_M):
    a, b = np.radians(a), np.radians(b)
    h = np.sin((b[:, 0] - a[:, 0]) / 2) ** 2 + np.cos(a[:, 0]) * np.cos(b[:, 0]) * np.sin((b[:, 1] - a[:, 1]) / 2) ** 2
    return 2 * r * np.arcsin(np.sqrt(h))


def test_great_circle_distance_against_haversine():
    rng = np.random.default_rng(5)
    a = np.stack([rng.uniform(25, 48, 200), rng.uniform(-125, -70, 200)], 1)
    b = a + rng.normal(scale=[3e-4, 4e-4], size=a.shape) * rng.choice([1e-3, 1, 30], size=(200, 1))
    got = vm.great_circle_distance_m(a, b)
    ref = haversine_m(a, b)
    # acos(1 - x) with the cosine off by delta (a few eps64) errs by at most
    # R * min(sqrt(2 delta), delta / sqrt(2 x)) = min(R sqrt(8 eps), 4 eps R^2 / d)
    eps = np.finfo(np.float64).eps
    r = vm.EARTH_RADIUS_M
    tol = np.minimum(r * math.sqrt(8 * eps), 4 * eps * r ** 2 / np.maximum(ref, 1e-9)) + 1e-9 * ref
    assert np.all(np.abs(got - ref) <= tol)
    assert np.abs(got - ref).max() > 1e-6          # the released formula is not the haversine
    np.testing.assert_allclose(vm.great_circle_distance_m(a, b, "haversine"), ref, rtol=1e-12, atol=1e-9)
    same = vm.great_circle_distance_m(a[:20], a[:20])
    assert np.all(same <= r * math.sqrt(8 * eps)) and np.all(np.isfinite(same))
    assert vm.great_circle_distance_m(a[:20], a[:20], "haversine").tolist() == [0.0] * 20


def test_offset_to_latlon_inverts_the_label_convention():
    # a query 10 m south and 20 m west of a tile centre at 41.88 N: d_lat = +10 m, d_lon = +20 m
    centre = np.array([[41.88, -87.63]])
    mpp = 0.114
    lat_per_m = 180 / math.pi / vm.EARTH_RADIUS_M
    lon_per_m = lat_per_m / math.cos(math.radians(41.88))
    query = centre - [[10 * lat_per_m, 20 * lon_per_m]]
    delta = np.array([[10 / mpp, 20 / mpp]])
    got = vm.offset_to_latlon(centre, delta, mpp)
    err = vm.great_circle_distance_m(got, query)
    assert err[0] < 1e-3     # the spherical Lat_Lng unit vs the local linearisation: sub-mm at 36 m
    e = vm.localization_errors_m([0], query, centre, None)
    np.testing.assert_allclose(e, math.hypot(10, 20), rtol=1e-5)
    e0 = vm.localization_errors_m([0], query, centre, delta, mpp)
    assert e0[0] < 1e-3


def test_metre_accuracy_is_strict_and_evaluate_reports_it():
    np.testing.assert_array_equal(vm.metre_accuracy([1.0, 2.0, 3.0, 10.0], [1.0, 2.5, 10.0, 11.0]),
                                  [0.0, 0.5, 0.75, 1.0])
    d = np.eye(3, dtype=np.float32)
    sat = np.array([[40.0, -70.0], [40.001, -70.0], [40.0, -70.001]])
    qll = sat + [[0.0, 0.0], [0.00001, 0.0], [0.0, 0.0]]
    out = vm.evaluate_vigor(d, d, [0, 1, 2], query_latlon=qll, satellite_latlon=sat, thresholds_m=(1.0, 2.0),
                            distance="haversine")
    assert out["meter/accuracy@1m"] == pytest.approx(2 / 3) and out["meter/accuracy@2m"] == 1.0
    assert out["meter/median_error_m"] == 0.0
    assert out["meter/mean_error_m"] == pytest.approx(0.00001 * math.pi / 180 * vm.EARTH_RADIUS_M / 3, rel=1e-9)
    with pytest.raises(ValueError, match="both"):
        vm.evaluate_vigor(d, d, [0, 1, 2], query_latlon=qll)


# ----------------------------------------------------------------------- batches, chance, restricting
def test_overlap_free_order_blocks_share_no_satellite():
    from cvmnet_tf.data.sampling import overlap_free_order

    rng = np.random.default_rng(4)
    covers = np.stack([rng.choice(90, 4, replace=False) for _ in range(300)])   # distinct per pair, as VIGOR
    covers[::7, 3] = -1                                     # missing semi-positives conflict with nothing
    order = overlap_free_order(covers, 8, seed=1)
    assert len(order) % 8 == 0 and len(np.unique(order)) == len(order) and len(order) >= 0.8 * 300
    for block in order.reshape(-1, 8):
        rows = covers[block].ravel()
        rows = rows[rows >= 0]
        assert len(np.unique(rows)) == len(rows)
    np.testing.assert_array_equal(order, overlap_free_order(covers, 8, seed=1))
    assert not np.array_equal(order, overlap_free_order(covers, 8, seed=2))
    disjoint = np.arange(40).reshape(10, 4)                 # no conflicts: everything but N mod B is used
    assert sorted(overlap_free_order(disjoint, 3, 0)) == sorted(overlap_free_order(disjoint, 3, 0)) and \
        len(overlap_free_order(disjoint, 3, 0)) == 9
    clash = np.zeros((5, 4), np.int64)                      # all share satellite 0: no batch of 2 exists
    assert len(overlap_free_order(clash, 2, 0)) == 0


def test_chance_hit_rate_by_enumerating_every_ranking():
    import itertools

    m = 6
    pos, semi = np.array([0, 3]), np.array([[1, 2, -1], [3, 3, 5]])   # second: its own positive listed, a duplicate
    for q in range(2):
        valid = set(semi[q][(semi[q] >= 0) & (semi[q] != pos[q])].tolist())
        hits = [all(c in valid for c in perm[:perm.index(pos[q])]) for perm in itertools.permutations(range(m))]
        assert vm.chance_hit_rate(pos[q:q + 1], semi[q:q + 1], m) == pytest.approx(np.mean(hits), rel=1e-12)
    assert vm.chance_hit_rate(pos, None, m) == pytest.approx(1 / m)


def test_restrict_keeps_rows_and_positions_aligned(tmp_path):
    write_vigor_fixture(str(tmp_path))
    s = vigor.load_vigor_split(str(tmp_path), "test", area="same")
    sat_rows = [r for r in range(s.num_satellites) if r != s.positive_index[1]]
    pano_rows = [r for r in range(len(s)) if r != 3]
    kept, positions = s.restrict(sat_rows, pano_rows)
    assert len(kept) == len(positions) == len(s) - 2        # query 3 unreadable, query 1 lost its positive
    for new, pos in enumerate(positions):
        old = pano_rows[pos]
        assert kept.panorama_paths[new] == s.panorama_paths[old]
        assert kept.satellite_paths[kept.positive_index[new]] == s.satellite_paths[s.positive_index[old]]
