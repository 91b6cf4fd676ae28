"""Tests of the evaluation plots and of ``python -m cvmnet_tf.evaluate`` (subprocess)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cvmnet_tf.evaluation import plots

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _png_size(path):
    assert os.path.getsize(path) > 1000
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_plots_write_pngs_of_the_requested_size(tmp_path):
    p = plots.plot_top_k_curve({"without distractors": np.linspace(0.2, 1, 50),
                                "with distractors": np.linspace(0.1, 0.9, 50)},
                               tmp_path / "curve.png", top_percent_k=10, size_px=(640, 480))
    assert _png_size(p) == (640, 480)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (32, 128, 3), dtype=np.uint8)).save(tmp_path / "q.jpg")
    sats = [rng.random((24, 24, 3)) for _ in range(5)]
    p = plots.plot_retrieval_examples([str(tmp_path / "q.jpg"), rng.random((32, 128, 3))], [sats, sats],
                                      [[False, True, False, False, False], [False] * 5],
                                      tmp_path / "examples.png", size_px=(900, 300))
    assert _png_size(p) == (900, 300)
    p = plots.plot_recall_vs_distance([10, 50, 100], [0.1, 0.5, 0.7], tmp_path / "dist.png",
                                      reference=(100, 0.671))
    assert _png_size(p) == (800, 600)
    assert sorted(os.listdir(tmp_path)) == ["curve.png", "dist.png", "examples.png", "q.jpg"]  # no temp files
    with pytest.raises(ValueError, match="queries"):
        plots.plot_retrieval_examples([], [], [], tmp_path / "x.png")
    with pytest.raises(ValueError, match="cannot read image"):
        plots.plot_retrieval_examples([str(tmp_path / "missing.jpg")], [sats], [[True] * 5], tmp_path / "x.png")


def _run_cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-m", "cvmnet_tf.evaluate", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def _ref_ranks(q, d):
    dist = 2.0 - 2.0 * (q.astype(np.float64) @ d.astype(np.float64).T)
    return np.array([(dist[i] < dist[i, i]).sum() for i in range(len(q))])


def test_cli_writes_metrics_json_and_outputs(tmp_path):
    rng = np.random.default_rng(1)
    n, extra, dim = 150, 60, 8
    q = rng.standard_normal((n, dim)).astype(np.float32)
    d = q + 0.7 * rng.standard_normal((n, dim)).astype(np.float32)
    x = rng.standard_normal((extra, dim)).astype(np.float32)
    utm_q = rng.uniform(0, 1000, (n, 2))
    utm_d = np.concatenate([utm_q, rng.uniform(0, 1000, (extra, 2))])
    for name, arr in dict(q=q, d=d, x=x, uq=utm_q, ud=utm_d).items():
        np.save(tmp_path / f"{name}.npy", arr)
    out = tmp_path / "metrics.json"
    r = _run_cli("--query", str(tmp_path / "q.npy"), "--database", str(tmp_path / "d.npy"),
                 "--distractors", str(tmp_path / "x.npy"), "--query_utm", str(tmp_path / "uq.npy"),
                 "--database_utm", str(tmp_path / "ud.npy"), "--output", str(out),
                 "--top_k_plot", str(tmp_path / "curve.png"), "--compare_model", "cvm_net_i",
                 "--compare_dataset", "cvusa", "--comparison_md", str(tmp_path / "table.md"), "--block_size", "17")
    assert r.returncode == 0, r.stderr
    m = json.loads(out.read_text())
    full = np.concatenate([d, x])
    ranks = _ref_ranks(q, full)
    ranks_nd = _ref_ranks(q, d)
    k1 = int(0.01 * (n + extra)) + 1
    assert m["top_percent_k"] == k1 == 3
    assert m["num_query"] == n and m["num_database"] == n + extra and m["num_distractors"] == extra
    for k in (1, 5, 10):
        assert m[f"recall@{k}"] == pytest.approx(np.mean(ranks < k), abs=1e-12)
        assert m[f"no_distractors/recall@{k}"] == pytest.approx(np.mean(ranks_nd < k), abs=1e-12)
    assert m["recall@1%"] == pytest.approx(np.mean(ranks < k1), abs=1e-12)
    assert m["no_distractors/recall@1%"] == pytest.approx(np.mean(ranks_nd < int(0.01 * n) + 1), abs=1e-12)
    best = (q.astype(np.float64) @ full.T.astype(np.float64)).argmax(1)
    err = np.hypot(*(utm_q - utm_d[best]).T)
    assert m["localization/mean_error_m"] == pytest.approx(err.mean(), rel=1e-9)
    assert m["localization/recall@100m"] == pytest.approx(np.mean(err <= 100), abs=1e-12)
    assert _png_size(tmp_path / "curve.png") == (800, 600)
    table = (tmp_path / "table.md").read_text()
    assert f"| {100 * m['recall@1%']:.2f} |" in table and "| 91.40 |" in table
    assert not [f for f in os.listdir(tmp_path) if ".tmp-" in f]


def test_cli_reads_oricnn_mat(tmp_path):
    from scipy.io import savemat

    rng = np.random.default_rng(2)
    q = rng.standard_normal((30, 6)).astype(np.float32)
    d = q + 0.5 * rng.standard_normal((30, 6)).astype(np.float32)
    savemat(tmp_path / "desc.mat", {"grd_global_descriptor": q, "sat_global_descriptor": d})
    r = _run_cli("--descriptors_mat", str(tmp_path / "desc.mat"), "--output", str(tmp_path / "m.json"),
                 "--ks", "1,2")
    assert r.returncode == 0, r.stderr
    m = json.loads((tmp_path / "m.json").read_text())
    ranks = _ref_ranks(q, d)
    assert m["recall@2"] == pytest.approx(np.mean(ranks < 2), abs=1e-12)
    assert m["recall@1%"] == pytest.approx(np.mean(ranks < 1), abs=1e-12)


@pytest.mark.parametrize("case, message", [
    ("dim", "dimensions differ"),
    ("nan", "NaN or inf (first bad row 2)"),
])
def test_cli_errors_without_output(tmp_path, case, message):
    rng = np.random.default_rng(3)
    q = rng.standard_normal((10, 4)).astype(np.float32)
    d = rng.standard_normal((10, 5 if case == "dim" else 4)).astype(np.float32)
    if case == "nan":
        q[2, 1] = np.nan
    np.save(tmp_path / "q.npy", q)
    np.save(tmp_path / "d.npy", d)
    out = tmp_path / "metrics.json"
    r = _run_cli("--query", str(tmp_path / "q.npy"), "--database", str(tmp_path / "d.npy"),
                 "--output", str(out), "--top_k_plot", str(tmp_path / "c.png"))
    assert r.returncode != 0
    assert message in r.stderr
    if case == "nan":
        assert "q.npy" in r.stderr      # the error names the file
    assert sorted(os.listdir(tmp_path)) == ["d.npy", "q.npy"]


# ---------------------------------------------------------------- labelled (University-1652) mode
def _ref_labelled(q, g, ql, gl, ks):
    """Full sort per query (float64, true matches first among equal values) and University-1652's AP loop."""
    sims = q.astype(np.float64) @ g.astype(np.float64).T
    firsts, aps = [], []
    for i in range(len(q)):
        match = (gl == ql[i])
        order = sorted(range(len(g)), key=lambda j: (-sims[i, j], not match[j]))
        pos = [p for p, j in enumerate(order) if match[j]]
        ap = sum((((k / pos[k]) if pos[k] else 1.0) + (k + 1) / (pos[k] + 1)) / (2 * len(pos)) for k in range(len(pos)))
        firsts.append(pos[0])
        aps.append(ap)
    return {**{f"recall@{k}": np.mean(np.array(firsts) < k) for k in ks}, "AP": np.mean(aps)}


