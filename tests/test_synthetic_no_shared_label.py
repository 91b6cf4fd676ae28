"""The synthetic world carries no per-pair or per-place label shared by the two views.

What a ground view and its satellite tile may share is the place itself: which classes lie
where, and each class's fixed colour. A shared label is anything else that co-varies between
the two views of a place, such as the per-pair colour cast the world used to apply to both
views (``location_tint``, removed), or a per-region palette. The check: for every class drawn
in one fixed colour (grass, road, tree crowns), the chromaticity of that class's pixels
(log R/G and log B/G of their mean colour) in the ground view and in the tile varies from
place to place only through independent per-view changes (illumination, colour jitter,
noise, haze, shadows), so across places the two views' values must be uncorrelated. Class
masks come from the renderer's labels, so the class composition (the geometry) is factored
out. The same statistic on pairs given a shared cast of a third of the old strength is
strongly correlated: the check detects a label of that kind.
"""
import numpy as np
import pytest

from cvmnet_tf.data.synthetic import WorldConfig, iter_pairs
from cvmnet_tf.data.synthetic.world import GRASS, ROAD, SKY, TREE

NUM_PAIRS = 300
MIN_PIXELS = 20
# Null hypothesis (no shared label): |Pearson r| of n >= 150 independent pairs has a standard
# deviation of about 1 / sqrt(n - 3) <= 0.082; 0.25 is 3 standard deviations.
BOUND = 0.25

WORLDS = {
    "v2 (the default: surfaces keep their colours, per-view sun)": WorldConfig(),
    "v1 (street palette, the map's sun)": WorldConfig(ground_palette="street", ground_sun="map",
                                                     sun_azimuth_range_deg=(120.0, 240.0)),
}


def _chroma(pixels):
    m = pixels.astype(np.float64).mean(0) + 1.0
    return np.log(m[[0, 2]] / m[1])


def _pairs(config, cast=0.0, num=NUM_PAIRS, seed=7):
    """(ground, ground labels, tile, tile labels) per pair; ``cast`` > 0 applies a per-pair
    colour cast 1 + cast * U(-1, 1) per channel to both views (the positive control)."""
    rng = np.random.default_rng(99)
    for p in iter_pairs(num, seed=seed, satellite_size=(64, 64), ground_size=(32, 128), config=config,
                        with_labels=True):
        g, s = p.ground.astype(np.float64), p.satellite.astype(np.float64)
        if cast:
            gain = 1.0 + cast * rng.uniform(-1, 1, 3)
            g = np.where((p.ground_labels != SKY)[..., None], np.minimum(g * gain, 255), g)
            s = np.minimum(s * gain, 255)
        yield g, p.ground_labels, s, p.satellite_labels


def class_colour_correlations(config, cast=0.0):
    """{class: (pairs used, [r(log R/G), r(log B/G)])} between the ground and satellite views."""
    values = {c: ([], []) for c in (GRASS, ROAD, TREE)}
    for g, g_lab, s, s_lab in _pairs(config, cast):
        for c, (gv, sv) in values.items():
            gm, sm = g_lab == c, s_lab == c
            if gm.sum() >= MIN_PIXELS and sm.sum() >= MIN_PIXELS:
                gv.append(_chroma(g[gm]))
                sv.append(_chroma(s[sm]))
    out = {}
    for c, (gv, sv) in values.items():
        gv, sv = np.array(gv), np.array(sv)
        out[c] = (len(gv), [float(np.corrcoef(gv[:, k], sv[:, k])[0, 1]) for k in range(2)])
    return out


@pytest.mark.parametrize("name", list(WORLDS))
def test_views_share_no_colour_label(name):
    corr = class_colour_correlations(WORLDS[name])
    for c, (n, rs) in corr.items():
        assert n >= 150, (name, c, n)
        assert max(abs(r) for r in rs) < BOUND, (name, c, n, rs)


def test_the_check_detects_a_shared_colour_cast():
    """A per-pair cast of 0.1 on both views (the --synthetic default used to be 0.35): far
    above the bound for every class (at least 2x on average)."""
    corr = class_colour_correlations(WorldConfig(), cast=0.1)
    for c, (n, rs) in corr.items():
        assert max(rs) > BOUND, (c, n, rs)
    assert np.mean([max(rs) for _, rs in corr.values()]) > 2 * BOUND, corr


def test_training_worlds_have_no_cast():
    """Every --synthetic writer gets the default world (no knob of a shared label exists)."""
    import dataclasses

    from cvmnet_tf.data.registry import DATASETS

    assert "location_tint" not in {f.name for f in dataclasses.fields(WorldConfig)}
    for spec in DATASETS.values():
        if spec.synthetic is not None:
            assert not any("tint" in f.name for f in dataclasses.fields(spec.synthetic))
