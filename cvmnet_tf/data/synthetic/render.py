"""Views of a :class:`~cvmnet_tf.data.synthetic.world.SyntheticMap`.

- :func:`cut_tile`: a square satellite tile centred on a position (north up, or rotated).
- :func:`render_ground`: the geometrically consistent street-level view from the same
  position, a cylindrical panorama (azimuth across the width, elevation down the rows)
  ray-cast against the height map, so buildings and trees occlude what is behind them
  and appear as vertical bands; colours come from the map's street-level palette.
- :func:`degrade_ground` / :func:`degrade_satellite`: per-pair photometric changes
  (colour/brightness/contrast jitter, sky tint and clouds, blur, sensor noise) that make
  matching learnable but not trivial.
- :func:`polar_warp`: the noiseless flat-ground polar re-projection of a satellite tile
  into the panorama geometry (what a matcher could do without heights); used by the
  tests as a hand-crafted matcher.

Panorama geometry: column j looks at azimuth
``phi_j = 2 pi ((j + 0.5) / W - north_column_fraction)`` (clockwise from north, so with
the default 0.5 north is the centre column, east at 3/4 of the width), row i at elevation
``e_i = e_top - (i + 0.5) * span / H`` with ``span = 360 deg * H / W`` (square pixels) and
the horizon at ``horizon_fraction * H``.
"""
from __future__ import annotations

import functools
import math

import numpy as np
from PIL import Image
from scipy import ndimage

from cvmnet_tf.data.synthetic.world import BUILDING, SKY, TREE, SyntheticMap


def view_angles(size, *, horizon_fraction=1 / 3, north_column_fraction=0.5,
                heading_deg=None, fov_deg=None):
    """(elevation (H,), azimuth (W,)) float64 radians of the pixel centres of a view.

    Full panorama when fov_deg is None (360 degrees, north at north_column_fraction * W);
    otherwise a crop of horizontal field of view fov_deg centred on heading_deg.
    Vertical span = horizontal span * H / W (square pixels); the horizon lies at row
    horizon_fraction * H.
    """
    h, w = int(size[0]), int(size[1])
    if h < 1 or w < 1:
        raise ValueError(f"view_angles: size={size} must be positive (H, W)")
    return _view_angles(h, w, float(horizon_fraction), float(north_column_fraction),
                        None if heading_deg is None else float(heading_deg),
                        None if fov_deg is None else float(fov_deg))


@functools.lru_cache(maxsize=32)
def _view_angles(h, w, horizon_fraction, north_frac, heading_deg, fov_deg):
    hfov = 2 * math.pi if fov_deg is None else math.radians(fov_deg)
    span = hfov * h / w
    e_top = horizon_fraction * span
    elev = e_top - (np.arange(h) + 0.5) * span / h
    if fov_deg is None:
        azim = 2 * math.pi * ((np.arange(w) + 0.5) / w - north_frac)
    else:
        azim = math.radians(heading_deg) + hfov * ((np.arange(w) + 0.5) / w - 0.5)
    elev.flags.writeable = False
    azim.flags.writeable = False
    return elev, azim


@functools.lru_cache(maxsize=8)
def _distances(d_min, d_max, k):
    d = d_min * (d_max / d_min) ** (np.arange(k) / (k - 1))
    d.flags.writeable = False
    return d


@functools.lru_cache(maxsize=16)
def _ray_geometry(size, horizon_fraction, north_frac, heading_deg, fov_deg, cam_h, max_d,
                  num_samples, mpp):
    """Everything of render_ground that depends only on the view and map resolution."""
    elev, azim = _view_angles(size[0], size[1], horizon_fraction, north_frac, heading_deg,
                              fov_deg)
    d = _distances(0.5, max_d, num_samples)
    hh, ww, k = elev.size, azim.size, d.size
    sin_a, cos_a = np.sin(azim), np.cos(azim)
    tan_e = np.tan(np.clip(elev, -1.5, 1.5))          # |tan| <= 14.1
    offs = 1e4 * np.arange(ww)                          # > range of slopes and tan_e
    g = {"elev": elev, "azim": azim, "d": d, "sin_a": sin_a, "cos_a": cos_a,
         "tan_e": tan_e, "inv_d": 1.0 / d[None, :], "offs": offs,
         "ray_dx": sin_a[:, None] * d[None, :] / mpp,
         "ray_dy": -cos_a[:, None] * d[None, :] / mpp,
         "query": (tan_e[:, None] + offs[None, :]).ravel(),
         "col_start": (np.arange(ww) * k)[None, :],
         "cols": np.broadcast_to(np.arange(ww)[None, :], (hh, ww)),
         "below": elev < 0,
         "dg": np.minimum(cam_h / np.maximum(-np.tan(elev), 1e-6), 3.0 * max_d)}
    for v in g.values():
        if isinstance(v, np.ndarray) and v.flags.writeable:
            v.flags.writeable = False
    return g


