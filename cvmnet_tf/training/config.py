"""Training configuration: one dataclass, the paper's defaults and named presets.

The defaults of :class:`TrainConfig` are the released code's (Adam 1e-5, batch 12 pairs,
512x512 satellite, 224x1232 panorama, K=64, 4096-d descriptors, dropout rate 0.2,
ImageNet-initialised VGG16, weighted soft-margin triplet loss with alpha 10).

Presets change several defaults at once; any value given explicitly (a flag on the
command line, a keyword here) wins over the preset:

- ``paper``: the defaults above, unchanged.
- ``cpu_demo``: a CPU-sized CVM-Net for the synthetic world: VGG16 at 1/8 of its
  channel width (64..512 channels become 8..64) with every layer trained (freezing
  randomly initialised layers only hurts), 64x64 satellite, 32x128
  panorama, K=8, 64-d descriptors, random initialisation, learning rate 1e-4 (from
  random init at these sizes 1e-4 learns in minutes; the paper's 1e-5 is for
  ImageNet-initialised VGG at full size), batch 32, 6 epochs, 2,000 synthetic training
  pairs and 500 validation pairs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from cvmnet_tf.data.registry import TRAINABLE_DATASETS as DATASET_NAMES, get_dataset
from cvmnet_tf.data.university1652 import TASKS as UNIVERSITY1652_TASKS
from cvmnet_tf.models.registry import MODEL_NAMES


@dataclasses.dataclass
class TrainConfig:
    """Everything one training run needs. Sizes are (height, width) in pixels."""

    dataset: str = "cvusa"
    data_dir: Optional[str] = None
    output_dir: str = "runs"
    model: str = "cvm_net_i"
    loss: str = "weighted_soft_margin_triplet"
    alpha: float = 10.0
    margin: Optional[float] = None  # None: the loss's own default (contrastive 1.0, max-margin 0.2)
    temperature: Optional[float] = None  # hard exemplar reweighting; None: the loss's own (0.1)
    learning_rate: float = 1e-5
    batch_size: int = 12
    epochs: int = 100
    dropout_rate: float = 0.2
    hard_mining_from_epoch: int = 0  # 0: never; else first (1-based) epoch with hard mining
    hard_top_k: int = 4  # negatives kept per anchor in the hard-mining stage
    weights: str = "imagenet"  # "imagenet" | "none" | path to a local weights file
    satellite_size: tuple = (512, 512)
    ground_size: tuple = (224, 1232)
    num_clusters: int = 64
    descriptor_dim: int = 4096
    width: float = 1.0  # backbone channel multiplier; 1.0 = VGG16 as in the paper
    freeze_early_layers: bool = True  # VGG16 conv1_1..conv3_3 frozen, as the released code
    normalize_output: bool = True  # CVM-Net-II only; the released code does not normalise
    mixed_precision: bool = False
    jit_compile: bool = False
    seed: int = 0
    resume: bool = False
    overwrite: bool = False
    synthetic: bool = False
    synthetic_train_pairs: int = 2000
    synthetic_val_pairs: int = 500
    max_steps_per_epoch: int = 0  # 0: the whole split
    max_eval_pairs: int = 0  # 0: the whole validation split
    val_split: Optional[str] = None  # None: "val" (CVUSA, CVACT_val) or "test" (Vo & Hays' Denver)
    geo_threshold_m: float = 5.0
    tensorboard: bool = True
    verbose: int = 1
    test_city: str = "denver"  # Vo & Hays: the test city whose list files are read
    task: str = "drone_to_satellite"  # University-1652: drone_to_satellite | satellite_to_drone
    distractor_dir: Optional[str] = None  # University-1652: extra satellite gallery images

    def validate(self) -> None:
        """Raise ``ValueError`` naming the offending option on a bad value."""
        if self.model not in MODEL_NAMES:
            raise ValueError(f"--model={self.model!r} is unknown; choose one of {', '.join(MODEL_NAMES)}")
        if self.dataset not in DATASET_NAMES:
            raise ValueError(f"dataset {self.dataset!r} is unknown; choose one of {', '.join(DATASET_NAMES)}")
        from cvmnet_tf.losses import LOSS_NAMES

        if self.loss not in LOSS_NAMES:
            raise ValueError(f"--loss={self.loss!r} is unknown; choose one of {', '.join(LOSS_NAMES)}")
        if self.hard_mining_from_epoch and self.loss not in ("weighted_soft_margin_triplet", "soft_margin_triplet"):
            raise ValueError(f"--hard_mining_from_epoch needs a soft-margin triplet --loss, not {self.loss!r}")
        if self.temperature is not None and self.loss != "hard_exemplar_reweighting_triplet":
            raise ValueError(f"--temperature is the weighting temperature of "
                             f"--loss=hard_exemplar_reweighting_triplet, not of {self.loss!r}")
        if self.temperature is not None and not self.temperature > 0:
            raise ValueError(f"--temperature={self.temperature}: must be positive")
        if self.batch_size < 2:
            raise ValueError(
                f"--batch_size={self.batch_size}: the in-batch losses need at least 2 pairs per batch")
        if self.epochs < 1:
            raise ValueError(f"--epochs={self.epochs}: must be at least 1")
        if not self.learning_rate > 0:
            raise ValueError(f"--learning_rate={self.learning_rate}: must be positive")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"--dropout_rate={self.dropout_rate}: must be in [0, 1)")
        if self.hard_mining_from_epoch < 0:
            raise ValueError(f"--hard_mining_from_epoch={self.hard_mining_from_epoch}: must be >= 0")
        if self.hard_mining_from_epoch and not 1 <= self.hard_top_k < self.batch_size + 1:
            raise ValueError(
                f"--hard_top_k={self.hard_top_k}: must be between 1 and --batch_size={self.batch_size}")
        for name in ("satellite_size", "ground_size"):
            size = getattr(self, name)
            if len(size) != 2 or min(size) < 16:
                raise ValueError(f"{name}={size}: need (height, width), each at least 16 pixels")
        if not self.width > 0:
            raise ValueError(f"--width={self.width}: must be positive")
        if self.width != 1.0 and self.weights != "none":
            raise ValueError(f"--weights={self.weights!r} needs the full backbone (--width=1.0); "
                             f"use --weights=none with --width={self.width}")
        if self.num_clusters < 1 or self.descriptor_dim < 1:
            raise ValueError("--num_clusters and --descriptor_dim must be positive")
        if not self.synthetic and not self.data_dir:
            raise ValueError("--data_dir is required unless --synthetic is given")
        if self.task not in UNIVERSITY1652_TASKS:
            raise ValueError(f"--task={self.task!r} is unknown; choose one of {', '.join(UNIVERSITY1652_TASKS)}")
        if self.distractor_dir is not None:
            if self.dataset != "university1652":
                raise ValueError("--distractor_dir is for University-1652 training (its satellite gallery); "
                                 "use python -m cvmnet_tf.evaluate / extract for the other datasets")
            if self.task != "drone_to_satellite":
                raise ValueError("--distractor_dir extends the satellite gallery: it needs "
                                 "--task=drone_to_satellite")
        if self.resume and self.overwrite:
            raise ValueError("--resume and --overwrite exclude each other")

    @property
    def validation_split(self) -> str:
        """The split evaluated after every epoch."""
        return self.val_split or get_dataset(self.dataset).validation_split

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["satellite_size"] = list(self.satellite_size)
        d["ground_size"] = list(self.ground_size)
        return d


PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "cpu_demo": {
        "width": 0.125,
        "freeze_early_layers": False,
        "satellite_size": (64, 64),
        "ground_size": (32, 128),
        "num_clusters": 8,
        "descriptor_dim": 64,
        "weights": "none",
        "learning_rate": 1e-4,
        "batch_size": 32,
        "epochs": 6,
        "synthetic_train_pairs": 2000,
        "synthetic_val_pairs": 500,
    },
}


def make_config(preset: str = "paper", **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a preset name, with explicit ``overrides`` winning."""
    if preset not in PRESETS:
        raise ValueError(f"--preset={preset!r} is unknown; choose one of {', '.join(PRESETS)}")
    values = dict(PRESETS[preset])
    values.update(overrides)
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"unknown training option(s): {', '.join(unknown)}")
    for key in ("satellite_size", "ground_size"):
        if key in values:
            values[key] = tuple(int(v) for v in values[key])
    return TrainConfig(**values)
