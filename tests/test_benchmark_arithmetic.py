"""The multiply-add count behind benchmarks/train_throughput.py's arithmetic ceiling.

The count is checked against a hand formula of the VGG16 convolutions (+ NetVLAD and the
FC layer), written here independently of the Keras graph walk.
"""
import math
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "benchmarks"))

from cvmnet_tf import models  # noqa: E402

# VGG16 conv layers up to conv5_3: (name, in channels, out channels, pools before it)
VGG16 = [("conv1_1", 3, 64, 0), ("conv1_2", 64, 64, 0),
         ("conv2_1", 64, 128, 1), ("conv2_2", 128, 128, 1),
         ("conv3_1", 128, 256, 2), ("conv3_2", 256, 256, 2), ("conv3_3", 256, 256, 2),
         ("conv4_1", 256, 512, 3), ("conv4_2", 512, 512, 3), ("conv4_3", 512, 512, 3),
         ("conv5_1", 512, 512, 4), ("conv5_2", 512, 512, 4), ("conv5_3", 512, 512, 4)]
FROZEN = {"conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3"}


def _branch(h, w):
    """(forward, backward) multiply-adds of one VGG16 branch + its NetVLAD (K=64)."""
    fwd = bwd = 0
    for name, cin, cout, pools in VGG16:
        hh, ww = h, w
        for _ in range(pools):               # 'same' 2x2 pooling: ceil
            hh, ww = math.ceil(hh / 2), math.ceil(ww / 2)
        macs = hh * ww * 9 * cin * cout
        fwd += macs
        if name not in FROZEN:
            bwd += macs                       # weight gradient
            if name != "conv4_1":             # input gradient (none into frozen conv3_3)
                bwd += macs
    n = math.ceil(h / 16) * math.ceil(w / 16)
    vlad = 2 * n * 64 * 512
    return fwd + vlad, bwd + 2 * vlad, n


def test_step_macs_matches_hand_formula():
    from train_throughput import step_macs

    sat, grd = (64, 64), (32, 128)
    model = models.build_model("cvm_net_i", satellite_shape=sat, ground_shape=grd)
    got = step_macs(model)
    fs, bs, _ = _branch(*sat)
    fg, bg, _ = _branch(*grd)
    fc = 64 * 512 * 4096                      # dim_reduction, applied to each branch
    assert got["forward"] == fs + fg + 2 * fc
    assert got["backward"] == bs + bg + 2 * 2 * fc
    assert got["total"] == got["forward"] + got["backward"]


def test_vgg16_224_forward_is_the_known_15_3_gmac():
    """Sanity: VGG16 conv1_1..conv5_3 at 224x224 is the textbook 15.35 GMAC."""
    fwd, _, n = _branch(224, 224)
    assert n == 14 * 14
    conv = fwd - 2 * n * 64 * 512
    assert conv == pytest.approx(15.35e9, rel=2e-3)