_NOISE_BANK = []


def _noise(rng: np.random.Generator, shape) -> np.ndarray:
    """Standard normal float32 noise of `shape`: a random window of a fixed bank (fast,
    deterministic given rng); falls back to drawing when larger than the bank."""
    n = int(np.prod(shape))
    if not _NOISE_BANK:
        _NOISE_BANK.append(np.random.default_rng(20180618).standard_normal(1 << 21, np.float32))
    bank = _NOISE_BANK[0]
    if n > bank.size // 2:
        return rng.standard_normal(shape, np.float32)
    o = int(rng.integers(0, bank.size - n))
    return bank[o:o + n].reshape(shape)


def _gather(flat, h, w, px, py):
    """Nearest-neighbour lookup in a (H*W, ...) flattened layer at float pixel coords."""
    ix = np.clip(np.rint(px).astype(np.int64), 0, w - 1)
    iy = np.clip(np.rint(py).astype(np.int64), 0, h - 1)
    return flat[iy * w + ix]


def _bilinear(flat, h, w, px, py):
    """Bilinear lookup in a (H*W, C) float32 flattened image at float pixel coords."""
    px = np.clip(px, 0, w - 1.001)
    py = np.clip(py, 0, h - 1.001)
    x0 = px.astype(np.int64)
    y0 = py.astype(np.int64)
    fx = (px - x0).astype(np.float32)[..., None]
    fy = (py - y0).astype(np.float32)[..., None]
    i = y0 * w + x0
    top = flat[i] * (1 - fx) + flat[i + 1] * fx
    bot = flat[i + w] * (1 - fx) + flat[i + w + 1] * fx
    return top * (1 - fy) + bot * fy


_SKY_HORIZON = np.array([205, 218, 232], np.float32)
_SKY_ZENITH = np.array([86, 134, 206], np.float32)
_HAZE = np.array([190, 200, 210], np.float32)


def render_ground(world: SyntheticMap, x: float, y: float, size, *,
                  horizon_fraction: float = 1 / 3, north_column_fraction: float = 0.5,
                  heading_deg: float | None = None, fov_deg: float | None = None,
                  camera_height_m: float = 2.0, max_distance_m: float = 80.0,
                  num_samples: int = 96, haze_distance_m: float = 150.0):
    """Noiseless street-level view at map pixel (x, y).

    Each column casts a ray over the height map (``num_samples`` geometric distance
    steps from 0.5 m to max_distance_m); a row at elevation e sees the first sample whose
    elevation angle atan((height - camera_height) / distance) reaches e (a running
    maximum gives occlusion). Object hits take the facade colour (with floor bands and
    sun-side shading); flat ground is looked up (bilinear) at the exact distance
    camera_height / tan(-e); everything else is sky. Distant colours fade into haze.

    Args:
      world: the map.
      x, y: camera position in map pixels (column, row).
      size: (H, W) output pixels.
      horizon_fraction, north_column_fraction, heading_deg, fov_deg: see view_angles.
      camera_height_m, max_distance_m, num_samples, haze_distance_m: geometry (metres).
    Returns:
      (rgb float32 (H, W, 3) in [0, 255], labels uint8 (H, W) with SKY=255 for sky).
    """
    h_map, w_map = world.shape
    mpp = world.metres_per_pixel
    facade, height, labels = world.float_layers()
    g = _ray_geometry(tuple(int(v) for v in size), float(horizon_fraction),
                      float(north_column_fraction),
                      None if heading_deg is None else float(heading_deg),
                      None if fov_deg is None else float(fov_deg), float(camera_height_m),
                      float(max_distance_m), int(num_samples), float(mpp))
    elev, azim, d = g["elev"], g["azim"], g["d"]
    hh, ww, k = elev.size, azim.size, d.size
    # ray samples (W, K); slope (height - camera) / distance is monotone in the angle,
    # its running maximum along the ray gives occlusion
    rx = g["ray_dx"] + x
    ry = g["ray_dy"] + y
    hk = _gather(height, h_map, w_map, rx, ry)
    run = np.maximum.accumulate((hk - camera_height_m) * g["inv_d"], axis=1)
    # first sample with run >= tan(elevation), per (row, column): one searchsorted on
    # rows shifted by a per-column offset (run is non-decreasing along each row)
    hit = (np.searchsorted((run + g["offs"][:, None]).ravel(), g["query"], side="left")
           .reshape(hh, ww) - g["col_start"])
    valid = hit < k
    kk = np.minimum(hit, k - 1)
    cols = g["cols"]
    h_hit = hk[cols, kk]
    d_hit = d[kk]
    tan_e = g["tan_e"][:, None]
    z_hit = camera_height_m + d_hit * tan_e
    obj = valid & (h_hit > 0) & (z_hit >= -1e-6)
    ground = ~obj & g["below"][:, None]
    sky = ~obj & ~ground
    sin_a, cos_a = g["sin_a"], g["cos_a"]

    rgb = np.empty((hh, ww, 3), np.float32)
    lab = np.full((hh, ww), SKY, np.uint8)
    if obj.any():
        oc = cols[obj]
        ok = kk[obj]
        ox, oy = rx[oc, ok], ry[oc, ok]
        col = _gather(facade, h_map, w_map, ox, oy)
        olab = _gather(labels, h_map, w_map, ox, oy)
        z = z_hit[obj]
        band = np.where((olab == BUILDING) & ((z % 3.0) > 1.9), 0.72, 1.0)  # window rows
        side = 0.8 + 0.2 * np.cos(azim[oc] - math.radians(world.sun_azimuth_deg) + math.pi)
        dist = d_hit[obj]
        col = col * (band * side).astype(np.float32)[:, None]
        fog = (1 - np.exp(-dist / haze_distance_m)).astype(np.float32)[:, None]
        rgb[obj] = col * (1 - fog) + _HAZE * fog
        lab[obj] = olab
    if ground.any():
        gi, gc = np.nonzero(ground)
        dg = g["dg"][gi]
        gx = x + sin_a[gc] * dg / mpp
        gy = y - cos_a[gc] * dg / mpp
        col = _bilinear(facade, h_map, w_map, gx, gy)
        fog = (1 - np.exp(-dg / haze_distance_m)).astype(np.float32)[:, None]
        rgb[gi, gc] = col * (1 - fog) + _HAZE * fog
        glab = _gather(labels, h_map, w_map, gx, gy)
        lab[gi, gc] = np.where(np.isin(glab, (BUILDING, TREE)), 0, glab)  # ground under
    if sky.any():
        si, _ = np.nonzero(sky)
        t = np.clip(elev[si] / (math.pi / 2), 0, 1).astype(np.float32)[:, None] ** 0.6
        rgb[sky] = _SKY_HORIZON * (1 - t) + _SKY_ZENITH * t
    return rgb, lab


