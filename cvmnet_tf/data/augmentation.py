"""Training augmentations of a (satellite tile, ground panorama) pair.

:data:`AUGMENTATIONS` are the values of ``make_pair_dataset(augmentation=...)`` and of the
training option ``--augmentation``:

- ``"released"``: the released code's satellite random crop + randint(0, 4) quarter turns
  of the tile alone (the panorama is left as it is; see
  :mod:`cvmnet_tf.data.preprocessing`). For north-aligned panoramas (CVUSA, CVACT) this
  turns the tile against a panorama that stays put, i.e. it breaks the azimuth
  correspondence between the two views; for views from every heading (University-1652's
  drone images, Vo & Hays' crops) it is the right augmentation.
- ``"aligned"``: the whole place turned by 0..3 quarter turns and mirrored or not, the tile
  AND the north-aligned panorama together (:func:`aligned_pair_augment`), no crop: the
  azimuth correspondence is kept, so a network can learn it.
- ``"none"``: no augmentation (the evaluation preprocessing).

Importing this module is light (TensorFlow is imported on first use).
"""
from __future__ import annotations

__all__ = ["AUGMENTATIONS", "aligned_augment_params", "aligned_pair_augment"]

AUGMENTATIONS = ("released", "aligned", "none")


def aligned_augment_params(seed=None):
    """Draw the "aligned" pair augmentation: int32 scalars (k quarter turns 0..3, mirror 0/1),
    each uniform. ``seed``: (2,) int tensor (stateless, reproducible) or None (global RNG)."""
    import tensorflow as tf

    if seed is None:
        return (tf.random.uniform([], 0, 4, dtype=tf.int32), tf.random.uniform([], 0, 2, dtype=tf.int32))
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=2)
    return (tf.random.stateless_uniform([], seeds[0], 0, 4, dtype=tf.int32),
            tf.random.stateless_uniform([], seeds[1], 0, 2, dtype=tf.int32))


def aligned_pair_augment(satellite, ground, k, mirror):
    """Turn / mirror the world of one pair, keeping a north-aligned panorama aligned with its tile.

    ``satellite`` (S, S, C) north up; ``ground`` (H, W, C) a 360-degree panorama whose
    column j looks at azimuth 2 pi ((j + 0.5) / W - 1/2) clockwise from north (north at the
    centre column, as CVUSA and the synthetic world), W a multiple of 4. Turning the tile by
    ``k`` quarter turns counter-clockwise brings what lay east (azimuth +90 degrees) to the
    north, so the panorama's column j must then show what its column j + k W / 4 showed:
    a circular shift by -k W / 4 columns. ``mirror`` (0/1) then flips the tile left-right
    (east <-> west: azimuth -> -azimuth) and reverses the panorama's columns (j <-> W - 1 - j).
    Any dtype (pixels or network input). Returns (satellite, ground).
    """
    import tensorflow as tf

    from cvmnet_tf.data.preprocessing import rot90

    w = ground.shape[1]
    if w is None or w % 4:
        raise ValueError(f"aligned_pair_augment: the panorama width must be a static multiple of 4, got {w}")
    satellite = rot90(satellite, k)
    ground = tf.roll(ground, shift=-tf.cast(k, tf.int32) * (w // 4), axis=1)
    flip = tf.equal(tf.cast(mirror, tf.int32), 1)
    satellite = tf.cond(flip, lambda: tf.reverse(satellite, [1]), lambda: satellite)
    ground = tf.cond(flip, lambda: tf.reverse(ground, [1]), lambda: ground)
    return satellite, ground
