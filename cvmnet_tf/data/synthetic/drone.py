"""Drone-view (oblique perspective) rendering of the synthetic world (University-1652 style).

A pinhole camera hovers ``altitude_m`` above the ground at horizontal distance
``distance_m`` from a target point, on the side opposite to its heading (it stands at
heading + 180 degrees from the target and looks along ``heading_deg``), and is aimed at
the target: the optical axis passes through the target on the ground, pitched down by
``atan2(altitude_m, distance_m)``. ``distance_m = 0`` looks straight down with the heading
pointing to the top of the image (heading 0: a north-up view like a satellite tile).

Each pixel's ray is marched through the height map (``height_steps`` levels between the
highest object and the ground, nearest-neighbour height look-ups): a ray that enters an
object through its top takes the satellite (roof) colour there, one that enters through
the side takes the street-level wall colour of the ``facade`` layer, darkened; rays that
reach the flat ground take the satellite colour at the exact ground intersection
(bilinear). Rays at or above the horizon get a sky gradient; ground points outside the
map fade into haze. Then per-view photometric changes (``render.degrade_ground``: colour
mixing, brightness, contrast, gamma, blur, sensor noise, clouds in the sky).

Frames (all metres): map pixel (x, y) = (column, row), east = +x, south = +y; the camera
works in (east, north, up) metres relative to the target. Pure numpy, vectorised.
"""
from __future__ import annotations

import math

import numpy as np

from cvmnet_tf.data.synthetic import render
from cvmnet_tf.data.synthetic.world import SKY, SyntheticMap

_WALL_SHADE = np.float32(0.78)


def camera_frame(heading_deg: float, altitude_m: float, distance_m: float):
    """Camera centre and orthonormal axes in (east, north, up) metres, target at the origin.

    Returns:
      (centre (3,), forward (3,), right (3,), up (3,)) float64; forward = optical axis,
      right = image +column direction, up = image -row direction.
    """
    h = math.radians(float(heading_deg))
    p = math.atan2(float(altitude_m), float(distance_m))          # pitch below horizontal
    fh = np.array([math.sin(h), math.cos(h), 0.0])                 # horizontal heading
    zup = np.array([0.0, 0.0, 1.0])
    centre = -float(distance_m) * fh + float(altitude_m) * zup
    forward = math.cos(p) * fh - math.sin(p) * zup
    right = np.array([math.cos(h), -math.sin(h), 0.0])
    up = math.sin(p) * fh + math.cos(p) * zup
    return centre, forward, right, up


def pixel_rays(size, fov_deg: float, heading_deg: float, altitude_m: float,
               distance_m: float) -> np.ndarray:
    """Un-normalised ray directions (H, W, 3) float64 in (east, north, up) of the pixel
    centres; fov_deg is the horizontal field of view over W columns (square pixels)."""
    hh, ww = int(size[0]), int(size[1])
    _, fwd, right, up = camera_frame(heading_deg, altitude_m, distance_m)
    f = (ww / 2) / math.tan(math.radians(fov_deg) / 2)               # focal length, px
    u = np.arange(ww) + 0.5 - ww / 2
    v = np.arange(hh) + 0.5 - hh / 2
    return (f * fwd[None, None, :] + u[None, :, None] * right[None, None, :]
            - v[:, None, None] * up[None, None, :])


def _layers(world: SyntheticMap):
    """(satellite float32 (H*W, 4), facade float32 (H*W, 4) -- RGB plus a zero pad column,
    4 floats gather faster than 3 --, height float32 (H*W,), labels uint8 (H*W,),
    max object height m), cached on the map (``world.layer_cache``): a map's layers must not
    change after its first drone render."""
    c = getattr(world, "layer_cache", None)
    if c is None:
        c = {}
    if "drone" not in c:
        def pad(img):
            out = np.zeros((img.shape[0] * img.shape[1], 4), np.float32)
            out[:, :3] = img.reshape(-1, 3)
            return out
        c["drone"] = (pad(world.satellite), pad(world.facade),
                      np.ascontiguousarray(world.height, np.float32).reshape(-1),
                      np.ascontiguousarray(world.labels).reshape(-1),
                      float(world.height.max()) if world.height.size else 0.0)
    return c["drone"]


def _nearest(h, w, px, py):
    """Flat int32 indices of the nearest map pixels (clamped to the map)."""
    ix = np.clip(px + np.float32(0.5), 0, w - 1).astype(np.int32)
    iy = np.clip(py + np.float32(0.5), 0, h - 1).astype(np.int32)
    iy *= np.int32(w)
    iy += ix
    return iy


