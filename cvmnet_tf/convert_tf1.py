"""``python -m cvmnet_tf.convert_tf1``: the ``cvmnet-convert-tf1`` command (:mod:`cvmnet_tf.cli.convert_tf1`)."""
from cvmnet_tf.cli.convert_tf1 import main

if __name__ == "__main__":
    main()
