"""Training configuration: one dataclass whose fields carry their flag help, the paper's
defaults, and named presets.

The defaults of :class:`TrainConfig` are the released code's (Adam 1e-5, batch 12 pairs,
512x512 satellite, 224x1232 panorama, K=64, 4096-d descriptors, dropout rate 0.2,
ImageNet-initialised VGG16, weighted soft-margin triplet loss with alpha 10). Every field
is declared with :func:`cvmnet_tf.training.options.option`; the training flags are
generated from those declarations (:mod:`cvmnet_tf.training.flags`).

Presets change several defaults at once; any value given explicitly (a flag on the
command line, a keyword here) wins over the preset:

- ``paper``: the defaults above, unchanged.
- ``cpu_demo``: a CPU-sized CVM-Net for the synthetic world (issue 13: each value was
  measured, see the README's variant table): VGG16 at 1/8 of its channel width (64..512
  channels become 8..64) with every layer trained (freezing randomly initialised layers only
  hurts), the dataset's ``tiny`` input size (CVUSA: 64x64 satellite, 32x128 panorama), K=8,
  64-d descriptors, random initialisation with ``init="he"`` (the released initialisers
  start every descriptor at nearly the same vector), no dropout (rate 0.2 on these narrow
  layers kept the loss at log 2), SAFA's polar transform of the satellite image
  (``polar_satellite``: 64x64 -> 32x128), the ``aligned`` augmentation (tile and panorama
  turned / mirrored together instead of the released turns of the tile alone), Adam 1e-3
  with a 0.3-epoch linear warm-up and cosine decay, batch 32, 6 epochs, 12,000 synthetic
  training pairs (more places: 2,000 are memorised) and 500 validation pairs.
  :data:`PRESET_DATASET_VALUES` holds what differs per dataset (CVUSA: 12 epochs on synthetic
  training tiles up to 7 m off the camera, for map localization; University-1652 and
  Vo & Hays: views from every heading, so no polar transform and the released
  augmentation).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Optional

from cvmnet_tf.data.augmentation import AUGMENTATIONS
from cvmnet_tf.data.registry import TRAINABLE_DATASETS, get_dataset, image_sizes
from cvmnet_tf.data.university1652 import TASKS as UNIVERSITY1652_TASKS
from cvmnet_tf.data.vigor import AREAS as VIGOR_AREAS
from cvmnet_tf.losses import LOSS_NAMES, check_loss_arguments, loss_parameters, min_batch_size
from cvmnet_tf.models.backbones import BACKBONE_NAMES, INITS
from cvmnet_tf.models.registry import MODEL_NAMES
from cvmnet_tf.training.distribute import STRATEGIES
from cvmnet_tf.training.options import option, option_info
from cvmnet_tf.utils.precision import PRECISION_NAMES, precision_name

__all__ = ["TrainConfig", "PRESETS", "PRESET_DATASET_VALUES", "LR_SCHEDULES", "make_config", "ARCHITECTURE_KEYS",
           "LOSS_PARAMETERS", "DATASET_NAMES", "MODEL_NAMES", "UNIVERSITY1652_TASKS", "RUN_SETTING_KEYS", "MAX_SEED",
           "VIGOR_AREAS"]

DATASET_NAMES = TRAINABLE_DATASETS
#: Learning-rate schedules: "constant" (the released code's) or "cosine" (linear warm-up over
#: ``warmup_epochs``, then a cosine decay to 0 at the end of the last epoch).
LR_SCHEDULES = ("constant", "cosine")
#: The largest --seed (numpy's and Keras' global seeds take 0 .. 2**32 - 1).
MAX_SEED = 2 ** 32 - 1


@dataclasses.dataclass
class TrainConfig:
    """Everything one training run needs. Sizes are (height, width) in pixels."""

    dataset: str = option("cvusa", "Dataset to train on.", flag="set by the train_<dataset> script",
                          choices=TRAINABLE_DATASETS)
    data_dir: Optional[str] = option(None, "Dataset root in the {title} layout (see data/README.md).",
                                     alters_run=False)
    output_dir: str = option("runs", "Where Model/, Result/ and logs/ are written.", alters_run=False)
    model: str = option("cvm_net_i", "Network to train.", choices=MODEL_NAMES, architecture=True)
    backbone: Optional[str] = option(None, "Backbone of the model (default: the model's own, vgg16; "
                                     "siamese_alexnet: alexnet; paper Table 2 also trains CVM-Net on alexnet).",
                                     choices=BACKBONE_NAMES, architecture=True)
    loss: str = option("weighted_soft_margin_triplet", "Training loss.", choices=LOSS_NAMES)
    alpha: Optional[float] = option(None, "Alpha of the soft-margin losses (default: the loss's own: 10 for the "
                                    "weighted ones, 1 for soft_margin_triplet).", loss_parameter=True)
    margin: Optional[float] = option(None, "Margin of the contrastive / max-margin / reweighting losses "
                                     "(default: the loss's own, contrastive 1.0, the others 0.2).",
                                     loss_parameter=True)
    temperature: Optional[float] = option(None, "Weighting temperature of --loss=hard_exemplar_reweighting_triplet "
                                          "in squared-distance units (default: the loss's own, 0.1); harder "
                                          "negatives get softmax(-d_neg / temperature) weights.",
                                          loss_parameter=True)
    learning_rate: float = option(1e-5, "Adam learning rate (released code: 1e-5; with --lr_schedule=cosine the "
                                  "peak).")
    lr_schedule: str = option("constant", "Learning-rate schedule: 'constant' (released code) or 'cosine' (linear "
                              "warm-up over --warmup_epochs, then cosine decay to 0 at the last epoch; cpu_demo).",
                              choices=LR_SCHEDULES)
    warmup_epochs: float = option(0.0, "Linear warm-up of --lr_schedule=cosine, in epochs (cpu_demo: 0.3).")
    batch_size: int = option(12, "Pairs per batch (released code: 12).")
    epochs: int = option(100, "Last epoch to train (epochs are numbered from 1).", alters_run=False)
    dropout_rate: float = option(0.2, "Dropout rate (released code 0.2, i.e. keep 0.8; paper 0.1).")
    hard_mining_from_epoch: int = option(0, "First epoch of the second stage (in-batch hard negatives); 0 = never.")
    hard_top_k: int = option(4, "Hard negatives kept per anchor in that stage.")
    weights: str = option("imagenet", "Backbone initialisation: 'imagenet' (Keras download), 'none', a local Keras "
                          "VGG16 weights file (.h5), or a released CVM-Net TF1 checkpoint (the released bundle's "
                          "init model, e.g. .../init/CVM-Net-I/model.ckpt: its VGG_grd/VGG_sat VGG16 ImageNet "
                          "weights are loaded).", alters_run=False)  # only the initial model (epoch 0) uses it
    satellite_size: tuple = option((512, 512), "Satellite input (height, width) in pixels.",
                                   flag="set by --image_size", architecture=True)
    ground_size: tuple = option((224, 1232), "Ground input (height, width) in pixels.",
                                flag="set by --image_size", architecture=True)
    num_clusters: int = option(64, "NetVLAD clusters K.", architecture=True)
    descriptor_dim: int = option(4096, "Descriptor size.", architecture=True)
    width: float = option(1.0, "Backbone channel multiplier: 1.0 is VGG16 as in the paper; the cpu_demo preset "
                          "uses 0.125 (8..64 channels) so that CPU training takes minutes.", architecture=True)
    freeze_early_layers: bool = option(True, "Freeze VGG16 conv1_1..conv3_3 as the released code (cpu_demo: "
                                       "trains every layer).")
    init: str = option("released", "Initialisation of randomly initialised layers (--weights=none): 'released' (the "
                       "code's Glorot uniform kernels and biases; FC std 0.005, bias 0.1) or 'he' (He normal "
                       "kernels, zero biases, Glorot FC with zero bias; cpu_demo).", choices=INITS)
    polar_satellite: bool = option(False, "SAFA's polar transform of the satellite image (Shi et al. 2019) as the "
                                   "first layer of the satellite branch, to an (S/2)x(2S) image for an SxS tile "
                                   "(cpu_demo on the panorama datasets; not in the released code).",
                                   architecture=True)
    augmentation: str = option("released", "Training augmentation: 'released' (the code's satellite crop + "
                               "quarter turns, panorama untouched), 'aligned' (tile and north-aligned panorama "
                               "turned / mirrored together; cpu_demo on the panorama datasets) or 'none'.",
                               choices=AUGMENTATIONS)
    normalize_output: bool = option(True, "CVM-Net-II: l2-normalise the descriptors (the released code does not).",
                                    architecture=True)
    mixed_precision: str = option("none", "Compute precision: 'none' (float32), 'fp16' (mixed_float16 with loss "
                                  "scaling) or 'bf16' (mixed_bfloat16, no loss scaling; Ampere/Hopper GPUs, CPUs "
                                  "with AMX or AVX512_BF16). Variables, NetVLAD's softmax/norms and the losses stay "
                                  "float32.", choices=PRECISION_NAMES, normalize=precision_name)
    jit_compile: bool = option(False, "XLA-compile the training step.", alters_run=False)
    strategy: str = option("auto", "tf.distribute strategy: 'auto' (MirroredStrategy when there are several GPUs, "
                           "else one device), 'mirrored' (every GPU of this machine) or 'multi_worker' (the machines "
                           "of the TF_CONFIG environment variable; README, several GPUs and machines). --batch_size "
                           "is the global batch, split over all replicas; the loss is computed on the whole of it.",
                           choices=STRATEGIES, alters_run=False)
    seed: int = option(0, "Seed of shuffling, augmentation, dropout and initialisation (0 .. 2**32 - 1).")
    resume: bool = option(False, "Continue from the last complete checkpoint in --output_dir.", alters_run=False)
    overwrite: bool = option(False, "Delete a previous run of this model in --output_dir first (its checkpoints, "
                             "result files and TensorBoard logs).", alters_run=False)
    allow_changed_settings: bool = option(False, "With --resume: continue although run settings (loss, learning "
                                          "rate, batch size, ...) differ from the checkpoint's; the change is "
                                          "recorded in Result/<model>_flags.json and the metrics log.",
                                          alters_run=False)
    synthetic: bool = option(False, "Generate (once) and train on the built-in synthetic world in this dataset's "
                             "layout (into an empty --data_dir, or one it generated).", alters_run=False)
    synthetic_train_pairs: int = option(2000, "Synthetic training pairs.")
    synthetic_val_pairs: int = option(500, "Synthetic validation pairs.")
    synthetic_tile_offset_m: float = option(0.0, "CVUSA/CVACT --synthetic: each training tile's centre lies up to "
                                            "this many metres from the camera (uniform in a disc; validation "
                                            "tiles stay centred). Makes the descriptor tolerate the offset of a "
                                            "map's nearest tile (README, map localization); 0: centred as CVUSA. "
                                            "It picks the data written, as --data_dir does, so --resume does not "
                                            "compare it (a resume from the written folder without --synthetic "
                                            "has 0).", alters_run=False)
    max_steps_per_epoch: int = option(0, "Cap on steps per epoch (0: whole split).")
    max_eval_pairs: int = option(0, "Cap on validation pairs (0: whole split).")
    val_split: Optional[str] = option(None, "Split evaluated after every epoch (default: the dataset's; Vo & "
                                      "Hays and University-1652: 'test'). CVACT: 'test' is CVACT_test with "
                                      "geo-recall.")
    geo_threshold_m: float = option(5.0, "CVACT geo-recall radius in metres (OriCNN: 5).")
    tensorboard: bool = option(True, "Write TensorBoard scalars under <output_dir>/logs.", alters_run=False)
    verbose: int = option(1, "1: progress bar and one line per epoch; 0: quiet.", alters_run=False)
    test_city: str = option("denver", "Vo & Hays test city: the loader reads its test_<city>.* list files "
                            "(the paper tests on Denver).")
    task: str = option("drone_to_satellite", "drone_to_satellite (target localisation: drone queries, satellite "
                       "gallery) or satellite_to_drone (navigation). Training is the same; this picks the "
                       "evaluation.", choices=UNIVERSITY1652_TASKS)
    distractor_dir: Optional[str] = option(None, "Folder of extra satellite images (e.g. the 167,486 "
                                           "University-1652 distractor tiles) appended to the satellite gallery.")
    vigor_area: str = option("same", "VIGOR split: 'same' (same-area: train and test on all four cities, the "
                             "pool is every satellite image) or 'cross' (cross-area: train on NewYork + Seattle, "
                             "test on SanFrancisco + Chicago).", choices=VIGOR_AREAS)
    fov: float = option(360.0, "Horizontal field of view of the ground image in degrees, 0 < fov <= 360 (DSM / "
                        "TransGeo: 360, 180, 90, 70): the panorama resized to the ground size is cropped to "
                        "int(fov / 360 * width) columns, and the ground network takes that width. Panorama datasets "
                        "(CVUSA, CVACT, VIGOR) only.", architecture=True)
    random_orientation: bool = option(False, "Unknown orientation (DSM's protocol): the ground crop starts at a random "
                                      "heading, a new one per epoch and pair in training and a fixed one per test "
                                      "image in evaluation (--fov_test_seed); without it the crop starts at column "
                                      "0. Panorama datasets only.")
    fov_test_seed: int = option(2019, "Seed of the evaluation headings with --random_orientation: test image i gets "
                                "the i-th draw of numpy.random.RandomState(seed), as DSM's test scripts "
                                "(np.random.seed(2019)), so numbers are comparable run to run.")

    def __post_init__(self) -> None:
        # the boolean of older versions and other spellings (True = fp16, False = none); an
        # unknown value is kept for validate() to name
        try:
            self.mixed_precision = precision_name(self.mixed_precision)
        except ValueError:
            pass

    def validate(self) -> None:
        """Raise ``ValueError`` naming the offending option on a bad value (before any work)."""
        self._validate_choices()
        self._validate_loss()
        self._validate_numbers()
        self._validate_sizes()
        self._validate_dataset_options()
        if self.width != 1.0 and self.weights != "none":
            raise ValueError(f"--weights={self.weights!r} needs the full backbone (--width=1.0); "
                             f"use --weights=none with --width={self.width}")
        if not self.synthetic and not self.data_dir:
            raise ValueError("--data_dir is required unless --synthetic is given")
        if self.resume and self.overwrite:
            raise ValueError("--resume and --overwrite exclude each other")
        if self.allow_changed_settings and not self.resume:
            raise ValueError("--allow_changed_settings applies to --resume only")
        self._validate_paths()

    def _validate_paths(self) -> None:
        if not str(self.output_dir).strip():
            raise ValueError("--output_dir is empty: name the folder for Model/, Result/ and logs/ "
                             "(e.g. --output_dir runs/demo)")
        if os.path.exists(self.output_dir) and not os.path.isdir(self.output_dir):
            raise ValueError(f"--output_dir={self.output_dir!r} exists and is not a folder")
        if self.data_dir is not None and not str(self.data_dir).strip():
            raise ValueError("--data_dir is empty: name the dataset folder")
        if self.data_dir and os.path.exists(self.data_dir) and not os.path.isdir(self.data_dir):
            raise ValueError(f"--data_dir={self.data_dir!r} exists and is not a folder")
        weights = str(self.weights)
        if weights not in ("imagenet", "none") and not os.path.isfile(weights):
            from cvmnet_tf.inference.tf1 import is_tf1_checkpoint

            if not is_tf1_checkpoint(weights):
                raise ValueError(f"--weights={weights!r}: no such file or TF1 checkpoint (use 'imagenet', 'none', "
                                 "a local weights file or a released TF1 checkpoint prefix)")

    def _validate_choices(self) -> None:
        for field in dataclasses.fields(self):
            choices = option_info(field)["choices"]
            value = getattr(self, field.name)
            if choices is not None and value is not None and value not in choices:
                raise ValueError(f"--{field.name}={value!r} is unknown; choose one of {', '.join(choices)}")

    def _validate_loss(self) -> None:
        params = loss_parameters(self.loss)
        for name in LOSS_PARAMETERS:
            value = getattr(self, name)
            if value is None:
                continue
            if name not in params:
                own = [p for p in params if p in LOSS_PARAMETERS]
                raise ValueError(f"--{name}={value} does not apply to --loss={self.loss} (its parameters: "
                                 f"{', '.join('--' + p for p in own) or 'none'})")
            try:
                check_loss_arguments(self.loss, **{name: value})
            except ValueError as exc:
                raise ValueError(f"--{name}={value}: {exc}") from None
        if self.hard_mining_from_epoch and "hard_top_k" not in params:
            raise ValueError(f"--hard_mining_from_epoch needs a --loss with in-batch hard mining (hard_top_k: "
                             f"weighted_soft_margin_triplet, soft_margin_triplet), not {self.loss!r}")

    def _validate_numbers(self) -> None:
        smallest = min_batch_size(self.loss)
        if self.batch_size < smallest:
            raise ValueError(f"--batch_size={self.batch_size}: --loss={self.loss} needs at least {smallest} pairs "
                             "per batch (in-batch negatives)")
        if not 0 <= self.seed <= MAX_SEED:
            raise ValueError(f"--seed={self.seed}: must be an integer in 0 .. {MAX_SEED} (2**32 - 1, NumPy's seed "
                             "range)")
        for name in ("max_steps_per_epoch", "max_eval_pairs"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name}={getattr(self, name)}: must be >= 0 (0: no cap)")
        if self.synthetic:
            if self.synthetic_train_pairs < self.batch_size:
                raise ValueError(f"--synthetic_train_pairs={self.synthetic_train_pairs}: fewer than "
                                 f"--batch_size={self.batch_size}")
            if self.synthetic_val_pairs < 1:
                raise ValueError(f"--synthetic_val_pairs={self.synthetic_val_pairs}: must be >= 1")
        if not (0.0 <= self.synthetic_tile_offset_m <= 50.0):
            raise ValueError(f"--synthetic_tile_offset_m={self.synthetic_tile_offset_m}: must be 0 .. 50 metres")
        if self.synthetic_tile_offset_m:
            spec = get_dataset(self.dataset).synthetic
            if not self.synthetic:
                raise ValueError("--synthetic_tile_offset_m applies to --synthetic only")
            if spec is None or not spec.tile_offset:
                raise ValueError(f"--synthetic_tile_offset_m: the synthetic {self.dataset} layout has no tiles "
                                 "centred on the camera to move (CVUSA and CVACT have)")
        if self.epochs < 1:
            raise ValueError(f"--epochs={self.epochs}: must be at least 1")
        if not self.learning_rate > 0:
            raise ValueError(f"--learning_rate={self.learning_rate}: must be positive")
        if not 0.0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"--warmup_epochs={self.warmup_epochs}: must be between 0 and --epochs={self.epochs}")
        if self.warmup_epochs and self.lr_schedule == "constant":
            raise ValueError("--warmup_epochs is a part of --lr_schedule=cosine")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"--dropout_rate={self.dropout_rate}: must be in [0, 1)")
        if self.hard_mining_from_epoch < 0:
            raise ValueError(f"--hard_mining_from_epoch={self.hard_mining_from_epoch}: must be >= 0")
        if self.hard_mining_from_epoch and not 1 <= self.hard_top_k < self.batch_size + 1:
            raise ValueError(f"--hard_top_k={self.hard_top_k}: must be between 1 and --batch_size={self.batch_size}")
        if not self.width > 0:
            raise ValueError(f"--width={self.width}: must be positive")
        if self.polar_satellite and self.satellite_size[0] != self.satellite_size[1]:
            raise ValueError(f"--polar_satellite needs a square satellite image, got {self.satellite_size}")
        if self.augmentation == "aligned" and not get_dataset(self.dataset).panoramic:
            raise ValueError(f"--augmentation=aligned turns a north-aligned panorama with its tile; "
                             f"{get_dataset(self.dataset).title} has no panoramas (use released or none)")
        if self.augmentation == "aligned" and self.ground_size[1] % 4:
            raise ValueError(f"--augmentation=aligned turns the panorama by quarter turns: its width "
                             f"{self.ground_size[1]} must be a multiple of 4")
        if self.num_clusters < 1 or self.descriptor_dim < 1:
            raise ValueError("--num_clusters and --descriptor_dim must be positive")

    def _validate_sizes(self) -> None:
        """Input sizes the chosen backbone can take (checked here, not when Keras builds it)."""
        from cvmnet_tf.models.backbones import get_backbone
        from cvmnet_tf.models.registry import model_backbone

        for name in ("satellite_size", "ground_size"):
            size = getattr(self, name)
            if len(size) != 2 or min(size) < 16:
                raise ValueError(f"--image_size: the {name.split('_')[0]} input {size} needs (height, width), "
                                 "each at least 16 pixels")
        backbone = model_backbone(self.model, self.backbone)
        smallest = get_backbone(backbone).min_input_px
        small = [f"{name.split('_')[0]} {h}x{w}" for name in ("satellite_size", "ground_size")
                 for h, w in [getattr(self, name)] if min(h, w) < smallest]
        if small:
            spec = get_dataset(self.dataset)
            fits = [n for n, sizes in spec.image_sizes.items() if min(min(s) for s in sizes) >= smallest]
            raise ValueError(
                f"--image_size: the {backbone} backbone of --model={self.model} needs inputs of at least "
                f"{smallest}x{smallest} pixels, got {', '.join(small)}; pass --image_size "
                + (f"{fits[-1]} or " if fits else "") + f"HxW,HxW with every side >= {smallest}")

    def _validate_dataset_options(self) -> None:
        """A loader option of another dataset must keep its default (no silent drop)."""
        from cvmnet_tf.data.registry import DATASETS

        spec = get_dataset(self.dataset)
        for field in dataclasses.fields(self):
            owners = [s.title for s in DATASETS.values() if field.name in s.loader_options]
            if owners and field.name not in spec.loader_options and getattr(self, field.name) != field.default:
                raise ValueError(f"--{field.name} is a {' / '.join(owners)} option; {spec.title} training does not "
                                 "use it (for other datasets, python -m cvmnet_tf.evaluate / extract)")
        if self.distractor_dir is not None and self.task != "drone_to_satellite":
            raise ValueError("--distractor_dir extends the satellite gallery: it needs --task=drone_to_satellite")
        self._validate_ground_crop(spec)

    def _validate_ground_crop(self, spec) -> None:
        from cvmnet_tf.data.fov import fov_width

        fov = float(self.fov)
        if not 0.0 < fov <= 360.0:
            raise ValueError(f"--fov={self.fov}: the field of view must be in (0, 360] degrees")
        if (fov < 360.0 or self.random_orientation) and not spec.panoramic:
            from cvmnet_tf.data.registry import DATASETS
            panoramic = ", ".join(s.title for s in DATASETS.values() if s.panoramic)
            raise ValueError(f"--fov / --random_orientation crop 360-degree panoramas; {spec.title} ground images "
                             f"are not panoramas (panorama datasets: {panoramic})")
        width = fov_width(self.ground_size[1], fov) if self.ground_size[1] * fov / 360.0 >= 1 else 0
        if width < 16:
            raise ValueError(f"--fov={self.fov} of a {self.ground_size[1]}-pixel wide panorama leaves {width} "
                             "columns; the ground network needs at least 16 (use a larger --image_size)")

    @property
    def ground_crop(self):
        """The :class:`cvmnet_tf.data.fov.GroundCrop` of ``fov`` / ``random_orientation`` / ``fov_test_seed``."""
        from cvmnet_tf.data.fov import GroundCrop
        return GroundCrop.from_config(self)

    @property
    def network_ground_size(self) -> tuple:
        """(H, W) of the ground network's input: ``ground_size`` with the width cut to the FoV."""
        return self.ground_crop.network_size(self.ground_size)

    @property
    def validation_split(self) -> str:
        """The split evaluated after every epoch."""
        return self.val_split or get_dataset(self.dataset).validation_split

    def loss_arguments(self) -> dict:
        """The hyper-parameters given to the loss: the loss parameters that are set."""
        return {name: getattr(self, name) for name in LOSS_PARAMETERS if getattr(self, name) is not None}

    def loader_arguments(self) -> dict:
        """{loader keyword: value} of this dataset's loader options (registry)."""
        return {kwarg: getattr(self, field) for field, kwarg in get_dataset(self.dataset).loader_options.items()}

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["satellite_size"] = list(self.satellite_size)
        d["ground_size"] = list(self.ground_size)
        return d


