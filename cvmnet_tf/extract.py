"""``python -m cvmnet_tf.extract``: the ``cvmnet-extract`` command (:mod:`cvmnet_tf.cli.extract`)."""
from cvmnet_tf.cli.extract import main

if __name__ == "__main__":
    main()