def cut_tile(world: SyntheticMap, x: float, y: float, *, extent_m: float, size,
             rotation_deg: float = 0.0) -> np.ndarray:
    """Square satellite tile centred on map pixel (x, y).

    Args:
      world: the map.
      x, y: centre (column, row), map pixels.
      extent_m: side length of the tile on the ground, metres.
      size: output side in pixels (int) or (H, W) with H == W.
      rotation_deg: 0 = north up; otherwise the direction rotation_deg (clockwise from
        north) points up in the tile (Vo & Hays style alignment with a view heading).
    Returns:
      uint8 (S, S, 3) RGB; tile metres per pixel = extent_m / S.
    """
    s = _square(size, "cut_tile")
    img = world.pil_satellite()
    n = extent_m / world.metres_per_pixel     # tile side in map pixels
    if rotation_deg == 0:
        box = (x + 0.5 - n / 2, y + 0.5 - n / 2, x + 0.5 + n / 2, y + 0.5 + n / 2)
        out = img.resize((s, s), Image.BILINEAR, box=box)
    else:
        m = max(1, int(math.ceil(n)))
        sc = n / m
        p = math.radians(rotation_deg)
        c, si = math.cos(p), math.sin(p)
        a, b, e_, f_ = sc * c, -sc * si, sc * si, sc * c
        cx, cy = x + 0.5, y + 0.5
        coeffs = (a, b, cx - (a + b) * m / 2, e_, f_, cy - (e_ + f_) * m / 2)
        out = img.transform((m, m), Image.AFFINE, coeffs, resample=Image.BILINEAR)
        if m != s:
            out = out.resize((s, s), Image.BILINEAR)
    return np.asarray(out, np.uint8)


def _square(size, who):
    if isinstance(size, (tuple, list)):
        if len(size) != 2 or size[0] != size[1]:
            raise ValueError(f"{who}: satellite size {size} must be square (S, S)")
        size = size[0]
    size = int(size)
    if size < 8:
        raise ValueError(f"{who}: satellite size {size} must be >= 8 pixels")
    return size