#: The fields that define the network: a checkpoint whose values differ belongs to another model.
ARCHITECTURE_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig) if option_info(f)["architecture"])
#: The other fields that change what a run does: ``--resume`` with another value needs
#: ``--allow_changed_settings`` (which records the change).
RUN_SETTING_KEYS = tuple(f.name for f in dataclasses.fields(TrainConfig)
                         if option_info(f)["alters_run"] and not option_info(f)["architecture"])
#: The fields that are loss hyper-parameters (checked against the loss's signature).
LOSS_PARAMETERS = tuple(f.name for f in dataclasses.fields(TrainConfig) if option_info(f)["loss_parameter"])

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "cpu_demo": {
        "width": 0.125,
        "freeze_early_layers": False,
        "image_size": "tiny",
        "num_clusters": 8,
        "descriptor_dim": 64,
        "weights": "none",
        "init": "he",
        "dropout_rate": 0.0,
        "polar_satellite": True,
        "augmentation": "aligned",
        "learning_rate": 1e-3,
        "lr_schedule": "cosine",
        "warmup_epochs": 0.3,
        "batch_size": 32,
        "epochs": 6,
        "synthetic_train_pairs": 12000,
        "synthetic_val_pairs": 500,
        "synthetic_tile_offset_m": 0.0,
    },
}

