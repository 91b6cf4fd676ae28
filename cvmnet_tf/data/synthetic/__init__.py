"""Synthetic cross-view world: the built-in default data of cvmnet-tf.

A procedural, geo-referenced top-down map (roads, buildings with roofs and shadows,
fields, trees, water) from which square satellite tiles and geometrically consistent
street-level panoramas (ray-cast polar views with occlusion, another palette, per-pair
photometric jitter, blur and noise) are cut. numpy + pillow + scipy only (no TensorFlow).

Main entry points:
  write_dataset(out_dir, layout="cvusa"|"cvact"|"vohays"|"university1652", num_train, num_val, ...)
  render_drone_view(world, x, y, size, ...)   # oblique drone view (University-1652 layout)
  write_map(out_dir, ...)                 # whole map + bounds + query panoramas
  iter_pairs(num, ...)                    # in-memory pairs
  generate_map / cut_tile / render_ground / polar_warp   # building blocks
Command line: python -m cvmnet_tf.data.synthetic --help
"""
from cvmnet_tf.data.synthetic.layouts import (LAYOUTS, NATIVE_SIZES, SMALL_SIZES,
                                              VOHAYS_TEST_CITY, VOHAYS_TRAIN_CITIES, Pair,
                                              WorldConfig, iter_pairs, write_dataset,
                                              write_map)
from cvmnet_tf.data.synthetic.drone import render_drone_view
from cvmnet_tf.data.synthetic.render import (cut_tile, degrade_ground, degrade_satellite,
                                             polar_warp, render_ground, view_angles)
from cvmnet_tf.data.synthetic.world import (CLASS_NAMES, SyntheticMap, WorldStyle,
                                            generate_map, sample_locations)

__all__ = ["LAYOUTS", "NATIVE_SIZES", "SMALL_SIZES", "VOHAYS_TEST_CITY",
           "VOHAYS_TRAIN_CITIES", "Pair", "WorldConfig", "iter_pairs", "write_dataset",
           "write_map", "cut_tile", "degrade_ground", "degrade_satellite", "polar_warp",
           "render_ground", "view_angles", "CLASS_NAMES", "SyntheticMap", "WorldStyle",
           "generate_map", "sample_locations", "render_drone_view"]
