"""The "aligned" pair augmentation turns / mirrors the tile and the north-aligned panorama
together: checked against the synthetic world's flat-ground polar re-projection (the panorama
a tile implies) and inside the training pipeline."""
import numpy as np
import pytest
import tensorflow as tf

from cvmnet_tf.data.augmentation import AUGMENTATIONS, aligned_augment_params, aligned_pair_augment
from cvmnet_tf.data.synthetic import polar_warp

EPS32 = np.finfo(np.float32).eps


@pytest.mark.parametrize("k", [0, 1, 2, 3])
@pytest.mark.parametrize("mirror", [0, 1])
def test_turned_tile_implies_the_shifted_panorama(k, mirror):
    rng = np.random.default_rng(10 * k + mirror)
    tile = rng.uniform(0, 255, (48, 48, 3)).astype(np.float32)
    size = (24, 96)
    pano = np.nan_to_num(polar_warp(tile, size, extent_m=60.0), nan=-1.0)
    sat2, pano2 = aligned_pair_augment(tf.constant(tile), tf.constant(pano), k, mirror)
    expect = np.nan_to_num(polar_warp(sat2.numpy(), size, extent_m=60.0), nan=-1.0)
    # the same bilinear samples up to the float64 rounding of sin / cos of azimuths 90 degrees
    # apart, then one float32 rounding: a few eps32 of the largest value (255)
    np.testing.assert_allclose(pano2.numpy(), expect, rtol=0, atol=8 * EPS32 * 255)
    if k or mirror:   # the released augmentation (the tile turned alone) breaks it
        turned = np.nan_to_num(polar_warp(np.ascontiguousarray(np.rot90(tile, k or 2)), size, extent_m=60.0),
                               nan=-1.0)
        assert np.abs(turned - pano).mean() > 20


def test_needs_a_width_multiple_of_four():
    with pytest.raises(ValueError, match="multiple of 4"):
        aligned_pair_augment(tf.zeros((8, 8, 3)), tf.zeros((4, 30, 3)), 1, 0)


def test_params_uniform_and_reproducible():
    seeds = [tf.constant([7, i], tf.int64) for i in range(400)]
    draws = np.array([[int(v) for v in aligned_augment_params(s)] for s in seeds])
    assert set(draws[:, 0]) == {0, 1, 2, 3} and set(draws[:, 1]) == {0, 1}
    counts = np.bincount(draws[:, 0], minlength=4)
    assert counts.min() > 400 / 4 - 4 * np.sqrt(400 * 3 / 16), counts   # 4 sigma of a binomial
    assert [int(v) for v in aligned_augment_params(seeds[5])] == list(draws[5])


def test_pipeline_applies_the_same_turn_to_both_views(tmp_path):
    from PIL import Image

    from cvmnet_tf.data import ImageSizes, PairSplit, make_pair_dataset

    rng = np.random.default_rng(0)
    sats, grds = [], []
    for i in range(8):
        tile = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        pano = rng.integers(0, 256, (16, 64, 3), dtype=np.uint8)
        for img, name, paths in ((tile, f"s{i}.png", sats), (pano, f"g{i}.png", grds)):
            Image.fromarray(img).save(tmp_path / name)
            paths.append(str(tmp_path / name))
    split = PairSplit(satellite_paths=sats, ground_paths=grds, dataset="cvusa", name="t", source=str(tmp_path))
    sizes = ImageSizes(satellite=(32, 32), ground=(16, 64))
    plain = next(iter(make_pair_dataset(split, sizes, training=False, batch_size=8)))
    batch = next(iter(make_pair_dataset(split, sizes, training=True, batch_size=8, seed=3,
                                        augmentation="aligned")))
    turned = set()
    for b in range(8):
        i = int(batch["index"][b])
        found = [(k, m) for k in range(4) for m in range(2)
                 if np.array_equal(aligned_pair_augment(plain["satellite"][i], plain["ground"][i], k, m)[0].numpy(),
                                   batch["satellite"][b].numpy())]
        assert len(found) == 1, found
        _, g = aligned_pair_augment(plain["satellite"][i], plain["ground"][i], *found[0])
        np.testing.assert_array_equal(g.numpy(), batch["ground"][b].numpy())
        turned.add(found[0])
    assert len(turned) >= 3        # several different draws in one batch
    none = next(iter(make_pair_dataset(split, sizes, training=True, batch_size=8, seed=3, augmentation="none")))
    for b in range(8):
        i = int(none["index"][b])
        np.testing.assert_array_equal(none["satellite"][b].numpy(), plain["satellite"][i].numpy())
    assert AUGMENTATIONS == ("released", "aligned", "none")
    with pytest.raises(ValueError, match="augmentation"):
        make_pair_dataset(split, sizes, training=True, batch_size=4, augmentation="rotate")
    with pytest.raises(ValueError, match="multiple of 4"):
        make_pair_dataset(split, ImageSizes(satellite=(32, 32), ground=(16, 62)), training=True, batch_size=4,
                          augmentation="aligned")
