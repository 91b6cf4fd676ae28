"""Localize your own ground images against a geo-referenced reference database.

- :mod:`.coords`: CRS conversions (lat/lon <-> UTM and any projected CRS) via pyproj;
  ``require_geo`` gives a one-line error when the optional ``[geo]`` extra is missing.
- :mod:`.maps`: a GeoTIFF (rasterio), a map folder (``map.json`` + ``map.png``), or an
  image with a JSON / world-file sidecar, and its tiling at a stride in metres.
- :mod:`.tables`: a folder of tiles (or query truths) listed in a CSV with ``path`` and
  ``lat,lon`` or ``easting,northing``.
- :mod:`.index`: the database index file (descriptors, coordinates, model fingerprint,
  preprocessing), built once, memory-mapped when loaded, refusing another model.
- :mod:`.search`: top-K tiles per query, CSV / JSON; :mod:`.report`: one PNG per query.

Models come from :mod:`cvmnet_tf.inference` (a checkpoint, a ``.keras`` file or a
SavedModel: :func:`cvmnet_tf.inference.load_encoder`, whose ``info`` carries the model
fingerprint and :func:`encoder_preprocessing` the settings an index records). The two
steps ``cvmnet-query build`` / ``cvmnet-query search`` run::

    enc = load_encoder("runs/demo/Model/cvm_net_i/12")
    fp, prep = enc.info["model_fingerprint"], encoder_preprocessing(enc)
    index = build_index("idx.npz", "map.tif", enc.satellite, fp, prep, tile_m=100, stride_m=10)
    query_index_files("idx.npz", enc.ground, "photos/", "out/", model_fingerprint=fp,
                      preprocessing=prep, top_k=5, truth_csv=None)

Importing the package loads numpy only (TensorFlow, PIL, matplotlib, rasterio and pyproj
load when a function needs them).
"""
from cvmnet_tf.georef.coords import GeoExtraMissing, latlon_to_xy, require_geo, utm_crs, xy_to_latlon
from cvmnet_tf.georef.index import (IndexMismatchError, TileIndex, build_index, build_map_index, build_tile_index,
                                    encoder_preprocessing, load_index)
from cvmnet_tf.georef.maps import GeoRaster, default_tile_m, read_geotiff, read_image_with_sidecar, read_map
from cvmnet_tf.georef.report import plot_query_report
from cvmnet_tf.georef.search import (QueryResult, list_query_images, query_index_files, run_queries, top_k_search,
                                     write_results)
from cvmnet_tf.georef.tables import LocatedImages, read_located_csv

__all__ = [
    "GeoExtraMissing", "GeoRaster", "IndexMismatchError", "LocatedImages", "QueryResult", "TileIndex", "build_index",
    "build_map_index", "build_tile_index", "default_tile_m", "encoder_preprocessing", "latlon_to_xy",
    "list_query_images", "load_index", "plot_query_report", "query_index_files", "read_geotiff",
    "read_image_with_sidecar", "read_located_csv", "read_map", "require_geo", "run_queries", "top_k_search", "utm_crs",
    "write_results", "xy_to_latlon",
]
