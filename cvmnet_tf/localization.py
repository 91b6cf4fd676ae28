"""``python -m cvmnet_tf.localization``: the ``cvmnet-localize`` command (:mod:`cvmnet_tf.cli.localize`)."""
from cvmnet_tf.cli.localize import main

if __name__ == "__main__":
    main()
