#!/usr/bin/env python3
"""Train CVM-Net on CVACT (all flags: `python train_cvact.py --helpfull`).

Synthetic world, CPU, a few minutes:
    python train_cvact.py --synthetic --preset cpu_demo --output_dir runs/cvact_demo
Real data (layout: data/README.md), the released code's settings:
    python train_cvact.py --data_dir data/CVACT --output_dir runs/cvact
"""

from cvmnet_tf.cli.train import main

if __name__ == "__main__":
    main("cvact")