#: Preset values that differ for one dataset ((preset, dataset) -> values; every key is also
#: a key of the preset, so that an explicit flag still wins). University-1652's drone views
#: and Vo & Hays' street crops look at the place from any heading: there is no north-aligned
#: panorama to align a polar image or a quarter turn with, and the released quarter turns of
#: the tile are the right augmentation. University-1652 learns best at 3e-4 (800 drone images,
#: 7 epochs: drone -> satellite recall@1 5.4 % at 3e-4, 1.7 % at 1e-3; chance 1.3 %).
PRESET_DATASET_VALUES: dict[tuple, dict[str, Any]] = {
    # CVUSA (the README's first command): 12 epochs on training tiles up to 7 m off the
    # camera (validation centred), so that the model also localizes on a map whose nearest
    # tile is up to 7 m off (issue 13: val recall@1% 77.6 %, map within 100 m 3.2x a random
    # tile with votes; 6 epochs centred: 71.8 % and 1.8x). A real --data_dir keeps its tiles:
    # the offset applies to --synthetic only (make_config drops it otherwise).
    ("cpu_demo", "cvusa"): {"epochs": 12, "synthetic_tile_offset_m": 7.0},
    ("cpu_demo", "university1652"): {"polar_satellite": False, "augmentation": "released",
                                     "learning_rate": 3e-4, "synthetic_train_pairs": 8000},
    ("cpu_demo", "vohays"): {"polar_satellite": False, "augmentation": "released"},
    # VIGOR: the panorama lies anywhere in the positive tile's central quarter, not at its
    # centre (VIGOR's point against the polar transform); its panoramas are north-aligned, so
    # the aligned augmentation (tile and panorama turned together about the tile centre) holds
    ("cpu_demo", "vigor"): {"polar_satellite": False},
}
for (_preset, _dataset), _values in PRESET_DATASET_VALUES.items():
    assert set(_values) <= set(PRESETS[_preset]), (_preset, _dataset, sorted(set(_values) - set(PRESETS[_preset])))


