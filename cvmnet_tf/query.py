"""``python -m cvmnet_tf.query``: the ``cvmnet-query`` command (:mod:`cvmnet_tf.cli.query`)."""
from cvmnet_tf.cli.query import main

if __name__ == "__main__":
    main()
