"""``python -m cvmnet_tf.reproduce``: the ``cvmnet-reproduce`` command (:mod:`cvmnet_tf.cli.reproduce`)."""
from cvmnet_tf.cli.reproduce import main

if __name__ == "__main__":
    main()