def test_cli_labelled_recall_and_ap_with_distractors(tmp_path):
    rng = np.random.default_rng(5)
    centres = rng.integers(-2, 3, (12, 5))
    gl = np.repeat(np.arange(12), 3) + 100
    g = (centres[gl - 100] + rng.integers(-1, 2, (gl.size, 5))) / 4.0
    ql = rng.integers(0, 12, 40) + 100
    q = (centres[ql - 100] + rng.integers(-2, 3, (40, 5))) / 4.0
    x = rng.integers(-2, 3, (15, 5)) / 4.0
    for name, arr in dict(q=q.astype(np.float32), g=g.astype(np.float32), x=x.astype(np.float32), ql=ql,
                          gl=gl).items():
        np.save(tmp_path / f"{name}.npy", arr)
    out = tmp_path / "m.json"
    r = _run_cli("--query", str(tmp_path / "q.npy"), "--database", str(tmp_path / "g.npy"),
                 "--distractors", str(tmp_path / "x.npy"), "--query_labels", str(tmp_path / "ql.npy"),
                 "--database_labels", str(tmp_path / "gl.npy"), "--ks", "1,3,10", "--block_size", "7",
                 "--output", str(out), "--top_k_plot", str(tmp_path / "curve.png"),
                 "--compare_dataset", "university1652", "--compare_task", "drone_to_satellite",
                 "--compare_model", "cvm_net_i", "--comparison_md", str(tmp_path / "t.md"))
    assert r.returncode == 0, r.stderr
    m = json.loads(out.read_text())
    ref = _ref_labelled(q.astype(np.float32), np.concatenate([g, x]).astype(np.float32), ql,
                        np.concatenate([gl, -np.ones(15, int)]), (1, 3, 10))
    for key, val in ref.items():
        assert m[key] == pytest.approx(val, abs=1e-12), key
    assert (m["num_query"], m["num_gallery"], m["num_distractors"]) == (40, 51, 15)
    assert _png_size(tmp_path / "curve.png") == (800, 600)
    table = (tmp_path / "t.md").read_text()
    assert f"| {100 * m['AP']:.2f} |" in table and "| 52.39 |" in table and "| 57.44 |" in table
    assert "satellite_to_drone" not in table


