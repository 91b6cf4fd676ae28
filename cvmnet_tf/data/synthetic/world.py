"""Procedural, geo-referenced top-down world (the "satellite map" of the synthetic data).

A :class:`SyntheticMap` is a north-up raster of a small made-up region: roads with lane
markings, buildings (rotated rectangles with gabled roofs and sun shadows), fields, trees
and water. Next to the satellite appearance it stores what the ground camera needs:
per-pixel object height (metres), class labels, and a second colour layer
(``facade``) holding the colours seen from street level: walls instead of roofs, and
either a palette of its own for every class (``ground_palette="street"``, world v1) or the
satellite colours of the surfaces (``"satellite"``: grass, roads, water, markings, tree
crowns and fields keep their colours between the two views, as in real photos; the two
views still differ by independent per-view illumination, shading, grain and jitter).
Either way a colour is a fixed function of the class / palette entry, never of the place.

Coordinates: pixel ``(x, y)`` = (column, row), pixel centres at integer values, row 0
is the northern edge. UTM-like metres: ``easting = origin_easting + (x + 0.5) * mpp``,
``northing = origin_northing - (y + 0.5) * mpp`` (origin = the north-west corner).
Everything is numpy + pillow, deterministic from the seed.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from PIL import Image

# Class ids of ``SyntheticMap.labels`` (and of rendered ground views; SKY only there).
GRASS, ROAD, BUILDING, FIELD, TREE, WATER, MARKING = 0, 1, 2, 3, 4, 5, 6
SKY = 255
CLASS_NAMES = {GRASS: "grass", ROAD: "road", BUILDING: "building", FIELD: "field",
               TREE: "tree", WATER: "water", MARKING: "marking", SKY: "sky"}

# Satellite palette (RGB) and the street-level palette (deliberately different).
_SAT = {GRASS: (96, 118, 72), ROAD: (112, 112, 116), WATER: (46, 78, 104),
        MARKING: (225, 225, 215), TREE: (38, 74, 40)}
_GRD = {GRASS: (78, 150, 62), ROAD: (72, 72, 78), WATER: (80, 130, 165),
        MARKING: (240, 240, 230), TREE: (52, 112, 46)}
_ROOFS = np.array([(150, 78, 60), (168, 168, 172), (88, 88, 100), (202, 190, 168),
                   (118, 62, 48), (70, 96, 120)], np.float32)
_WALLS = np.array([(206, 176, 140), (186, 94, 72), (222, 222, 212), (150, 150, 164),
                   (230, 200, 120), (120, 140, 170)], np.float32)
_FIELDS_SAT = np.array([(164, 150, 92), (104, 132, 62), (132, 102, 72), (150, 160, 80)],
                       np.float32)
_FIELDS_GRD = np.array([(200, 176, 86), (96, 160, 52), (150, 110, 70), (176, 190, 70)],
                       np.float32)


@dataclasses.dataclass(frozen=True)
class WorldStyle:
    """Knobs of one region (all lengths in metres, densities per hectare)."""

    road_spacing_m: float = 110.0
    buildings_per_ha: float = 10.0
    trees_per_ha: float = 14.0
    field_fraction: float = 0.3
    water_fraction: float = 0.06
    max_building_height_m: float = 18.0

    @staticmethod
    def random(rng: np.random.Generator) -> "WorldStyle":
        """A random style between rural (sparse, fields) and urban (dense, tall)."""
        u = float(rng.uniform())
        return WorldStyle(
            road_spacing_m=float(230 - 140 * u + rng.uniform(-15, 15)),
            buildings_per_ha=float(2 + 18 * u),
            trees_per_ha=float(rng.uniform(6, 26)),
            field_fraction=float(np.clip(0.55 - 0.6 * u + rng.uniform(-0.1, 0.1), 0, 0.6)),
            water_fraction=float(rng.choice([0.0, 0.04, 0.1])),
            max_building_height_m=float(8 + 22 * u))


@dataclasses.dataclass
class SyntheticMap:
    """A geo-referenced synthetic region.

    Attributes:
      satellite: (H, W, 3) uint8 top-down RGB, north up.
      facade: (H, W, 3) uint8 colour of each pixel as seen from the street (other palette).
      height: (H, W) float32 object height above ground, metres (0 on flat ground).
      labels: (H, W) uint8 class ids (GRASS, ROAD, BUILDING, FIELD, TREE, WATER, MARKING).
      metres_per_pixel: ground sampling distance, metres.
      origin_easting, origin_northing: metres, north-west corner of pixel (0, 0).
      sun_azimuth_deg: direction towards the sun, clockwise from north.
      seed: what generated it.
    """

    satellite: np.ndarray
    facade: np.ndarray
    height: np.ndarray
    labels: np.ndarray
    metres_per_pixel: float
    origin_easting: float
    origin_northing: float
    sun_azimuth_deg: float
    seed: object = None
    layer_cache: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)  # derived layers (renderers)

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return self.labels.shape

    def pixel_to_utm(self, x, y):
        """Pixel (column, row) -> (easting, northing) in metres (arrays broadcast)."""
        mpp = self.metres_per_pixel
        return (self.origin_easting + (np.asarray(x) + 0.5) * mpp,
                self.origin_northing - (np.asarray(y) + 0.5) * mpp)

    def utm_to_pixel(self, easting, northing):
        """(easting, northing) metres -> pixel (column, row) floats."""
        mpp = self.metres_per_pixel
        return ((np.asarray(easting) - self.origin_easting) / mpp - 0.5,
                (self.origin_northing - np.asarray(northing)) / mpp - 0.5)

    def bounds(self) -> dict:
        """JSON-able geo-reference: pixel size (m), origin and extent (metres)."""
        h, w = self.shape
        mpp = self.metres_per_pixel
        return {"metres_per_pixel": float(mpp), "width_px": int(w), "height_px": int(h),
                "origin_easting": float(self.origin_easting),
                "origin_northing": float(self.origin_northing),
                "min_easting": float(self.origin_easting),
                "max_easting": float(self.origin_easting + w * mpp),
                "min_northing": float(self.origin_northing - h * mpp),
                "max_northing": float(self.origin_northing),
                "origin": "north-west corner of pixel (0, 0); x = column (east), "
                          "y = row (south)"}

    # float copies used by the renderer, built once
    def float_layers(self):
        """(facade float32 (H*W, 3), height float32 (H*W,), labels uint8 (H*W,))."""
        if "flat" not in self.layer_cache:
            self.layer_cache["flat"] = (self.facade.reshape(-1, 3).astype(np.float32),
                                   self.height.reshape(-1), self.labels.reshape(-1))
        return self.layer_cache["flat"]

    def pil_satellite(self) -> Image.Image:
        """The satellite layer as a cached PIL image (for tile cutting)."""
        if "pil" not in self.layer_cache:
            self.layer_cache["pil"] = Image.fromarray(self.satellite, "RGB")
        return self.layer_cache["pil"]


_NOISE_BANK = []
_NOISE_CHUNK = 1 << 20


def normal_noise(rng: np.random.Generator, shape) -> np.ndarray:
    """Standard normal float32 noise of `shape` (deterministic given rng's state): a random
    window of a fixed bank of 2**21 values; shapes of more than 2**20 values are pieced
    together from 2**20-value windows at independent random offsets. May be a read-only
    view: do not modify it in place."""
    n = int(np.prod(shape))
    if not _NOISE_BANK:
        bank = np.random.default_rng(20180618).standard_normal(1 << 21, np.float32)
        bank.flags.writeable = False
        _NOISE_BANK.append(bank)
    bank = _NOISE_BANK[0]
    if n <= _NOISE_CHUNK:
        o = int(rng.integers(0, bank.size - n))
        return bank[o:o + n].reshape(shape)
    out = np.empty(n, np.float32)
    offs = rng.integers(0, bank.size - _NOISE_CHUNK, -(-n // _NOISE_CHUNK))
    for i, o in enumerate(offs):
        piece = out[i * _NOISE_CHUNK:(i + 1) * _NOISE_CHUNK]
        piece[:] = bank[o:o + piece.size]
    return out.reshape(shape)


def _smooth_noise(rng: np.random.Generator, shape, cell_px: float) -> np.ndarray:
    """(H, W) float32 smooth random field, roughly zero mean / unit std, feature size cell_px."""
    h, w = shape
    cell = max(2, int(round(cell_px)))
    gh, gw = h // cell + 4, w // cell + 4
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    big = Image.fromarray(coarse, "F").resize((gw * cell, gh * cell), Image.BICUBIC)
    out = np.asarray(big, np.float32)[2 * cell:2 * cell + h, 2 * cell:2 * cell + w]
    return out / max(float(out.std()), 1e-6)


# palette indices (rows of _PAL_SAT / _PAL_GRD)
_P_GRASS, _P_ROAD, _P_WATER, _P_MARKING, _P_TREE = 0, 1, 2, 3, 4
_P_FIELD = 5
_P_ROOF = _P_FIELD + len(_FIELDS_SAT)
_P_RIDGE = _P_ROOF + len(_ROOFS)
_PAL_SAT = np.concatenate([np.array([_SAT[c] for c in (GRASS, ROAD, WATER, MARKING, TREE)],
                                    np.float32), _FIELDS_SAT, _ROOFS, _ROOFS * 0.82])
_PAL_GRD = np.concatenate([np.array([_GRD[c] for c in (GRASS, ROAD, WATER, MARKING, TREE)],
                                    np.float32), _FIELDS_GRD, _WALLS, _WALLS])
# ground_palette="satellite": the surfaces in their satellite colours, walls in the wall palette
# (roofs are seen only from above, walls only from the street)
_PAL_GRD_SHARED = np.concatenate([_PAL_SAT[:_P_ROOF], _WALLS, _WALLS])
#: Street-level palettes of generate_map (see the module docstring).
GROUND_PALETTES = ("street", "satellite")
_BLOCKED = np.zeros(256, bool)
_BLOCKED[[ROAD, MARKING, WATER, BUILDING]] = True


def _road_band(h, w, x0, y0, a, reach_m, mpp):
    """Pixels within reach_m of the line through (x0, y0) px with direction a (radians).

    Returns (iy, ix, across_m, along_m) flat arrays: only a strip around the line is
    touched, so a road costs O(length * reach) instead of O(H * W).
    """
    ca, sa = math.cos(a), math.sin(a)
    if abs(ca) >= abs(sa):     # mostly east-west: one strip of rows per column
        band = int(math.ceil(reach_m / mpp / abs(ca))) + 1
        ix = np.repeat(np.arange(w), 2 * band + 1)
        yc = y0 + (np.arange(w) - x0) * (sa / ca)
        iy = (np.floor(yc)[:, None] + np.arange(-band, band + 1)[None, :]).astype(np.int64).ravel()
    else:
        band = int(math.ceil(reach_m / mpp / abs(sa))) + 1
        iy = np.repeat(np.arange(h), 2 * band + 1)
        xc = x0 + (np.arange(h) - y0) * (ca / sa)
        ix = (np.floor(xc)[:, None] + np.arange(-band, band + 1)[None, :]).astype(np.int64).ravel()
    ok = (iy >= 0) & (iy < h) & (ix >= 0) & (ix < w)
    iy, ix = iy[ok], ix[ok]
    across = (-(ix - x0) * sa + (iy - y0) * ca) * mpp
    along = ((ix - x0) * ca + (iy - y0) * sa) * mpp
    keep = np.abs(across) <= reach_m
    return iy[keep], ix[keep], across[keep].astype(np.float32), along[keep]


def _to_uint8(colour, shade, grain):
    """clip(colour (H, W, 3) * shade (H, W) + grain (H, W)) as uint8, in place."""
    np.multiply(colour, shade[..., None], out=colour)
    np.add(colour, grain[..., None], out=colour)
    np.clip(colour, 0, 255, out=colour)
    return colour.astype(np.uint8)


def _footprints(cx, cy, r, shape, use=None):
    """Pixels of the windows [int(c - r), int(c + r) + 2) around many centres at once.

    Args: cx, cy, r: float (n,) centres (pixels) and half sizes (pixels); shape (H, W);
      use: optional bool (n,) mask of centres to expand.
    Returns: (centre id int64 (m,) ascending, flat pixel index (m,), (x - cx, y - cy)
      float64 (m,) each), clipped to the map.
    """
    h, w = shape
    x0 = np.maximum(0, (cx - r).astype(np.int64))
    x1 = np.minimum(w, (cx + r).astype(np.int64) + 2)
    y0 = np.maximum(0, (cy - r).astype(np.int64))
    y1 = np.minimum(h, (cy + r).astype(np.int64) + 2)
    wx, wy = np.maximum(x1 - x0, 0), np.maximum(y1 - y0, 0)
    cnt = wx * wy
    if use is not None:
        cnt = np.where(use, cnt, 0)
    tid = np.repeat(np.arange(cx.size), cnt)
    local = np.arange(tid.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    ly, lx = np.divmod(local, wx[tid])
    xs, ys = x0[tid] + lx, y0[tid] + ly
    return tid, ys * w + xs, (xs - cx[tid], ys - cy[tid])


@dataclasses.dataclass
class _Canvas:
    """The layers generate_map paints, step by step (all (H, W), row 0 = north)."""

    h: int
    w: int
    mpp: float
    labels: np.ndarray       # uint8 class ids
    cidx: np.ndarray         # uint8 palette index per pixel
    height: np.ndarray       # float32 metres
    shade_sat: np.ndarray    # float32 brightness of the satellite layer
    shade_grd: np.ndarray    # float32 brightness of the street-level layer

    @classmethod
    def empty(cls, h, w, mpp):
        return cls(h, w, mpp, np.full((h, w), GRASS, np.uint8), np.full((h, w), _P_GRASS, np.uint8),
                   np.zeros((h, w), np.float32), np.ones((h, w), np.float32), np.ones((h, w), np.float32))

    @property
    def m2p(self):
        return 1.0 / self.mpp


def _lay_fields(c: _Canvas, rng, style: WorldStyle) -> None:
    """A jittered grid of parcels with their own crop colour and crop rows."""
    h, w, mpp = c.h, c.w, c.mpp
    cell = rng.uniform(40, 90) * c.m2p
    gy, gx = int(h / cell) + 2, int(w / cell) + 2
    parcel = (_P_FIELD + rng.integers(0, len(_FIELDS_SAT), (gy, gx))).astype(np.uint8)
    is_field = rng.uniform(size=(gy, gx)) < style.field_fraction
    off = rng.uniform(0, cell, 2)
    rows = ((np.arange(h) + off[0]) / cell).astype(np.int64)
    cols = ((np.arange(w) + off[1]) / cell).astype(np.int64)
    fmask = is_field[rows[:, None], cols[None, :]]
    c.labels[fmask] = FIELD
    c.cidx[fmask] = parcel[rows[:, None], cols[None, :]][fmask]
    ang = rng.uniform(0, np.pi)
    k_st = np.float32(mpp * 2 * np.pi / 3.0)
    stripes = np.sin(np.arange(w, dtype=np.float32)[None, :] * np.float32(math.cos(ang) * k_st)
                     + np.arange(h, dtype=np.float32)[:, None] * np.float32(math.sin(ang) * k_st))
    c.shade_sat[fmask] += 0.07 * stripes[fmask]


def _lay_water(c: _Canvas, rng, style: WorldStyle) -> None:
    """Thresholded smooth noise."""
    if style.water_fraction > 0:
        wn = _smooth_noise(rng, (c.h, c.w), 120 * c.m2p)
        wmask = wn > np.quantile(wn[::4, ::4], 1 - style.water_fraction)
        c.labels[wmask] = WATER
        c.cidx[wmask] = _P_WATER


def _lay_roads(c: _Canvas, rng, style: WorldStyle):
    """A jittered grid plus a diagonal, each a straight band (computed in a strip).

    Returns (distance to the nearest road edge in metres, direction of that road in
    radians), both float32 (H, W)."""
    h, w = c.h, c.w
    road_dist = np.full((h, w), np.inf, np.float32)
    road_ang = np.zeros((h, w), np.float32)
    spacing = style.road_spacing_m * c.m2p
    roads = []
    for vertical in (True, False):
        extent = w if vertical else h
        pos = rng.uniform(0, spacing)
        while pos < extent:
            a = math.radians(rng.uniform(-8, 8)) + (math.pi / 2 if vertical else 0.0)
            x0, y0 = (pos, h / 2) if vertical else (w / 2, pos)
            roads.append((x0, y0, a, rng.uniform(6, 12)))
            pos += spacing * rng.uniform(0.7, 1.3)
    if rng.uniform() < 0.7:
        roads.append((rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0, np.pi),
                      rng.uniform(8, 14)))
    for x0, y0, a, width_m in roads:
        iy, ix, across, along = _road_band(h, w, x0, y0, a, width_m / 2 + 18.0, c.mpp)
        d = np.abs(across) - width_m / 2
        closer = d < road_dist[iy, ix]
        road_dist[iy[closer], ix[closer]] = d[closer]
        road_ang[iy[closer], ix[closer]] = a
        on = d < 0
        c.labels[iy[on], ix[on]] = ROAD
        c.cidx[iy[on], ix[on]] = _P_ROAD
        mk = (np.abs(across) < 0.25 + 0.5 * c.mpp) & ((along % 9.0) < 4.5)
        c.labels[iy[mk], ix[mk]] = MARKING
        c.cidx[iy[mk], ix[mk]] = _P_MARKING
    return road_dist, road_ang


def _place_buildings(c: _Canvas, rng, style: WorldStyle, road_dist, road_ang, area_ha) -> None:
    """Rotated rectangles set back from the nearest road, aligned with it; candidates in
    random order, each kept unless it touches a road, water or an earlier building
    (footprints computed for all candidates at once)."""
    h, w, mpp, m2p = c.h, c.w, c.mpp, c.m2p
    n_build = rng.poisson(style.buildings_per_ha * area_ha)
    lab_flat, h_flat, c_flat = c.labels.reshape(-1), c.height.reshape(-1), c.cidx.reshape(-1)
    cand = np.flatnonzero(((road_dist > 6) & (road_dist < 18) & (c.labels != WATER)).ravel())
    if not (cand.size and n_build):
        return
    picks = rng.choice(cand, size=min(n_build * 2, cand.size), replace=False)
    n_p = picks.size
    cy, cx = np.divmod(picks, w)
    a = road_ang.reshape(-1)[picks].astype(np.float64)
    half_b = road_dist.reshape(-1)[picks] - rng.uniform(1.5, 4, n_p)   # depth to road
    half_b = np.minimum(half_b, rng.uniform(4, 11, n_p))
    half_a = rng.uniform(4, 13, n_p)
    roof = rng.integers(len(_ROOFS), size=n_p)
    tall = rng.uniform(3.5, style.max_building_height_m, n_p)
    radius = np.hypot(half_a, half_b) * m2p
    ca, sa = np.cos(a) * mpp, np.sin(a) * mpp
    todo = np.flatnonzero(half_b >= 3)
    occupied = np.zeros(h * w, bool)
    placed, start = 0, 0
    while placed < n_build and start < todo.size:     # batches of candidates
        ids = todo[start:start + max(32, 2 * (n_build - placed))]
        start += ids.size
        tid, pix, (du, dv) = _footprints(cx[ids], cy[ids], radius[ids], (h, w))
        t = ids[tid]
        u = du * ca[t] + dv * sa[t]
        v = dv * ca[t] - du * sa[t]
        inside = (np.abs(u) < half_a[t]) & (np.abs(v) < half_b[t])
        tid, pix, v = tid[inside], pix[inside], v[inside]
        bad = np.bincount(tid, _BLOCKED[lab_flat[pix]], minlength=ids.size) > 0
        bad |= np.bincount(tid, minlength=ids.size) == 0
        bounds = np.searchsorted(tid, np.arange(ids.size + 1))
        accepted = np.zeros(ids.size, bool)
        for i in np.flatnonzero(~bad).tolist():
            if placed >= n_build:
                break
            seg = pix[bounds[i]:bounds[i + 1]]
            if occupied[seg].any():
                continue
            occupied[seg] = True
            accepted[i] = True
            placed += 1
        keep = accepted[tid]
        tid, pix, v = ids[tid[keep]], pix[keep], v[keep]
        lab_flat[pix] = BUILDING
        h_flat[pix] = tall[tid]
        c_flat[pix] = np.where(v > 0, _P_RIDGE, _P_ROOF) + roof[tid]   # gable


def _plant_trees(c: _Canvas, rng, style: WorldStyle, area_ha) -> None:
    """Dome-shaped crowns, clustered by a smooth density field (trees never block each
    other: all footprints at once; where crowns overlap the later tree's shading wins and
    the height is the maximum)."""
    m2p, mpp = c.m2p, c.mpp
    lab_flat, h_flat, c_flat = c.labels.reshape(-1), c.height.reshape(-1), c.cidx.reshape(-1)
    n_tree = rng.poisson(style.trees_per_ha * area_ha)
    coarse = c.labels[::8, ::8]
    dens = _smooth_noise(rng, coarse.shape, 60 * m2p / 8)
    free = np.flatnonzero(np.isin(coarse, (GRASS, FIELD)).ravel() & (dens.ravel() > -0.3))
    if not (free.size and n_tree):
        return
    sw = coarse.shape[1]
    picks = rng.choice(free, size=min(n_tree, free.size), replace=True)
    jit = rng.uniform(-4, 4, (picks.size, 2))
    rads = rng.uniform(1.5, 4.5, picks.size)
    ths = rng.uniform(4, 12, picks.size)
    py, px = np.divmod(picks, sw)
    cy, cx = py * 8 + jit[:, 0], px * 8 + jit[:, 1]
    tid, pix, (du, dv) = _footprints(cx, cy, rads * m2p, (c.h, c.w))
    d2 = (du * du + dv * dv) * (mpp * mpp / rads ** 2)[tid]
    inside = d2 < 1
    tid, pix, d2 = tid[inside], pix[inside], d2[inside]
    bad = np.bincount(tid, _BLOCKED[lab_flat[pix]], minlength=picks.size) > 0
    keep = ~bad[tid]
    tid, pix, d2 = tid[keep], pix[keep], d2[keep]
    dome = np.sqrt(1 - d2).astype(np.float32)
    np.maximum.at(h_flat, pix, (ths[tid] * (0.45 + 0.55 * dome)).astype(np.float32))
    lab_flat[pix] = TREE
    c_flat[pix] = _P_TREE
    last = pix.size - 1 - np.unique(pix[::-1], return_index=True)[1]
    c.shade_sat.reshape(-1)[pix[last]] = 0.75 + 0.5 * dome[last]
    c.shade_grd.reshape(-1)[pix[last]] = 0.8 + 0.3 * dome[last]


def _cast_shadows(c: _Canvas, rng, sun_azimuth_range_deg=(120.0, 240.0)) -> float:
    """Sun shadows on the satellite layer (computed at half resolution); returns the sun
    azimuth (degrees clockwise from north, towards the sun), uniform in the range."""
    h, w = c.h, c.w
    lo, hi = (float(v) for v in sun_azimuth_range_deg)
    sun_az = float(rng.uniform(lo, hi)) % 360.0
    tan_el = math.tan(math.radians(rng.uniform(35, 60)))
    f = 2
    hs = c.height[: h - h % f, : w - w % f].reshape(h // f, f, w // f, f).max(axis=(1, 3))
    shadow = np.zeros_like(hs, bool)
    sx, sy = math.sin(math.radians(sun_az)), -math.cos(math.radians(sun_az))
    step_m = f * c.mpp
    n_steps = int(np.ceil(float(hs.max()) / tan_el / step_m)) if hs.max() > 0 else 0
    for t in range(1, n_steps + 1):
        dx, dy = int(round(t * sx)), int(round(t * sy))
        if (dx == 0 and dy == 0) or abs(dx) >= hs.shape[1] or abs(dy) >= hs.shape[0]:
            continue
        ys, yd = (slice(dy, None), slice(None, hs.shape[0] - dy)) if dy >= 0 else \
            (slice(None, dy), slice(-dy, None))
        xs, xd = (slice(dx, None), slice(None, hs.shape[1] - dx)) if dx >= 0 else \
            (slice(None, dx), slice(-dx, None))
        shadow[yd, xd] |= (hs[ys, xs] - hs[yd, xd]) > t * step_m * tan_el
    c.shade_sat[: h - h % f, : w - w % f] *= np.where(
        np.repeat(np.repeat(shadow, f, 0), f, 1), np.float32(0.55), np.float32(1.0))
    return sun_az


def _colour_layers(c: _Canvas, rng, ground_palette="street"):
    """Low-frequency brightness and per-pixel grain, independent per layer; returns the
    (satellite, facade) uint8 (H, W, 3) colour layers."""
    pal_grd = _PAL_GRD_SHARED if ground_palette == "satellite" else _PAL_GRD
    h, w, m2p = c.h, c.w, c.m2p
    c.shade_sat *= 1 + 0.07 * _smooth_noise(rng, (h, w), 25 * m2p)
    c.shade_grd *= 1 + 0.08 * _smooth_noise(rng, (h, w), 6 * m2p)
    sat = _to_uint8(_PAL_SAT.take(c.cidx, axis=0), c.shade_sat, normal_noise(rng, (h, w)) * np.float32(5))
    grd = _to_uint8(pal_grd.take(c.cidx, axis=0), c.shade_grd, normal_noise(rng, (h, w)) * np.float32(6))
    return sat, grd


def generate_map(seed, size_px=(1024, 1024), metres_per_pixel: float = 0.5,
                 origin=(500000.0, 4400000.0), style: WorldStyle | None = None,
                 ground_palette: str = "street", sun_azimuth_range_deg=(120.0, 240.0)) -> SyntheticMap:
    """Generates one synthetic region: fields, water, roads, buildings, trees, sun shadows,
    then the two colour layers (each step draws from one random stream in this order).

    Args:
      seed: int or sequence of ints (numpy SeedSequence entropy); same seed -> same map.
      size_px: (H, W) pixels.
      metres_per_pixel: ground sampling distance (m/px); object sizes are in metres.
      origin: (easting, northing) of the north-west corner, metres.
      style: region style; None draws one from the seed.
      ground_palette: colours of the street-level (``facade``) layer, one of
        :data:`GROUND_PALETTES` (module docstring); geometry and random draws do not
        depend on it.
      sun_azimuth_range_deg: (lo, hi) degrees clockwise from north; the sun azimuth (its
        shadows on the satellite layer) is uniform in it. Default: southern skies (a
        northern-hemisphere day); (0, 360): shadow directions carry no north cue, so a tile
        turned by quarter turns is an equally likely world. Same number of random draws.
    Returns:
      SyntheticMap.
    """
    if ground_palette not in GROUND_PALETTES:
        raise ValueError(f"generate_map: ground_palette={ground_palette!r} must be one of {GROUND_PALETTES}")
    h, w = int(size_px[0]), int(size_px[1])
    if h < 16 or w < 16:
        raise ValueError(f"generate_map: size_px={size_px} is too small (min 16x16)")
    mpp = float(metres_per_pixel)
    if not mpp > 0:
        raise ValueError(f"generate_map: metres_per_pixel={metres_per_pixel} must be > 0")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    style = style or WorldStyle.random(rng)
    canvas = _Canvas.empty(h, w, mpp)
    _lay_fields(canvas, rng, style)
    _lay_water(canvas, rng, style)
    road_dist, road_ang = _lay_roads(canvas, rng, style)
    area_ha = h * w * mpp * mpp / 1e4
    _place_buildings(canvas, rng, style, road_dist, road_ang, area_ha)
    _plant_trees(canvas, rng, style, area_ha)
    sun_az = _cast_shadows(canvas, rng, sun_azimuth_range_deg)
    sat, grd = _colour_layers(canvas, rng, ground_palette)
    return SyntheticMap(
        satellite=sat, facade=grd,
        height=canvas.height, labels=canvas.labels, metres_per_pixel=mpp,
        origin_easting=float(origin[0]), origin_northing=float(origin[1]),
        sun_azimuth_deg=sun_az, seed=seed)


def sample_locations(world: SyntheticMap, num: int, rng: np.random.Generator, *,
                     min_spacing_m: float = 30.0, margin_m: float = 60.0,
                     road_fraction: float = 0.75) -> np.ndarray:
    """Camera positions on open ground (mostly on roads, as street-view cars drive).

    Args:
      world: the map.
      num: maximum number of positions wanted.
      rng: numpy Generator.
      min_spacing_m: minimum distance between two positions, metres.
      margin_m: minimum distance to the map border, metres (keep >= tile half extent).
      road_fraction: share of candidates drawn on road pixels.
    Returns:
      float64 (n, 2) pixel (x, y) positions, n <= num (fewer when the map is full).
    """
    h, w = world.shape
    mpp = world.metres_per_pixel
    mg = int(math.ceil(margin_m / mpp))
    if 2 * mg >= min(h, w):
        raise ValueError(f"sample_locations: margin_m={margin_m} does not fit a "
                         f"{w * mpp:.0f} x {h * mpp:.0f} m map")
    inner = world.labels[mg:h - mg, mg:w - mg]
    iw = inner.shape[1]
    road = np.flatnonzero(np.isin(inner.ravel(), (ROAD, MARKING)))
    open_ = np.flatnonzero(np.isin(inner.ravel(), (GRASS, FIELD, ROAD, MARKING)))
    n_cand = 30 * num + 50
    n_road = int(n_cand * road_fraction) if road.size else 0
    cand = np.concatenate([rng.choice(road, n_road) if n_road else np.zeros(0, np.int64),
                           rng.choice(open_, n_cand - n_road)])
    cy, cx = np.divmod(cand, iw)
    pts = np.stack([cx + mg + rng.uniform(-0.3, 0.3, cx.size),
                    cy + mg + rng.uniform(-0.3, 0.3, cy.size)], 1)
    # greedy: keep a candidate unless an accepted one is closer than min_spacing_m; a
    # grid of cells of that size limits the check to the 3x3 neighbouring cells
    min_px2 = (min_spacing_m / mpp) ** 2
    cell = max(math.sqrt(min_px2), 1e-9)
    grid: dict = {}
    acc = []
    for px, py in pts.tolist():
        gx, gy = int(px // cell), int(py // cell)
        if any((qx - px) ** 2 + (qy - py) ** 2 < min_px2
               for nx in (gx - 1, gx, gx + 1) for ny in (gy - 1, gy, gy + 1)
               for qx, qy in grid.get((nx, ny), ())):
            continue
        grid.setdefault((gx, gy), []).append((px, py))
        acc.append((px, py))
        if len(acc) == num:
            break
    return np.array(acc, np.float64).reshape(-1, 2)
