"""What every synthetic writer shares: the world's geometry (:class:`WorldConfig`), one
generated :class:`Pair`, and the seeding scheme (every image is a function of
(seed, stream, split, region, index) only, so any number of worker processes writes the
same bytes)."""
from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["WorldConfig", "Pair", "STREAMS", "SPLIT_STREAMS", "seed_sequence", "region_origin"]

#: Seed stream of each writer (a new writer takes the next free number).
STREAMS = {"cvusa": 1, "cvact": 2, "vohays": 3, "map": 4, "university1652": 5}
#: Seed stream of each split inside a writer.
SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2}


@dataclasses.dataclass(frozen=True)
class WorldConfig:
    """Geometry shared by tiles and panoramas (metres unless noted).

    tile_extent_m: ground side length of one satellite tile.
    region_m: side of one generated region (a fresh map every pairs_per_region pairs).
    metres_per_pixel: map resolution; None -> min(0.6, 1.5 * tile_extent_m / satellite side).
    min_spacing_m: minimum distance between two camera positions of a region.
    camera_height_m, max_distance_m: ground camera geometry.
    pairs_per_region: at most this many pairs per region map.
    ground_strength, satellite_strength: photometric jitter scale (0 = clean render).
    location_tint: strength of a per-location colour cast (soil, season, vegetation)
        that both views of a place share: each RGB channel of the ground surface and of
        the tile is scaled by 1 + location_tint * u, u ~ U(-1, 1) drawn per pair (0 = off).
        It gives a small network a cue it can learn within minutes on a CPU (``--synthetic``
        training uses it, see the dataset registry), on top of the geometric ones.
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
    location_tint: float = 0.0

    def map_resolution(self, satellite_side: int) -> float:
        if self.metres_per_pixel is not None:
            return float(self.metres_per_pixel)
        return min(0.6, 1.5 * self.tile_extent_m / satellite_side)


@dataclasses.dataclass
class Pair:
    """One generated pair. satellite uint8 (S, S, 3); ground uint8 (H, W, 3);
    easting/northing metres of the camera (= tile centre); heading_deg for crops."""

    satellite: np.ndarray
    ground: np.ndarray
    easting: float
    northing: float
    heading_deg: float | None = None
    ground_labels: np.ndarray | None = None


def seed_sequence(*parts) -> np.random.SeedSequence:
    """The numpy SeedSequence of integer ``parts`` (seed, stream, split, region, index...)."""
    return np.random.SeedSequence([int(p) for p in parts])


def region_origin(stream: int, split: int, region: int):
    """UTM-like origin of a region: regions lie 10 km apart, never overlapping."""
    k = (stream * 4 + split) * 1000 + region
    return 300000.0 + (k % 40) * 10000.0, 4000000.0 + (k // 40) * 10000.0