@pytest.mark.parametrize("case, message", [
    ("qlen", "--query_labels"),
    ("glen", "--database_labels"),
    ("one", "must be given together"),
    ("nomatch", "have no true match"),
])
def test_cli_labelled_errors_without_output(tmp_path, case, message):
    rng = np.random.default_rng(6)
    np.save(tmp_path / "q.npy", rng.standard_normal((6, 4)).astype(np.float32))
    np.save(tmp_path / "g.npy", rng.standard_normal((8, 4)).astype(np.float32))
    ql = np.array([0, 1, 2, 0, 1, 2] if case != "nomatch" else [0, 1, 2, 0, 1, 9])
    np.save(tmp_path / "ql.npy", ql[:5] if case == "qlen" else ql)
    gl = np.array([0, 1, 2, 3, 0, 1, 2, -1])
    np.save(tmp_path / "gl.npy", gl[:7] if case == "glen" else gl)
    args = ["--query", str(tmp_path / "q.npy"), "--database", str(tmp_path / "g.npy"),
            "--query_labels", str(tmp_path / "ql.npy"), "--output", str(tmp_path / "m.json")]
    if case != "one":
        args += ["--database_labels", str(tmp_path / "gl.npy")]
    r = _run_cli(*args)
    assert r.returncode != 0
    assert message in r.stderr, r.stderr
    assert r.stderr.strip().startswith("error: ") and "\n" not in r.stderr.strip(), r.stderr  # no TF banner
    assert not (tmp_path / "m.json").exists()
