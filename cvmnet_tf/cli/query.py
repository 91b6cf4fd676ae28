"""``cvmnet-query``: localize your own ground images against a geo-referenced database.

Two steps: build the database's descriptors once into an index file, then search it as
often as wanted (the index records the model's fingerprint and preprocessing, and refuses
another model):

    cvmnet-query build --checkpoint runs/demo/Model/cvm_net_i/12 --map data/synthetic_map \\
        --stride_m 10 --output db.npz                       # a map (GeoTIFF, image + bounds, map folder)
    cvmnet-query build --checkpoint CKPT --tiles tiles.csv --output db.npz   # a folder of tiles + CSV
    cvmnet-query search --checkpoint CKPT --index db.npz --queries photos/ --output_dir out/ \\
        [--top_k 5] [--truth truth.csv]

``--map``: a GeoTIFF (rasterio, the ``[geo]`` extra), a plain image with ``<image>.json``
(``bounds`` west/south/east/north or ``metres_per_pixel`` + ``origin_easting`` /
``origin_northing``, optional ``crs``) or a world file, or a folder with ``map.png`` +
``map.json`` (``cvmnet-synthetic --map``); tiles of ``--tile_m`` metres every
``--stride_m``. ``--tiles``: a CSV with ``path`` and ``lat,lon`` (WGS84, needs pyproj) or
``easting,northing`` (metres, ``--crs``). ``--queries``: one image or a folder (panoramas
for a panorama model, limited-FoV photos for a model trained with ``--fov``). ``search``
writes ``results.csv``, ``results.json`` (top-K tiles with coordinates and similarity per
query) and one ``report_<n>_<name>.png`` per query (the query, the top-K tiles, the
similarity over the map with the best tile marked). ``--checkpoint`` is a checkpoint
folder, a ``.keras`` file or a SavedModel from ``cvmnet-export``.
"""
from __future__ import annotations

import os
import sys

from cvmnet_tf.cli.common import EXIT_USAGE, UsageError, one_line, run

__all__ = ["main", "STEPS"]

STEPS = ("build", "search")


def _common_flags(fv) -> None:
    from absl import flags

    from cvmnet_tf.data.registry import DATASET_NAMES

    flags.DEFINE_string("checkpoint", None, "Trained model: checkpoint folder, .keras file or SavedModel folder.",
                        flag_values=fv)
    flags.DEFINE_enum("dataset", None, list(DATASET_NAMES), "Ground preprocessing of a checkpoint (default: its "
                      "training dataset).", flag_values=fv)
    flags.DEFINE_integer("batch_size", 16, "Images per forward pass.", flag_values=fv)
    flags.DEFINE_string("crs", None, "Coordinate system of easting/northing columns and of a map without one "
                        "(e.g. EPSG:32648); lat/lon columns choose their UTM zone themselves.", flag_values=fv)


def define_build_flags(fv=None) -> None:
    from absl import flags

    fv = fv or flags.FLAGS
    _common_flags(fv)
    flags.DEFINE_string("map", None, "Geo-referenced map: GeoTIFF, image with a .json / world-file sidecar, or a map "
                        "folder (map.png + map.json).", flag_values=fv)
    flags.DEFINE_string("tiles", None, "CSV of satellite tiles: path, and lat,lon or easting,northing.",
                        flag_values=fv)
    flags.DEFINE_float("tile_m", None, "Map tiles' side on the ground in metres (required, except for a map folder: "
                       "map.json tile_extent_m, else 100 as the synthetic world).",
                       flag_values=fv)
    flags.DEFINE_float("stride_m", None, "Distance between map tile centres in metres.", flag_values=fv)
    flags.DEFINE_string("output", None, "Index file to write (.npz).", flag_values=fv)
    flags.DEFINE_boolean("overwrite", False, "Replace an existing --output.", flag_values=fv)
    flags.mark_flags_as_required(["checkpoint", "output"], flag_values=fv)


def define_search_flags(fv=None) -> None:
    from absl import flags

    fv = fv or flags.FLAGS
    _common_flags(fv)
    flags.DEFINE_string("index", None, "Index file written by cvmnet-query build.", flag_values=fv)
    flags.DEFINE_string("queries", None, "Ground image, or a folder of them (.jpg/.jpeg/.png).", flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Folder for results.csv, results.json and the PNG reports.",
                        flag_values=fv)
    flags.DEFINE_integer("top_k", 5, "Tiles listed per query.", flag_values=fv)
    flags.DEFINE_string("truth", None, "Optional CSV of the queries' true positions (path, and lat,lon or "
                        "easting,northing): adds the error of each result.", flag_values=fv)
    flags.DEFINE_boolean("report", True, "Write one PNG report per query.", flag_values=fv)
    flags.DEFINE_integer("max_reports", 50, "At most this many PNG reports (0: none).", flag_values=fv)
    flags.mark_flags_as_required(["checkpoint", "index", "queries", "output_dir"], flag_values=fv)


def _encoder(f):
    from cvmnet_tf.inference import load_encoder

    if not os.path.exists(f.checkpoint):
        raise UsageError("does not exist", "checkpoint", f.checkpoint)
    if f.batch_size < 1:
        raise UsageError("must be >= 1", "batch_size", f.batch_size)
    enc = load_encoder(f.checkpoint, f.dataset)
    if not enc.info.get("model_fingerprint"):
        raise ValueError(f"--checkpoint={f.checkpoint!r}: this SavedModel was exported without a model fingerprint; "
                         "export it again with cvmnet-export")
    return enc


