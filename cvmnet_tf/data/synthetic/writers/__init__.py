"""Writers of the synthetic world in the layouts of the real distributions, one module each:

- :mod:`.cvusa`: ``bingmap/19/``, ``streetview/panos/``, ``splits/*-19zl.csv``;
- :mod:`.cvact`: ``ACT_data.mat``, ``streetview/``, ``satview_polish/``;
- :mod:`.vohays`: gt-crossview list files, 8 training cities and Denver;
- :mod:`.university1652`: the University-1652 folder tree (drone views);
- :mod:`.vigor`: the VIGOR layout (per-city panoramas and satellite tiles on a half-tile grid,
  same-area and cross-area label files with positives, semi-positives and offsets);
- :mod:`.map`: one geo-referenced map with query panoramas (the localization experiment).

The dataset registry (:data:`cvmnet_tf.data.DATASETS`) names the writer of each dataset;
:func:`cvmnet_tf.data.synthetic.write_dataset` dispatches through it. Every layout also
gets ``synthetic_meta.json`` (generation parameters, sizes, counts); the real loaders
ignore it.
"""