def _bilinear4(flat4, h, w, px, py):
    """Bilinear look-up in a (H*W, 4) float32 layer at float32 pixel coords -> (N, 4)."""
    px = np.clip(px, 0, w - 1.001)
    py = np.clip(py, 0, h - 1.001)
    x0 = px.astype(np.int32)
    y0 = py.astype(np.int32)
    fx = (px - x0)[:, None]
    fy = (py - y0)[:, None]
    i = y0 * np.int32(w) + x0
    top = np.take(flat4, i, axis=0)
    top += (np.take(flat4, i + 1, axis=0) - top) * fx
    bot = np.take(flat4, i + w, axis=0)
    bot += (np.take(flat4, i + (w + 1), axis=0) - bot) * fx
    top += (bot - top) * fy
    return top


def _check(size, heading_deg, altitude_m, distance_m, fov_deg):
    if not (isinstance(size, (tuple, list)) and len(size) == 2 and min(int(v) for v in size) >= 1):
        raise ValueError(f"render_drone_view: size={size!r} must be (H, W) positive ints")
    for name, v in (("heading_deg", heading_deg), ("altitude_m", altitude_m),
                    ("distance_m", distance_m), ("fov_deg", fov_deg)):
        if not np.isfinite(v):
            raise ValueError(f"render_drone_view: {name}={v!r} must be finite")
    if not altitude_m > 0:
        raise ValueError(f"render_drone_view: altitude_m={altitude_m} must be > 0 metres")
    if distance_m < 0:
        raise ValueError(f"render_drone_view: distance_m={distance_m} must be >= 0 metres")
    if not 1.0 <= fov_deg <= 170.0:
        raise ValueError(f"render_drone_view: fov_deg={fov_deg} must be in [1, 170] degrees")


def render_drone(world: SyntheticMap, x: float, y: float, size, *, heading_deg: float,
                 altitude_m: float, distance_m: float, fov_deg: float = 60.0,
                 height_steps: int = 12, haze_distance_m: float = 2000.0):
    """Noiseless drone view of map pixel (x, y) (the aim point on the ground).

    Args:
      world: the map.
      x, y: target (column, row) in map pixels.
      size: (H, W) output pixels.
      heading_deg: viewing direction, clockwise from north (degrees).
      altitude_m: camera height above the ground, metres (> 0).
      distance_m: horizontal camera-target distance, metres (0 = nadir view).
      fov_deg: horizontal field of view, degrees (vertical = fov * H / W in the image plane).
      height_steps: ray-marching levels for objects (0 = flat map, no height cue).
      haze_distance_m: e-folding slant distance of the haze, metres.
    Returns:
      (rgb float32 (H, W, 3) in [0, 255], labels uint8 (H, W): world class ids, SKY=255).
    """
    _check(size, heading_deg, altitude_m, distance_m, fov_deg)
    hh, ww = int(size[0]), int(size[1])
    h_map, w_map = world.shape
    mpp = float(world.metres_per_pixel)
    sat, facade, height, labels, hmax = _layers(world)
    centre, *_ = camera_frame(heading_deg, altitude_m, distance_m)
    d = pixel_rays((hh, ww), fov_deg, heading_deg, altitude_m, distance_m).reshape(-1, 3)
    n = d.shape[0]
    rgb = np.empty((n, 3), np.float32)
    lab = np.full(n, SKY, np.uint8)
    down = d[:, 2] < -1e-9 * np.abs(d).max()
    if not down.all():                                         # sky gradient
        s_i = np.flatnonzero(~down)
        el = np.arctan2(d[s_i, 2], np.hypot(d[s_i, 0], d[s_i, 1]))
        t = (np.clip(el / (math.pi / 2), 0, 1) ** 0.6).astype(np.float32)[:, None]
        rgb[s_i] = render.SKY_HORIZON * (1 - t) + render.SKY_ZENITH * t
        idx = np.flatnonzero(down)
        if idx.size == 0:
            return rgb.reshape(hh, ww, 3), lab.reshape(hh, ww)
        dd = d[idx]
    else:
        idx, dd = None, d
    alt = float(altitude_m)
    # where the ray is at height z (metres): map pixel (cx + (alt - z) * sx, cy + ...)
    sx = (dd[:, 0] / (-dd[:, 2] * mpp)).astype(np.float32)
    sy = (-dd[:, 1] / (-dd[:, 2] * mpp)).astype(np.float32)
    cx = np.float32(x + centre[0] / mpp)
    cy = np.float32(y - centre[1] / mpp)
    slant_per_m = (np.sqrt((dd ** 2).sum(1)) / -dd[:, 2]).astype(np.float32)   # per m descent
    m = dd.shape[0]
    ox = cx + np.float32(alt) * sx                 # flat-ground intersection
    oy = cy + np.float32(alt) * sy
    drop = np.full(m, np.float32(alt))             # descent (m) to the sampled point
    top = min(hmax, alt * 0.999)
    obj = None
    if height_steps > 0 and top > 0:
        k = int(height_steps)
        drops = (alt - top * (1 - np.arange(k) / k)).astype(np.float32)   # levels above 0
        px = cx + drops[:, None] * sx[None, :]                            # (K, M)
        py = cy + drops[:, None] * sy[None, :]
        hk = np.take(height, _nearest(h_map, w_map, px, py))
        hitm = hk >= (np.float32(alt) - drops)[:, None] - np.float32(1e-4)
        hitm &= (px >= -0.5) & (px <= w_map - 0.5) & (py >= -0.5) & (py <= h_map - 0.5)
        anyhit = hitm.any(0)
        if anyhit.any():
            oi = np.flatnonzero(anyhit)
            first = hitm[:, oi].argmax(0)
            hb = hk[first, oi]
            obj_pos = hb > 0
            oi, first, hb = oi[obj_pos], first[obj_pos], hb[obj_pos]
            dr = np.float32(alt) - hb                                     # ray at the top
            rx = cx + dr * sx[oi]
            ry = cy + dr * sy[oi]
            h_r = np.take(height, _nearest(h_map, w_map, rx, ry))
            roof = h_r >= hb - np.maximum(np.float32(0.5), np.float32(0.15) * hb)
            ox[oi] = np.where(roof, rx, px[first, oi])
            oy[oi] = np.where(roof, ry, py[first, oi])
            drop[oi] = np.where(roof, dr, drops[first])
            obj = (oi, roof)
    col = _bilinear4(sat, h_map, w_map, ox, oy)
    near = _nearest(h_map, w_map, ox, oy)
    olab = np.take(labels, near)
    if obj is not None:
        oi, roof = obj
        wall = oi[~roof]
        col[wall] = np.take(facade, near[wall], axis=0) * _WALL_SHADE
    fog = 1 - np.exp(-(drop * slant_per_m) / np.float32(haze_distance_m))
    out = (ox < -0.5) | (ox > w_map - 0.5) | (oy < -0.5) | (oy > h_map - 0.5)
    fog[out] = 1.0
    olab[out] = 0
    col = col[:, :3]
    col += (render.HAZE - col) * fog[:, None]
    if idx is None:
        rgb, lab = col, olab
    else:
        rgb[idx] = col
        lab[idx] = olab
    return rgb.reshape(hh, ww, 3), lab.reshape(hh, ww)


