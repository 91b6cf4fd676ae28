#!/usr/bin/env python3
"""Train CVM-Net on Vo & Hays (all flags: `python train_vohays.py --helpfull`).

Synthetic world, CPU, a few minutes:
    python train_vohays.py --synthetic --preset cpu_demo --output_dir runs/vohays_demo
Real data (layout: data/README.md), the released code's settings:
    python train_vohays.py --data_dir data/vohays --output_dir runs/vohays
"""

from cvmnet_tf.cli.train import main

if __name__ == "__main__":
    main("vohays")
