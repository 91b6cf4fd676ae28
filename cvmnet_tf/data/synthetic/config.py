"""What every synthetic writer shares: the world's geometry (:class:`WorldConfig`), one
generated :class:`Pair`, and the seeding scheme (every image is a function of
(seed, stream, split, region, index) only, so any number of worker processes writes the
same bytes)."""
from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["WorldConfig", "GROUND_SUNS", "Pair", "STREAMS", "SPLIT_STREAMS", "seed_sequence", "region_origin"]

#: Seed stream of each writer (a new writer takes the next free number).
STREAMS = {"cvusa": 1, "cvact": 2, "vohays": 3, "map": 4, "university1652": 5, "vigor": 6}
#: Seed stream of each split inside a writer.
SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}


#: How the ground views of WorldConfig.ground_sun are lit.
GROUND_SUNS = ("per_view", "map")


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """The world's geometry and appearance knobs (metres unless noted).

    tile_extent_m: ground side length of one satellite tile.
    region_m: side of one generated region (a fresh map every pairs_per_region pairs).
    metres_per_pixel: map resolution; None -> min(0.6, 1.5 * tile_extent_m / satellite side).
    min_spacing_m: minimum distance between two camera positions of a region.
    camera_height_m, max_distance_m: ground camera geometry.
    pairs_per_region: at most this many pairs per region map.
    ground_strength, satellite_strength: photometric jitter scale (0 = clean render).
    ground_palette: the street-level colours (``world.GROUND_PALETTES``): "satellite"
        (world v2, default: grass, roads, water, markings, tree crowns and fields keep their
        satellite colours at street level, as in real photos, under independent per-view
        illumination changes; walls have a palette of their own, roofs are seen only from
        above) or "street" (world v1: every class in a street palette of its own).
    sun_azimuth_range_deg: (lo, hi) degrees: the range of a region's sun azimuth, i.e. of
        its satellite shadows (v2 default (0, 360): shadows carry no north cue, so a tile
        turned by quarter turns -- the "aligned" augmentation -- is an equally likely world;
        v1: (120, 240), southern skies).
    ground_sun: how the ground views' facades are lit: "per_view" (v2 default: each view
        gets its own sun azimuth, uniform in 0..360 degrees: the street view and the
        satellite image were taken at other times, as in real data, so the sun is no cue
        the two views share) or "map" (v1: the region's sun, the one of the tile's shadows).
    tile_offset_m: the tile's centre lies up to this far from the camera (uniform in a disc,
        drawn per pair; 0 = at the camera, as CVUSA). The pair's easting / northing stay the
        camera's. A map tiled at stride s has its nearest tile centre up to s / sqrt(2) from
        a camera.
    tile_offset_splits: the splits whose tiles get that offset (default all; ``("train",)``:
        off-centre training tiles, validated on centred tiles as CVUSA's; ``--synthetic_tile_offset_m``).

    Nothing here is a label shared by the two views of a place: what a ground view and its
    tile share is the place's geometry and its surfaces' fixed class colours
    (``tests/test_synthetic_no_shared_label.py``).
    """

    tile_extent_m: float = 100.0
    region_m: float = 480.0
    metres_per_pixel: float | None = None
    min_spacing_m: float = 25.0
    camera_height_m: float = 2.0
    max_distance_m: float = 80.0
    pairs_per_region: int = 150
    ground_strength: float = 1.0
    satellite_strength: float = 1.0
    ground_palette: str = "satellite"
    sun_azimuth_range_deg: tuple = (0.0, 360.0)
    ground_sun: str = "per_view"
    tile_offset_m: float = 0.0
    tile_offset_splits: tuple = ("train", "val", "test")

    def __post_init__(self):
        from cvmnet_tf.data.synthetic.world import GROUND_PALETTES

        if self.ground_palette not in GROUND_PALETTES:
            raise ValueError(f"WorldConfig: ground_palette={self.ground_palette!r} must be one of {GROUND_PALETTES}")
        if self.ground_sun not in GROUND_SUNS:
            raise ValueError(f"WorldConfig: ground_sun={self.ground_sun!r} must be one of {GROUND_SUNS}")
        rng = tuple(float(v) for v in self.sun_azimuth_range_deg)
        if len(rng) != 2 or not rng[0] <= rng[1]:
            raise ValueError(f"WorldConfig: sun_azimuth_range_deg={self.sun_azimuth_range_deg!r} must be (lo, hi), "
                             "lo <= hi, degrees")
        object.__setattr__(self, "sun_azimuth_range_deg", rng)
        if not self.tile_offset_m >= 0:
            raise ValueError(f"WorldConfig: tile_offset_m={self.tile_offset_m!r} must be >= 0")
        splits = tuple(str(v) for v in self.tile_offset_splits)
        if not set(splits) <= set(SPLIT_STREAMS):
            raise ValueError(f"WorldConfig: tile_offset_splits={self.tile_offset_splits!r} must name splits of "
                             f"{tuple(SPLIT_STREAMS)}")
        object.__setattr__(self, "tile_offset_splits", splits)

    def for_split(self, split: str) -> "WorldConfig":
        """The config the pairs of ``split`` ("train", "val", "test") are drawn with: this one,
        with tile_offset_m = 0 when the split is not in tile_offset_splits."""
        if split in self.tile_offset_splits or self.tile_offset_m == 0:
            return self
        return dataclasses.replace(self, tile_offset_m=0.0)

    def map_resolution(self, satellite_side: int) -> float:
        if self.metres_per_pixel is not None:
            return float(self.metres_per_pixel)
        return min(0.6, 1.5 * self.tile_extent_m / satellite_side)

    def map_options(self) -> dict:
        """The keyword arguments of ``world.generate_map`` this config sets."""
        return {"ground_palette": self.ground_palette, "sun_azimuth_range_deg": self.sun_azimuth_range_deg}

    def ground_sun_azimuth(self, rng: np.random.Generator):
        """The sun azimuth lighting one ground view: None (the map's) for ground_sun="map",
        else a fresh uniform draw in [0, 360) degrees from ``rng``."""
        return None if self.ground_sun == "map" else float(rng.uniform(0.0, 360.0))


@dataclasses.dataclass
class Pair:
    """One generated pair. satellite uint8 (S, S, 3); ground uint8 (H, W, 3);
    easting/northing metres of the camera (the tile centre unless tile_offset_m); heading_deg
    for crops; with labels: ground_labels uint8 (H, W) (SKY = 255) and satellite_labels
    uint8 (S, S) class ids."""

    satellite: np.ndarray
    ground: np.ndarray
    easting: float
    northing: float
    heading_deg: float | None = None
    ground_labels: np.ndarray | None = None
    satellite_labels: np.ndarray | None = None


def seed_sequence(*parts) -> np.random.SeedSequence:
    """The numpy SeedSequence of integer ``parts`` (seed, stream, split, region, index...)."""
    return np.random.SeedSequence([int(p) for p in parts])


def region_origin(stream: int, split: int, region: int):
    """UTM-like origin of a region: regions lie 10 km apart, never overlapping."""
    k = (stream * 4 + split) * 1000 + region
    return 300000.0 + (k % 40) * 10000.0, 4000000.0 + (k // 40) * 10000.0