def degrade_ground(rgb: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *,
                   strength: float = 1.0) -> np.ndarray:
    """Per-pair photometric changes of a rendered ground view.

    Sky tint and sinusoidal clouds, a random 3x3 colour mixing (about +-8 percent off
    identity), brightness (+-20 %), contrast (+-20 %), gamma, Gaussian blur (sigma
    0.3..1.0 px, scaled with the image width / 256) and sensor noise (sigma 3..8).

    Args:
      rgb: float32 (H, W, 3) in [0, 255] from render_ground.
      labels: uint8 (H, W) from render_ground (SKY marks sky).
      rng: numpy Generator (determinism: same state -> same output).
      strength: scales every jitter (0 = only the uint8 conversion).
    Returns:
      uint8 (H, W, 3).
    """
    h, w, _ = rgb.shape
    out = rgb.copy()
    s = float(strength)
    sky = labels == SKY
    if sky.any() and s > 0:
        tint = 1 + s * rng.uniform(-0.12, 0.12, 3).astype(np.float32)
        yy, xx = np.nonzero(sky)
        ph = rng.uniform(0, 2 * np.pi, 3)
        fr = rng.integers(1, 5, 3)
        cl = (np.sin(2 * np.pi * fr[0] * xx / w + ph[0]) + np.sin(2 * np.pi * fr[1] * xx / w
              + 3 * yy / max(h, 1) + ph[1]) + 0.5 * np.sin(2 * np.pi * fr[2] * xx / w + ph[2]))
        cover = rng.uniform(0.5, 2.0)
        cloud = np.clip((cl - cover) / 1.0, 0, 1).astype(np.float32)[:, None] * s
        out[sky] = out[sky] * tint * (1 - cloud) + 235 * cloud
    if s > 0:
        mix = np.eye(3, dtype=np.float32) + s * rng.uniform(-0.08, 0.08, (3, 3)).astype(np.float32)
        out = out @ mix.T
        mean = out.mean()
        out = (out - mean) * (1 + s * rng.uniform(-0.2, 0.2)) + mean
        out *= 1 + s * rng.uniform(-0.2, 0.2)
        out = np.float32(255) * (np.clip(out, 0, 255) / np.float32(255)) ** np.float32(1 + s * rng.uniform(-0.15, 0.15))
        sigma = s * rng.uniform(0.3, 1.0) * max(w / 256, 0.5)
        out = ndimage.gaussian_filter(out, (sigma, sigma, 0), mode="wrap")
        out += _noise(rng, out.shape) * np.float32(s * rng.uniform(3, 8))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def degrade_satellite(tile: np.ndarray, rng: np.random.Generator, *,
                      strength: float = 1.0) -> np.ndarray:
    """Mild per-tile jitter of a satellite tile (brightness +-10 %, per-channel gain +-5 %,
    noise sigma 1..3). uint8 (S, S, 3) -> uint8 (S, S, 3)."""
    s = float(strength)
    if s <= 0:
        return tile.copy()
    out = tile.astype(np.float32)
    out *= (1 + s * rng.uniform(-0.1, 0.1)) * (1 + s * rng.uniform(-0.05, 0.05, 3)).astype(np.float32)
    out += _noise(rng, out.shape) * np.float32(s * rng.uniform(1, 3))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def polar_warp(tile: np.ndarray, size, *, extent_m: float, camera_height_m: float = 2.0,
               horizon_fraction: float = 1 / 3, north_column_fraction: float = 0.5) -> np.ndarray:
    """Flat-ground polar re-projection of a north-up satellite tile into panorama geometry.

    Pixel (i, j) of the panorama (see view_angles) looks at the ground point at distance
    camera_height / tan(-e_i) in direction phi_j from the tile centre.

    Args:
      tile: (S, S, 3) uint8/float satellite tile covering extent_m metres.
      size: (H, W) panorama size.
    Returns:
      float32 (H, W, 3); NaN above the horizon and where the ground point leaves the tile.
    """
    s = tile.shape[0]
    if tile.ndim != 3 or tile.shape[1] != s:
        raise ValueError(f"polar_warp: tile must be (S, S, C), got {tile.shape}")
    elev, azim = view_angles(size, horizon_fraction=horizon_fraction,
                             north_column_fraction=north_column_fraction)
    mpp = extent_m / s
    below = elev < 0
    dg = np.where(below, camera_height_m / np.maximum(-np.tan(elev), 1e-9), np.inf)
    r = dg[:, None] / mpp
    px = (s - 1) / 2 + r * np.sin(azim)[None, :]
    py = (s - 1) / 2 - r * np.cos(azim)[None, :]
    inside = np.isfinite(r) & (px >= 0) & (px <= s - 1) & (py >= 0) & (py <= s - 1)
    out = np.full(inside.shape + (tile.shape[2],), np.nan, np.float32)
    flat = tile.reshape(-1, tile.shape[2]).astype(np.float32)
    out[inside] = _bilinear(flat, s, s, px[inside], py[inside])
    return out
