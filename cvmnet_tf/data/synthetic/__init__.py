"""Synthetic cross-view world: the built-in default data of cvmnet-tf.

A procedural, geo-referenced top-down map (roads, buildings with roofs and shadows,
fields, trees, water) from which square satellite tiles and geometrically consistent
street-level panoramas (ray-cast polar views with occlusion, another palette, per-pair
photometric jitter, blur and noise) are cut. numpy + pillow + scipy only (no TensorFlow).

Modules:
  world      generate_map, sample_locations: the map (one region)
  render     cut_tile, render_ground, degrade_*, polar_warp: views of a map
  drone      render_drone_view: oblique drone views (University-1652)
  config     WorldConfig, Pair, seeding
  pairs      iter_pairs: pairs of a tile and its ground view, region after region
  buildings  University-1652 classes: places, flight plans, their images
  runner     worker processes, staged atomic writes, the pair-layout driver
  files      image encoding and atomic file writes
  writers/   one writer per layout (cvusa, cvact, vohays, university1652) and the map

Main entry points:
  write_dataset(out_dir, layout=<a dataset with a synthetic writer>, num_train, num_val, ...)
  write_map(out_dir, ...)                 # whole map + bounds + query panoramas
  iter_pairs(num, ...)                    # in-memory pairs
Command line: ``cvmnet-synthetic`` (``python -m cvmnet_tf.data.synthetic --help``).
"""
from cvmnet_tf.data.synthetic.config import Pair, WorldConfig
from cvmnet_tf.data.synthetic.drone import render_drone_view
from cvmnet_tf.data.synthetic.pairs import iter_pairs
from cvmnet_tf.data.synthetic.render import (cut_tile, degrade_ground, degrade_satellite, polar_warp,
                                             render_ground, view_angles)
from cvmnet_tf.data.synthetic.world import CLASS_NAMES, SyntheticMap, WorldStyle, generate_map, sample_locations
from cvmnet_tf.data.synthetic.writers import cvact as cvact_writer
from cvmnet_tf.data.synthetic.writers import cvusa as cvusa_writer
from cvmnet_tf.data.synthetic.writers import vohays as vohays_writer
from cvmnet_tf.data.synthetic.writers.map import write_map

__all__ = ["LAYOUTS", "ALL_LAYOUTS", "NATIVE_SIZES", "SMALL_SIZES", "VOHAYS_TEST_CITY", "VOHAYS_TRAIN_CITIES",
           "Pair", "WorldConfig", "iter_pairs", "write_dataset", "write_map", "cut_tile", "degrade_ground",
           "degrade_satellite", "polar_warp", "render_ground", "view_angles", "CLASS_NAMES", "SyntheticMap",
           "WorldStyle", "generate_map", "sample_locations", "render_drone_view", "synthetic_layouts"]

_PAIR_LAYOUTS = (cvusa_writer.LAYOUT, cvact_writer.LAYOUT, vohays_writer.LAYOUT)
#: The pair layouts and their default sizes ((satellite (H, W), ground (H, W))).
LAYOUTS = tuple(layout.name for layout in _PAIR_LAYOUTS)
NATIVE_SIZES = {layout.name: layout.native for layout in _PAIR_LAYOUTS}
SMALL_SIZES = {layout.name: layout.small for layout in _PAIR_LAYOUTS}
VOHAYS_TRAIN_CITIES = vohays_writer.TRAIN_CITIES
VOHAYS_TEST_CITY = vohays_writer.TEST_CITY


def synthetic_layouts() -> tuple:
    """The datasets the synthetic world can write (registry entries with a writer)."""
    from cvmnet_tf.data.registry import DATASETS
    return tuple(name for name, spec in DATASETS.items() if spec.synthetic is not None)


ALL_LAYOUTS = synthetic_layouts()


def write_dataset(out_dir: str, layout: str = "cvusa", num_train: int = 64, num_val: int = 16, seed: int = 0,
                  satellite_size=None, ground_size=None, num_test=None, native_sizes: bool = False,
                  config=None, jpeg_quality: int = 90, write_annotations: bool = False, workers=None) -> dict:
    """Writes a complete synthetic dataset in a real distribution's layout.

    Args:
      out_dir: dataset root (created): a missing or empty folder, or one the generator
        wrote (its files of the same names are replaced); any other folder is refused
        (FileExistsError), so a user's dataset is never overwritten.
      layout: a dataset with a synthetic writer (:func:`synthetic_layouts`: "cvusa",
        "cvact", "vohays", "university1652"; the files are described in
        :mod:`cvmnet_tf.data.synthetic.writers`). For University-1652 num_train / num_val
        count training / test buildings, 4 drone views each, and the sizes default to
        128x128 satellite and drone images.
      num_train, num_val: pairs per split. Vo & Hays has no val split: its Denver test
        set gets num_test pairs, or num_val when num_test is None.
      seed: everything is a deterministic function of (seed, layout, sizes, config) --
        byte-identical files for any number of workers.
      satellite_size: (S, S) satellite pixels; default small (256, 256), Vo & Hays (128, 128).
      ground_size: (H, W) ground pixels; CVUSA (64, 256), CVACT (128, 256) -- the FULL image
        height, content in the central half rows --, Vo & Hays (128, 128) square crops.
      num_test: CVACT: extra pairs appended to valSetAll (ACT_test); Vo & Hays: test pairs;
        CVUSA: must be None or 0.
      native_sizes: use the real sizes (CVUSA 750x750 / 224x1232 -- the only panorama size
        the released CVUSA input pipeline accepts at the paper image size --, CVACT
        1200x1200 / 832x1664, Vo & Hays 250x250 / 230x230); conflicts with explicit sizes.
      config: WorldConfig (tile extent, spacing, jitter strength...).
      jpeg_quality: JPEG quality of all images.
      write_annotations: CVUSA only: also write streetview/annotations/<id>.png label maps.
      workers: processes that render and encode pairs (chunks of a region's positions;
        images are written under temporary names and renamed in order by this process).
        None: os.cpu_count() from 200 pairs on, 1 (this process) below.
    Returns:
      dict with "layout", "out_dir", "counts" {split: n}, "satellite_size", "ground_size",
      "workers", "seconds", "pairs_per_second" (also saved to synthetic_meta.json).
    """
    from cvmnet_tf.data.registry import DATASETS

    spec = DATASETS.get(layout)
    if spec is None or spec.synthetic is None:
        raise ValueError(f"write_dataset: layout={layout!r} must be one of {synthetic_layouts()}")
    return spec.synthetic.write(out_dir, num_train, num_val, seed=seed, satellite_size=satellite_size,
                                ground_size=ground_size, num_test=num_test, native_sizes=native_sizes,
                                config=config, jpeg_quality=jpeg_quality, write_annotations=write_annotations,
                                workers=workers)