def render_drone_view(world: SyntheticMap, x: float, y: float, size, *, heading_deg: float,
                      altitude_m: float, distance_m: float, fov_deg: float = 60.0,
                      rng: np.random.Generator | None = None, strength: float = 1.0,
                      height_steps: int = 12, haze_distance_m: float = 2000.0) -> np.ndarray:
    """Drone photograph of map pixel (x, y): :func:`render_drone` + photometric jitter.

    Args:
      world, x, y, size, heading_deg, altitude_m, distance_m, fov_deg, height_steps,
        haze_distance_m: see :func:`render_drone` (pixels, degrees, metres).
      rng: numpy Generator for the per-view jitter (colour mixing +-8 %, brightness and
        contrast +-20 %, gamma, Gaussian blur, sensor noise sigma 3..8, sky clouds; see
        render.degrade_ground); None = no jitter (clean, deterministic render).
      strength: scales the jitter (0 = none).
    Returns:
      uint8 (H, W, 3) RGB.
    """
    rgb, lab = render_drone(world, x, y, size, heading_deg=heading_deg, altitude_m=altitude_m,
                            distance_m=distance_m, fov_deg=fov_deg, height_steps=height_steps,
                            haze_distance_m=haze_distance_m)
    if rng is None or strength <= 0:
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return render.degrade_ground(rgb, lab, rng, strength=strength)


def footprint_radius_m(size, *, altitude_m: float, distance_m: float,
                       fov_deg: float = 60.0) -> float:
    """Largest horizontal distance (metres) from the target of the ground points seen at
    the image corners and edge midpoints (inf when any of them looks above the horizon).
    Used to keep drone views inside the generated map."""
    hh, ww = int(size[0]), int(size[1])
    d = pixel_rays((hh, ww), fov_deg, 0.0, altitude_m, distance_m)
    pts = d[[0, 0, 0, hh // 2, hh // 2, -1, -1, -1], [0, ww // 2, -1, 0, -1, 0, ww // 2, -1]]
    if (pts[:, 2] >= 0).any():
        return math.inf
    c, *_ = camera_frame(0.0, altitude_m, distance_m)
    t = -altitude_m / pts[:, 2]
    g = c[None, :2] + t[:, None] * pts[:, :2]
    return float(np.sqrt((g ** 2).sum(1)).max())