def _build() -> int:
    from absl import flags

    from cvmnet_tf import georef

    f = flags.FLAGS
    if (f.map is None) == (f.tiles is None):
        raise UsageError("give exactly one of --map (a geo-referenced map) and --tiles (a CSV of tiles)")
    source = f.map or f.tiles
    flag = "map" if f.map else "tiles"
    if not os.path.exists(source):
        raise UsageError("does not exist", flag, source)
    if f.tiles and (f.tile_m is not None or f.stride_m is not None):
        raise UsageError("--tile_m / --stride_m tile a --map; a --tiles CSV lists its tiles already")
    tile_m = f.tile_m
    if f.map:
        tile_m = tile_m if tile_m is not None else georef.default_tile_m(f.map)
        if tile_m is None:
            raise UsageError("is required for this map (its tiles' side in metres)", "tile_m")
        if f.stride_m is None:
            raise UsageError("is required with --map (distance between tile centres in metres)", "stride_m")
        for flag, value in (("tile_m", tile_m), ("stride_m", f.stride_m)):
            if not value > 0:
                raise UsageError("must be a positive number of metres", flag, value)
    if os.path.exists(f.output) and not f.overwrite:
        raise UsageError("exists; pass --overwrite to rebuild it", "output", f.output)
    if not f.output.endswith(".npz"):
        raise UsageError("must end in .npz", "output", f.output)
    enc = _encoder(f)
    prep = georef.encoder_preprocessing(enc)
    index = georef.build_index(f.output, source if f.map else f.tiles, enc.satellite, enc.info["model_fingerprint"],
                               prep, tile_m=tile_m if f.map else None, stride_m=f.stride_m if f.map else None,
                               crs=f.crs, batch_size=f.batch_size, overwrite=f.overwrite)
    grid = index.grid
    where = (f"{grid['rows']} x {grid['cols']} tiles of {grid['tile_m']:g} m every {grid['stride_m']:g} m"
             if grid else f"{index.num_tiles} tiles from {f.tiles}")
    print(f"wrote {f.output}: {index.num_tiles} tiles ({where}), {index.meta['dim']}-d descriptors, "
          f"crs {index.crs or 'local metres'}, model {index.meta['model_fingerprint'][:16]}, "
          f"{len(index.meta['skipped'])} tile(s) skipped")
    return 0


def _search() -> int:
    from absl import flags

    from cvmnet_tf import georef

    f = flags.FLAGS
    for flag in ("index", "queries"):
        if not os.path.exists(f[flag].value):
            raise UsageError("does not exist", flag, f[flag].value)
    if f.truth is not None and not os.path.isfile(f.truth):
        raise UsageError("does not exist", "truth", f.truth)
    if f.top_k < 1:
        raise UsageError("must be >= 1", "top_k", f.top_k)
    if f.max_reports < 0:
        raise UsageError("must be >= 0", "max_reports", f.max_reports)
    georef.load_index(f.index)  # a clear error for a file that is no index, before the model loads
    enc = _encoder(f)
    out = georef.query_index_files(f.index, enc.ground, f.queries, f.output_dir,
                                   model_fingerprint=enc.info["model_fingerprint"],
                                   preprocessing=georef.encoder_preprocessing(enc), top_k=f.top_k,
                                   truth_csv=f.truth, crs=f.crs, reports=f.report and f.max_reports > 0,
                                   max_reports=f.max_reports, batch_size=f.batch_size)
    _print_results(out)
    return 0


def _print_results(out: dict) -> None:
    for q in out["queries"]:
        best = q["top_k"][0]
        where = (f"lat {best['lat']:.6f}, lon {best['lon']:.6f}" if best["lat"] is not None
                 else f"E {best['easting']:.1f}, N {best['northing']:.1f}")
        err = "" if q["error_m"] is None else f", {q['error_m']:.1f} m from the truth"
        print(f"{os.path.basename(q['query'])}: tile {os.path.basename(best['tile'])} at {where} "
              f"(similarity {best['similarity']:.4f}{err})")
    s = out["summary"]
    line = (f"{s['num_queries']} queries, {s['num_skipped']} skipped, {s['num_tiles']} tiles, "
            f"{s['num_distinct_best_tiles']} distinct best tiles")
    if "mean_error_m" in s:
        line += (f"; mean error {s['mean_error_m']:.1f} m, median {s['median_error_m']:.1f} m "
                 f"(a random tile: {s['chance_mean_error_m']:.1f} m on average)")
    print(line)
    for p in [out["csv"], out["json"], *out["reports"]]:
        print("  " + p)


def main(argv=None) -> None:
    """Entry point of ``cvmnet-query`` / ``python -m cvmnet_tf.query``: ``build`` or ``search``."""
    argv = list(sys.argv if argv is None else argv)
    step = argv[1] if len(argv) > 1 else None
    if step in ("-h", "--help", "--helpfull"):
        print(__doc__)
        sys.exit(0)
    if step not in STEPS:
        given = f" (got {step!r})" if step else ""
        print(f"error: {one_line('cvmnet-query needs a step first: build or search' + given + '; e.g. cvmnet-query build --help')}",
              file=sys.stderr)
        sys.exit(EXIT_USAGE)
    if step == "build":
        define_build_flags()
        run(_build, [f"{argv[0]} build"] + argv[2:], usage=__doc__)
    else:
        define_search_flags()
        run(_search, [f"{argv[0]} search"] + argv[2:], usage=__doc__)
