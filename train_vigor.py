#!/usr/bin/env python3
"""Train CVM-Net on VIGOR (same-area or cross-area; all flags: `--helpfull`).

Synthetic VIGOR layout (four synthetic cities), CPU:
    python train_vigor.py --synthetic --preset cpu_demo --output_dir runs/vigor_demo
Real data (layout: data/README.md), same-area, VIGOR's 320x320 / 320x640 inputs:
    python train_vigor.py --data_dir data/VIGOR --output_dir runs/vigor --vigor_area same
Cross-area, limited field of view (90 degrees, unknown orientation):
    python train_vigor.py --data_dir data/VIGOR --vigor_area cross --fov 90 --random_orientation
"""

from cvmnet_tf.cli.train import main

if __name__ == "__main__":
    main("vigor")
