#!/usr/bin/env python3
"""Train CVM-Net on CVUSA (all flags: `python train_cvusa.py --helpfull`).

Synthetic world, CPU, a few minutes:
    python train_cvusa.py --synthetic --preset cpu_demo --output_dir runs/cvusa_demo
Real data (layout: data/README.md), the released code's settings:
    python train_cvusa.py --data_dir data/CVUSA --output_dir runs/cvusa
"""

from cvmnet_tf.cli.train import main

if __name__ == "__main__":
    main("cvusa")
