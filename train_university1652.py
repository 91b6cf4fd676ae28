#!/usr/bin/env python3
"""Train CVM-Net on University-1652 drone/satellite retrieval (all flags: `--helpfull`).

Synthetic University-1652 layout (drone views rendered from the synthetic world), CPU:
    python train_university1652.py --synthetic --preset cpu_demo --output_dir runs/u1652_demo
Real data (layout: data/README.md), drone -> satellite, 256x256 inputs:
    python train_university1652.py --data_dir data/University-1652 --output_dir runs/u1652
Satellite -> drone (navigation) evaluation instead:
    python train_university1652.py --data_dir data/University-1652 --task satellite_to_drone
"""

from cvmnet_tf.cli.train import main

if __name__ == "__main__":
    main("university1652")