def make_config(preset: str = "paper", **overrides: Any) -> TrainConfig:
    """A :class:`TrainConfig` from a preset name (with its :data:`PRESET_DATASET_VALUES` for
    ``overrides["dataset"]``), with explicit ``overrides`` winning.

    ``image_size`` (a size name of the dataset's registry entry, e.g. "paper" or "tiny",
    or "HxW,HxW") sets ``satellite_size`` / ``ground_size`` unless they are given.
    """
    if preset not in PRESETS:
        raise ValueError(f"--preset={preset!r} is unknown; choose one of {', '.join(PRESETS)}")
    values = dict(PRESETS[preset])
    values.update(PRESET_DATASET_VALUES.get((preset, overrides.get("dataset", "cvusa")), {}))
    values.update(overrides)
    if not values.get("synthetic") and "synthetic_tile_offset_m" not in overrides:
        values.pop("synthetic_tile_offset_m", None)  # a preset's offset is for the synthetic world only
    size_name = values.pop("image_size", "paper")
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"unknown training option(s): {', '.join(unknown)}")
    named = dict(zip(("satellite_size", "ground_size"), image_sizes(size_name, values.get("dataset", "cvusa"))))
    for key in ("satellite_size", "ground_size"):
        values[key] = tuple(int(v) for v in values.get(key, named[key]))
    return TrainConfig(**values)
