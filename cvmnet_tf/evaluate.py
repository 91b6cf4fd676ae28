"""``python -m cvmnet_tf.evaluate``: the ``cvmnet-evaluate`` command (:mod:`cvmnet_tf.cli.evaluate`)."""
from cvmnet_tf.cli.evaluate import main

if __name__ == "__main__":
    main()
