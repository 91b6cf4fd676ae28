"""Views of a :class:`~cvmnet_tf.data.synthetic.world.SyntheticMap`.

- :func:`cut_tile`: a square satellite tile centred on a position (north up, or rotated);
  :func:`cut_label_tile`: its class labels.
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

from cvmnet_tf.data.synthetic.world import BUILDING, SKY, TREE, SyntheticMap, normal_noise


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


def _frozen(g):
    for v in g.values():
        if isinstance(v, np.ndarray) and v.flags.writeable:
            v.flags.writeable = False
    return g


@functools.lru_cache(maxsize=16)
def _elev_geometry(h, w, horizon_fraction, hfov_key, cam_h, max_d, num_samples, haze):
    """Everything of render_ground that depends only on the rows (elevations), the ray
    sample distances and the haze: shared by all headings of a view size."""
    if hfov_key is None:
        elev, _ = _view_angles(h, w, horizon_fraction, 0.5, None, None)
    else:
        elev, _ = _view_angles(h, w, horizon_fraction, 0.5, 0.0, hfov_key)
    d = _distances(0.5, max_d, num_samples)
    tan_e = np.tan(np.clip(elev, -1.5, 1.5))          # (H,) decreasing, |tan| <= 14.1
    rb = int(np.searchsorted(-elev, 0.0, side="right"))  # first row with elev < 0
    dg = np.minimum(cam_h / np.maximum(-np.tan(elev[rb:]), 1e-6), 3.0 * max_d)  # (Hb,) m
    t = (np.clip(elev[:rb] / (math.pi / 2), 0, 1).astype(np.float32) ** np.float32(0.6))[:, None]
    keep_g = np.exp(-dg / haze).astype(np.float32)
    keep_k = np.exp(-d / haze).astype(np.float32)
    return _frozen({
        "elev": elev, "d": d, "tan_e": tan_e, "neg_tan_e": -tan_e, "rb": rb, "dg": dg,
        "inv_d": 1.0 / d[None, :],
        "sky_rows": (SKY_HORIZON * (1 - t) + SKY_ZENITH * t)[:, None, :],  # (rb, 1, 3)
        "keep_g": keep_g[:, None, None],                                        # (Hb, 1, 1)
        "haze_g": ((1 - keep_g)[:, None] * HAZE)[:, None, :],                  # (Hb, 1, 3)
        "keep_k": keep_k, "haze_k": 1 - keep_k,
        "col_k": (np.arange(w) * num_samples)[None, :],                         # (1, W)
        "col_rep": np.repeat(np.arange(w), num_samples),                        # (W*K,)
    })


@functools.lru_cache(maxsize=16)
def _azim_geometry(h, w, horizon_fraction, north_frac, heading_deg, fov_deg, cam_h, max_d,
                   num_samples, haze, mpp):
    """Ray and ground-point offsets (map pixels) relative to the camera, per view."""
    _, azim = _view_angles(h, w, horizon_fraction, north_frac, heading_deg, fov_deg)
    e = _elev_geometry(h, w, horizon_fraction, fov_deg, cam_h, max_d, num_samples, haze)
    sin_a, cos_a = np.sin(azim), np.cos(azim)
    d, dg = e["d"], e["dg"]
    return _frozen({
        "azim": azim,
        "ray_dx": sin_a[:, None] * (d / mpp)[None, :],      # (W, K)
        "ray_dy": -cos_a[:, None] * (d / mpp)[None, :],
        "gnd_dx": (dg / mpp)[:, None] * sin_a[None, :],      # (Hb, W)
        "gnd_dy": -(dg / mpp)[:, None] * cos_a[None, :],
    })


def _ray_geometry(size, horizon_fraction, north_frac, heading_deg, fov_deg, cam_h, max_d,
                  num_samples, mpp, haze=150.0):
    """(elevation geometry, azimuth geometry) dicts of one view (both cached)."""
    h, w = int(size[0]), int(size[1])
    e = _elev_geometry(h, w, horizon_fraction, fov_deg, cam_h, max_d, num_samples, haze)
    a = _azim_geometry(h, w, horizon_fraction, north_frac, heading_deg, fov_deg, cam_h, max_d,
                       num_samples, haze, mpp)
    return e, a


def _pack_rgb(img) -> np.ndarray:
    """uint8 (..., 3) -> uint32 (N,) with the bytes R, G, B, 0 (one 4-byte gather per pixel)."""
    flat = np.asarray(img, np.uint8).reshape(-1, 3)
    packed = np.zeros((flat.shape[0], 4), np.uint8)
    packed[:, :3] = flat
    return packed.view(np.uint32).reshape(-1)


def _unpack_rgb(packed) -> np.ndarray:
    """uint32 (...) from _pack_rgb -> float32 (..., 3)."""
    return packed.view(np.uint8).reshape(packed.shape + (4,))[..., :3].astype(np.float32)


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


def _bilinear_packed(packed, h, w, px, py):
    """Bilinear lookup in a _pack_rgb image (H*W,) at float pixel coords (...,).

    Returns (float32 (..., 3) colours, int64 (...) flat index of the nearest pixel)."""
    px = np.clip(px, 0, w - 1.001)
    py = np.clip(py, 0, h - 1.001)
    x0 = px.astype(np.int64)
    y0 = py.astype(np.int64)
    fx = (px - x0).astype(np.float32)
    fy = (py - y0).astype(np.float32)
    i = y0 * w + x0
    c00 = _unpack_rgb(packed.take(i))
    c01 = _unpack_rgb(packed.take(i + 1))
    top = c00 + (c01 - c00) * fx[..., None]
    c10 = _unpack_rgb(packed.take(i + w))
    c11 = _unpack_rgb(packed.take(i + w + 1))
    bot = c10 + (c11 - c10) * fx[..., None]
    nearest = i + (fy >= 0.5) * w + (fx >= 0.5)
    return top + (bot - top) * fy[..., None], nearest


def _render_layers(world: SyntheticMap):
    """Cached flat layers of a map used by render_ground: packed facade (H*W,) uint32,
    height (H*W,) float32, labels (H*W,) uint8, ground labels (objects -> GRASS)."""
    c = world.layer_cache
    if "render" not in c:
        lab = np.ascontiguousarray(world.labels, np.uint8).reshape(-1)
        lut = np.arange(256, dtype=np.uint8)
        lut[[BUILDING, TREE]] = 0
        c["render"] = (_pack_rgb(world.facade),
                       np.ascontiguousarray(world.height, np.float32).reshape(-1), lab,
                       lut[lab])
    return c["render"]


#: Colours of the sky at the horizon and the zenith, and of distant haze (RGB), shared by
#: the ground panoramas here and the drone views (drone.py).
SKY_HORIZON = np.array([205, 218, 232], np.float32)
SKY_ZENITH = np.array([86, 134, 206], np.float32)
HAZE = np.array([190, 200, 210], np.float32)


def render_ground(world: SyntheticMap, x: float, y: float, size, *,
                  horizon_fraction: float = 1 / 3, north_column_fraction: float = 0.5,
                  heading_deg: float | None = None, fov_deg: float | None = None,
                  camera_height_m: float = 2.0, max_distance_m: float = 80.0,
                  num_samples: int = 96, haze_distance_m: float = 150.0,
                  sun_azimuth_deg: float | None = None):
    """Noiseless street-level view at map pixel (x, y).

    Each column casts a ray over the height map (``num_samples`` geometric distance
    steps from 0.5 m to max_distance_m); a row at elevation e sees the first sample whose
    elevation angle atan((height - camera_height) / distance) reaches e (a running
    maximum gives occlusion). Object hits take the facade colour (with floor bands and
    sun-side shading); flat ground is looked up (bilinear) at the exact distance
    camera_height / tan(-e); everything else is sky. Distant colours fade into haze.
    Everything that depends only on the view geometry is cached per (size, angles,
    distances, map resolution); the map's layers are cached on the map.

    Args:
      world: the map.
      x, y: camera position in map pixels (column, row).
      size: (H, W) output pixels.
      horizon_fraction, north_column_fraction, heading_deg, fov_deg: see view_angles.
      camera_height_m, max_distance_m, num_samples, haze_distance_m: geometry (metres).
      sun_azimuth_deg: the sun lighting the facades (sun-side walls and crowns brighter),
        degrees clockwise from north; None: the map's (the sun of its satellite shadows).
    Returns:
      (rgb float32 (H, W, 3) in [0, 255], labels uint8 (H, W) with SKY=255 for sky).
    """
    h_map, w_map = world.shape
    sun = world.sun_azimuth_deg if sun_azimuth_deg is None else float(sun_azimuth_deg)
    mpp = float(world.metres_per_pixel)
    hh, ww = (int(v) for v in size)
    if hh < 1 or ww < 1:
        raise ValueError(f"render_ground: size={size} must be positive (H, W)")
    cam = float(camera_height_m)
    fac, height, labels, glabels = _render_layers(world)
    e, a = _ray_geometry((hh, ww), float(horizon_fraction), float(north_column_fraction),
                         None if heading_deg is None else float(heading_deg),
                         None if fov_deg is None else float(fov_deg), cam,
                         float(max_distance_m), int(num_samples), mpp, float(haze_distance_m))
    k = int(num_samples)
    # ray samples (W, K): nearest map pixel of each
    ix = np.rint(a["ray_dx"] + x).astype(np.int64)
    iy = np.rint(a["ray_dy"] + y).astype(np.int64)
    np.clip(ix, 0, w_map - 1, out=ix)
    np.clip(iy, 0, h_map - 1, out=iy)
    midx = (iy * w_map + ix).ravel()
    hk = height.take(midx)                                   # (W*K,) metres
    # slope (height - camera) / distance; its running maximum along the ray gives
    # occlusion. hit[i, j] = number of samples of column j whose running maximum is
    # below tan(e_i) = #{k: r[j, k] > i}, r = number of rows looking above run[j, k]
    run = np.maximum.accumulate((hk.reshape(ww, k) - cam) * e["inv_d"], axis=1)
    r = np.searchsorted(e["neg_tan_e"], -run.ravel(), side="left")
    cnt = np.bincount(r * ww + e["col_rep"], minlength=(hh + 1) * ww)[:hh * ww]
    hit = k - np.cumsum(cnt.reshape(hh, ww), axis=0)         # (H, W)
    kk = np.minimum(hit, k - 1)
    fk = kk + e["col_k"]                                      # flat sample index
    z_hit = cam + e["d"].take(kk) * e["tan_e"][:, None]
    obj = (hit < k) & (hk.take(fk) > 0) & (z_hit >= -1e-6)

    rgb = np.empty((hh, ww, 3), np.float32)
    lab = np.empty((hh, ww), np.uint8)
    rb = e["rb"]
    rgb[:rb] = e["sky_rows"]
    lab[:rb] = SKY
    if rb < hh:      # flat ground below the horizon (objects are drawn over it)
        col, near = _bilinear_packed(fac, h_map, w_map, a["gnd_dx"] + x, a["gnd_dy"] + y)
        col *= e["keep_g"]
        col += e["haze_g"]
        rgb[rb:] = col
        lab[rb:] = glabels.take(near)
    oi = np.flatnonzero(obj)
    if oi.size:
        fo = fk.ravel().take(oi)
        mo = midx.take(fo)
        col = _unpack_rgb(fac.take(mo))
        olab = labels.take(mo)
        ko = fo % k
        band = np.where((olab == BUILDING) & ((z_hit.ravel().take(oi) % 3.0) > 1.9),
                        np.float32(0.72), np.float32(1.0))   # window rows
        side = (0.8 + 0.2 * np.cos(a["azim"] - math.radians(sun) + math.pi)).astype(np.float32)
        fac_o = band * side.take(oi % ww) * e["keep_k"].take(ko)
        col *= fac_o[:, None]
        col += e["haze_k"].take(ko)[:, None] * HAZE
        rgb.reshape(-1, 3)[oi] = col
        lab.reshape(-1)[oi] = olab
    return rgb, lab


def _tile_transform(img, x, y, n, s, rotation_deg, resample):
    """The square tile of side ``n`` map pixels centred on map pixel (x, y), turned so that
    ``rotation_deg`` (clockwise from north) points up, resampled to ``s`` x ``s``."""
    if rotation_deg == 0:
        box = (x + 0.5 - n / 2, y + 0.5 - n / 2, x + 0.5 + n / 2, y + 0.5 + n / 2)
        return img.resize((s, s), resample, box=box)
    m = max(1, int(math.ceil(n)))
    sc = n / m
    p = math.radians(rotation_deg)
    c, si = math.cos(p), math.sin(p)
    a, b, e_, f_ = sc * c, -sc * si, sc * si, sc * c
    cx, cy = x + 0.5, y + 0.5
    coeffs = (a, b, cx - (a + b) * m / 2, e_, f_, cy - (e_ + f_) * m / 2)
    out = img.transform((m, m), Image.AFFINE, coeffs, resample=resample)
    return out if m == s else out.resize((s, s), resample)


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
    s = square_side(size, "cut_tile")
    out = _tile_transform(world.pil_satellite(), x, y, extent_m / world.metres_per_pixel, s, rotation_deg,
                          Image.BILINEAR)
    return np.asarray(out, np.uint8)


def cut_label_tile(world: SyntheticMap, x: float, y: float, *, extent_m: float, size,
                   rotation_deg: float = 0.0) -> np.ndarray:
    """The class labels (``world.labels`` ids) of the tile :func:`cut_tile` cuts with the same
    arguments: uint8 (S, S), nearest-neighbour sampling of the same box / rotation."""
    s = square_side(size, "cut_label_tile")
    img = Image.fromarray(np.ascontiguousarray(world.labels, np.uint8), "L")
    out = _tile_transform(img, x, y, extent_m / world.metres_per_pixel, s, rotation_deg, Image.NEAREST)
    return np.asarray(out, np.uint8)


def square_side(size, who):
    """The side S of a square size ``S`` or ``(S, S)`` (>= 8 pixels); ValueError naming ``who``."""
    if isinstance(size, (tuple, list)):
        if len(size) != 2 or size[0] != size[1]:
            raise ValueError(f"{who}: satellite size {size} must be square (S, S)")
        size = size[0]
    size = int(size)
    if size < 8:
        raise ValueError(f"{who}: satellite size {size} must be >= 8 pixels")
    return size


def _to_uint8(out: np.ndarray) -> np.ndarray:
    """float (..., C) -> uint8, rounded half up and clipped to [0, 255] (in place)."""
    out += np.float32(0.5)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def _blur_axis(img: np.ndarray, sigma: float, axis: int, wrap: bool) -> np.ndarray:
    """Gaussian blur of a float32 (H, W, C) image along one axis (taps to 2.5 sigma);
    wrap=True wraps around, otherwise the edge pixels repeat."""
    r = max(1, int(math.ceil(2.5 * sigma)))
    n = img.shape[axis]
    idx = np.arange(-r, n + r)
    idx = idx % n if wrap else np.clip(idx, 0, n - 1)
    pad = img.take(idx, axis=axis)
    k = np.exp(-0.5 * (np.arange(r + 1) / sigma) ** 2)
    k = (k / (k[0] + 2 * k[1:].sum())).astype(np.float32)

    def sl(o):
        return pad[(slice(None),) * axis + (slice(r + o, r + o + n),)]

    out = sl(0) * k[0]
    for t in range(1, r + 1):
        out += (sl(-t) + sl(t)) * k[t]
    return out


def blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Approximate Gaussian blur of a uint8 (H, W, 3) image, sigma in pixels, wrapping
    around horizontally (panoramas). Returns float32 (H, W, 3).

    sigma < 2: exact separable kernel. Larger: box-average by f = ceil(sigma / 0.9)
    (variance (f^2 - 1) / 12), blur the small image with the remaining variance and
    scale back with bilinear interpolation (variance about f^2 / 6): much cheaper at
    native sizes (sigma up to 6.5 px on 1664-wide panoramas)."""
    if sigma <= 0.05:
        return img.astype(np.float32)
    if sigma < 2.0:
        out = _blur_axis(img.astype(np.float32), sigma, 1, True)
        return _blur_axis(out, sigma, 0, False)
    h, w, _ = img.shape
    f = int(math.ceil(sigma / 0.9))
    # pad (wrapping columns, repeated bottom rows) to multiples of f so that the box
    # grid and the bilinear grid stay aligned
    p = 2 * f
    pr = p + (-(w + 2 * p)) % f
    if w > pr:
        padded = np.concatenate([img[:, -p:], img, img[:, :pr]], axis=1)
    else:
        p, padded = 0, np.concatenate([img, img[:, -1:].repeat((-w) % f, 1)], axis=1)
    if h % f:
        padded = np.concatenate([padded, padded[-1:].repeat((-h) % f, 0)], axis=0)
    small = Image.fromarray(np.ascontiguousarray(padded)).reduce(f)
    rest = math.sqrt(max(sigma ** 2 - (f * f - 1) / 12 - f * f / 6, 0.0)) / f
    if rest > 0.2:
        sm = np.asarray(small, np.float32)
        sm = _blur_axis(_blur_axis(sm, rest, 1, False), rest, 0, False)
        small = Image.fromarray(_to_uint8(sm))
    big = small.resize((padded.shape[1], padded.shape[0]), Image.BILINEAR)
    return np.asarray(big, np.float32)[:h, p:p + w]


