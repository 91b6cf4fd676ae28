"""``python -m cvmnet_tf.export``: the ``cvmnet-export`` command (:mod:`cvmnet_tf.cli.export`)."""
from cvmnet_tf.cli.export import main

if __name__ == "__main__":
    main()
