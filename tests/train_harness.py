"""One tiny training run in its own process, for tests/test_multi_worker.py and
tests/test_distribute.py: ``setup`` + ``run_epoch`` + ``record_epoch`` of the training loop
(what ``train()`` does), saving the trainable weights and the step losses after every epoch
to ``<out>_epoch<N>.npz`` (and those it starts from, ``<out>_epoch<first - 1>.npz``).

    python tests/train_harness.py OUT DATA_DIR OUTPUT_DIR STRATEGY EPOCHS [--resume] [--split_cpu]
        [--mixed] [--stop_after N]

``--split_cpu``: split the CPU into 2 logical devices first (``--strategy=mirrored`` then has
2 replicas). Under ``multi_worker`` the cluster comes from ``TF_CONFIG``.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: The tiny run (TINY_TRAIN_FLAGS of tests/conftest.py as keywords): CVM-Net-I at 1/16 width.
TINY = dict(satellite_size=(32, 32), ground_size=(16, 64), width=0.0625, batch_size=8, max_steps_per_epoch=2,
            max_eval_pairs=16, verbose=1)


def main(argv=None):
    parser = argparse.ArgumentParser()
    for name in ("out", "data_dir", "output_dir", "strategy"):
        parser.add_argument(name)
    parser.add_argument("epochs", type=int)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--split_cpu", action="store_true")
    parser.add_argument("--mixed", action="store_true")
    parser.add_argument("--stop_after", type=int, default=None, help="leave after this epoch (as if killed)")
    args = parser.parse_args(argv)
    import tensorflow as tf

    if args.split_cpu:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from cvmnet_tf.training import make_config
    from cvmnet_tf.training.loop import record_epoch, run_epoch, setup

    config = make_config("cpu_demo", data_dir=args.data_dir, output_dir=args.output_dir, strategy=args.strategy,
                         epochs=args.epochs, resume=args.resume, mixed_precision=args.mixed, **TINY)
    run = setup(config)
    print(f"replicas {run.strategy.num_replicas_in_sync}", flush=True)

    def save(epoch, losses):
        np.savez(f"{args.out}_epoch{epoch}.npz", losses=np.asarray(losses, np.float64),
                 replicas=run.strategy.num_replicas_in_sync,
                 **{f"w{i:03d}": v.numpy() for i, v in enumerate(run.model.trainable_variables)})

    save(run.start_epoch - 1, [])
    last = config.epochs if args.stop_after is None else min(config.epochs, args.stop_after)
    for epoch in range(run.start_epoch, last + 1):
        stats = run_epoch(run, epoch)
        record_epoch(run, epoch, stats)
        save(epoch, stats.losses)
    print("done", flush=True)


if __name__ == "__main__":
    main()