def degrade_ground(rgb: np.ndarray, labels: np.ndarray, rng: np.random.Generator, *,
                   strength: float = 1.0) -> np.ndarray:
    """Per-pair photometric changes of a rendered ground view.

    Sky tint and sinusoidal clouds, a random 3x3 colour mixing (about +-8 percent off
    identity), brightness (+-20 %), contrast (+-20 %), gamma, Gaussian blur (sigma
    0.3..1.0 px, scaled with the image width / 256, wrapping around horizontally) and
    sensor noise (sigma 3..8). The colour steps are folded into one affine map and the
    gamma is a lookup table on the uint8 image.

    Args:
      rgb: float32 (H, W, 3) in [0, 255] from render_ground (not modified).
      labels: uint8 (H, W) from render_ground (SKY marks sky).
      rng: numpy Generator (determinism: same state -> same output).
      strength: scales every jitter (0 = only the uint8 conversion).
    Returns:
      uint8 (H, W, 3).
    """
    h, w, _ = rgb.shape
    s = float(strength)
    if s <= 0:
        return _to_uint8(np.array(rgb, np.float32))
    out = np.array(rgb, np.float32)
    rows = np.flatnonzero((labels == SKY).any(axis=1))
    if rows.size:                      # sky tint and clouds, on the rows holding sky
        r0, r1 = int(rows[0]), int(rows[-1]) + 1
        tint = 1 + s * rng.uniform(-0.12, 0.12, 3).astype(np.float32)
        ph = rng.uniform(0, 2 * np.pi, 3)
        fr = rng.integers(1, 5, 3)
        xx = np.arange(w) / w * (2 * np.pi)
        yy = np.arange(r0, r1)[:, None] * (3 / max(h, 1))
        cl = (np.sin(fr[0] * xx + ph[0]) + 0.5 * np.sin(fr[2] * xx + ph[2]))[None, :] \
            + np.sin(fr[1] * xx[None, :] + yy + ph[1])
        cover = rng.uniform(0.5, 2.0)
        cloud = (np.clip(cl - cover, 0, 1) * s).astype(np.float32)[..., None]
        blk = out[r0:r1]
        sky = (labels[r0:r1] == SKY)[..., None]
        np.copyto(blk, blk * tint * (1 - cloud) + np.float32(235) * cloud, where=sky)
    # colour mixing, contrast about the mean, brightness: one affine map
    mix = np.eye(3) + s * rng.uniform(-0.08, 0.08, (3, 3)).astype(np.float32)
    contrast = 1 + s * rng.uniform(-0.2, 0.2)
    bright = 1 + s * rng.uniform(-0.2, 0.2)
    mean = float((out.reshape(-1, 3).mean(0, dtype=np.float64) @ mix.T).mean())
    a = (bright * contrast * mix).astype(np.float32)
    b = np.float32(bright * (1 - contrast) * mean)
    u8 = _to_uint8(np.matmul(out.reshape(-1, 3), a.T).reshape(h, w, 3) + b)
    gamma = 1 + s * rng.uniform(-0.15, 0.15)
    lut = np.rint(255 * (np.arange(256) / 255) ** gamma).astype(np.uint8)
    u8 = lut.take(u8)
    sigma = s * rng.uniform(0.3, 1.0) * max(w / 256, 0.5)
    out = blur(u8, sigma)
    noise = normal_noise(rng, out.shape)
    out += noise * np.float32(s * rng.uniform(3, 8))
    return _to_uint8(out)


def degrade_satellite(tile: np.ndarray, rng: np.random.Generator, *,
                      strength: float = 1.0) -> np.ndarray:
    """Mild per-tile jitter of a satellite tile (brightness +-10 %, per-channel gain +-5 %,
    noise sigma 1..3). uint8 (S, S, 3) -> uint8 (S, S, 3)."""
    s = float(strength)
    if s <= 0:
        return tile.copy()
    gain = ((1 + s * rng.uniform(-0.1, 0.1)) * (1 + s * rng.uniform(-0.05, 0.05, 3))
            ).astype(np.float32)
    out = tile.astype(np.float32)
    out *= gain
    noise = normal_noise(rng, out.shape)
    out += noise * np.float32(s * rng.uniform(1, 3))
    return _to_uint8(out)


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
