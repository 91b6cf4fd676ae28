"""Coordinate reference systems through pyproj (the optional ``[geo]`` extra).

Conventions: a CRS is anything ``pyproj.CRS`` accepts ("EPSG:32617", a WKT, ...);
``None`` means a local metric frame (easting/northing in metres with no known place on
Earth: distances and plots work, latitude/longitude do not). Points are (x, y) =
(easting, northing) in metres in a projected CRS, and (lat, lon) in degrees (WGS84,
EPSG:4326) for geographic output; arrays broadcast. Conversions are pyproj
``Transformer``s with ``always_xy=True``, never hand-written formulas.
"""
from __future__ import annotations

import functools
import importlib
from typing import Optional

import numpy as np

WGS84 = "EPSG:4326"
GEO_EXTRA_HINT = "pip install 'cvmnet-tf[geo]'"


class GeoExtraMissing(ImportError):
    """An optional field library (rasterio / pyproj) is needed but not installed."""


def require_geo(module: str, why: str):
    """Import ``module`` ("rasterio" or "pyproj") or raise :class:`GeoExtraMissing` with a
    one-line message saying what needed it and how to install the ``[geo]`` extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise GeoExtraMissing(f"{why} needs {module}, part of the optional [geo] extra: {GEO_EXTRA_HINT}") from None


@functools.lru_cache(maxsize=64)
def _crs(crs: str):
    pyproj = require_geo("pyproj", f"the coordinate system {crs!r}")
    try:
        return pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as err:
        raise ValueError(f"unknown coordinate system {crs!r}: {str(err).splitlines()[0]}") from None


@functools.lru_cache(maxsize=64)
def _transformer(src: str, dst: str):
    pyproj = require_geo("pyproj", f"converting {src} to {dst}")
    return pyproj.Transformer.from_crs(_crs(src), _crs(dst), always_xy=True)


def check_metric_crs(crs: Optional[str], what: str) -> Optional[str]:
    """``crs`` if it is None (local metres) or a projected CRS in metres, else ValueError
    naming ``what`` (tiling and distances are in metres)."""
    if crs is None:
        return None
    c = _crs(str(crs))
    units = {a.unit_name for a in c.axis_info}
    if not c.is_projected or units - {"metre", "meter"}:
        raise ValueError(f"{what}: coordinate system {crs!r} is not projected in metres ({c.name}); reproject it "
                         "to a UTM zone first (e.g. gdalwarp -t_srs EPSG:326<zone>)")
    return str(crs)


def utm_crs(lat: float, lon: float) -> str:
    """The WGS84 UTM zone CRS ("EPSG:326zz" north / "EPSG:327zz" south) containing a point,
    from pyproj's database."""
    require_geo("pyproj", "choosing a UTM zone")
    from pyproj.aoi import AreaOfInterest
    from pyproj.database import query_utm_crs_info

    lat, lon = float(lat), float(lon)
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"latitude/longitude ({lat}, {lon}) out of range")
    info = query_utm_crs_info(datum_name="WGS 84", area_of_interest=AreaOfInterest(lon, lat, lon, lat))
    if not info:
        raise ValueError(f"no UTM zone covers ({lat}, {lon})")
    return f"{info[0].auth_name}:{info[0].code}"


def latlon_to_xy(lat, lon, crs: str):
    """(x, y) metres in ``crs`` of WGS84 (lat, lon) degrees."""
    x, y = _transformer(WGS84, str(crs)).transform(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
    return np.asarray(x, np.float64), np.asarray(y, np.float64)


def xy_to_latlon(x, y, crs: Optional[str]):
    """WGS84 (lat, lon) degrees of (x, y) in ``crs``; NaN arrays for a local frame (None)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    if crs is None:
        nan = np.full(np.broadcast(x, y).shape, np.nan)
        return nan, nan.copy()
    lon, lat = _transformer(str(crs), WGS84).transform(x, y)
    return np.asarray(lat, np.float64), np.asarray(lon, np.float64)
