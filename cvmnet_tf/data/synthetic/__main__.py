"""``python -m cvmnet_tf.data.synthetic``: the ``cvmnet-synthetic`` command (:mod:`cvmnet_tf.cli.synthetic`)."""
from cvmnet_tf.cli.synthetic import main

if __name__ == "__main__":
    main()
