"""The command-line tools, one module each (absl flags; thin: they check flags and call the
library). Installed as console scripts (``setup.cfg``); ``python -m cvmnet_tf.<tool>`` and
the ``train_*.py`` scripts run the same ``main`` functions.

===========================  ======================================  =============================
console script               module                                  also
===========================  ======================================  =============================
cvmnet-train-<dataset>       :mod:`.train` (one per trainable        ``python train_<dataset>.py``
                             dataset of the registry)
cvmnet-evaluate              :mod:`.evaluate`                        ``python -m cvmnet_tf.evaluate``
cvmnet-export                :mod:`.export`                          ``python -m cvmnet_tf.export``
cvmnet-extract               :mod:`.extract`                         ``python -m cvmnet_tf.extract``
cvmnet-convert-tf1           :mod:`.convert_tf1`                     ``python -m cvmnet_tf.convert_tf1``
cvmnet-localize              :mod:`.localize`                        ``python -m cvmnet_tf.localization``
cvmnet-synthetic             :mod:`.synthetic`                       ``python -m cvmnet_tf.data.synthetic``
cvmnet-query                 :mod:`.query` (``build`` / ``search``)  ``python -m cvmnet_tf.query``
cvmnet-reproduce             :mod:`.reproduce`                       ``python -m cvmnet_tf.reproduce``
===========================  ======================================  =============================

Conventions shared by every command: :mod:`.common`.
"""
