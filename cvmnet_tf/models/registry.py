"""The model registry: every two-branch architecture by name, and the one place that turns a
training configuration into model arguments.

:data:`MODELS` maps a name to a :class:`ModelSpec` (the class, the arguments the name
fixes, arguments it accepts for a uniform command line but does not use). Training flags,
the TF1 converter, checkpoint loading and the docs read it. A new architecture is one
:class:`~cvmnet_tf.models.base.CrossViewModel` subclass and one entry here.
"""
import dataclasses
import inspect
from typing import Mapping

from cvmnet_tf.models.cvm_net import CVMNetI, CVMNetII
from cvmnet_tf.models.siamese import SiameseBaseline

__all__ = ["MODELS", "MODEL_NAMES", "ModelSpec", "get_model_spec", "model_arguments", "model_backbone",
           "build_model", "build_model_from_config", "CONFIG_ARGUMENTS"]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """``cls``: the model class; ``fixed``: constructor arguments the name implies;
    ``unused``: arguments accepted (and dropped) so that one command line serves every
    model; ``summary``: one line for help texts."""

    name: str
    cls: type
    summary: str
    fixed: Mapping = dataclasses.field(default_factory=dict)
    unused: tuple = ()


MODELS = {
    "cvm_net_i": ModelSpec("cvm_net_i", CVMNetI, "CVM-Net-I: NetVLAD per branch, shared FC (paper Fig. 3)"),
    "cvm_net_ii": ModelSpec("cvm_net_ii", CVMNetII,
                            "CVM-Net-II: Siamese transformation convs, one shared NetVLAD (paper Fig. 4)"),
    "siamese_vgg": ModelSpec("siamese_vgg", SiameseBaseline, "Siamese VGG16 baseline (paper Table 1)",
                             fixed={"backbone": "vgg16"}, unused=("num_clusters",)),
    "siamese_alexnet": ModelSpec("siamese_alexnet", SiameseBaseline, "Siamese AlexNet baseline (paper Table 1)",
                                 fixed={"backbone": "alexnet"}, unused=("num_clusters",)),
}
MODEL_NAMES = tuple(MODELS)

# TrainConfig field -> model constructor argument (the training loop, the TF1 converter and
# checkpoint loading all build models through this table).
CONFIG_ARGUMENTS = {
    "satellite_size": "satellite_shape", "ground_size": "ground_shape", "num_clusters": "num_clusters",
    "descriptor_dim": "descriptor_dim", "dropout_rate": "dropout_rate", "backbone": "backbone",
    "weights": "weights", "width": "width", "freeze_early_layers": "freeze_early_layers",
    "normalize_output": "normalize_output", "polar_satellite": "polar_satellite", "init": "init",
}


def get_model_spec(name) -> ModelSpec:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r} (argument `name`); choose one of {MODEL_NAMES}")
    return MODELS[name]


def model_arguments(name) -> tuple:
    """The constructor arguments model ``name`` takes (its fixed ones excluded)."""
    spec = get_model_spec(name)
    params = [p for p in inspect.signature(spec.cls.__init__).parameters.values()
              if p.kind is p.POSITIONAL_OR_KEYWORD and p.name not in ("self", "name", "dtype")]
    return tuple(p.name for p in params if p.name not in spec.fixed)


def model_backbone(name, backbone=None) -> str:
    """The backbone model ``name`` is built on: the one its name fixes, else ``backbone``,
    else its class's default."""
    spec = get_model_spec(name)
    if "backbone" in spec.fixed:
        return spec.fixed["backbone"]
    return backbone or inspect.signature(spec.cls.__init__).parameters["backbone"].default


def build_model(name, **kwargs):
    """Build the model registered as ``name`` (:data:`MODEL_NAMES`).

    ``kwargs`` go to its class (satellite_shape, ground_shape, num_clusters, descriptor_dim,
    dropout_rate, backbone, weights, width, freeze_early_layers, polar_satellite, polar_size,
    init, normalize_output, dtype).
    The Siamese models ignore ``num_clusters`` (they have no NetVLAD) and their backbone is
    fixed by the name; ``normalize_output=False`` is refused for every model whose output
    is always l2-normalised (all but cvm_net_ii); any other unknown argument is refused.
    """
    spec = get_model_spec(name)
    kwargs = dict(kwargs)
    for key, value in spec.fixed.items():
        if key in kwargs and kwargs[key] != value:
            raise ValueError(f"build_model: model {name!r} implies {key}={value!r}, got {key}={kwargs[key]!r}")
        kwargs[key] = value
    for key in spec.unused:
        kwargs.pop(key, None)
    accepted = set(model_arguments(name)) | set(spec.fixed) | {"name", "dtype"}
    if "normalize_output" in kwargs and "normalize_output" not in accepted:
        if not kwargs.pop("normalize_output"):
            raise ValueError(f"build_model: {name!r} always l2-normalises its output (as the released code); "
                             "normalize_output=False is only for 'cvm_net_ii'")
    unknown = sorted(set(kwargs) - accepted)
    if unknown:
        raise ValueError(f"build_model: model {name!r} has no argument(s) {', '.join(unknown)}; "
                         f"accepted: {', '.join(sorted(accepted - {'name', 'dtype'}))}")
    return spec.cls(**kwargs)


def build_model_from_config(config, **overrides):
    """The model a training configuration describes.

    Args:
      config: a :class:`cvmnet_tf.training.TrainConfig` or its ``to_dict()`` (e.g. the
        "config" of a checkpoint's state.json); ``config["model"]`` names the model.
        Fields the model does not take (e.g. num_clusters for a Siamese model) and None
        values (the model's own default) are left out; ``weights="none"`` means None.
      overrides: model arguments that win over the config (e.g. ``weights=None``).

    A limited field of view (``config["fov"]`` < 360) narrows the ground input to the crop
    of the ``ground_size`` panorama (:func:`cvmnet_tf.data.fov.fov_width`).
    """
    values = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    name = values["model"]
    accepted = set(model_arguments(name))
    kwargs = {}
    for field, argument in CONFIG_ARGUMENTS.items():
        value = values.get(field)
        if value is None or argument not in accepted:
            continue
        if argument in ("satellite_shape", "ground_shape"):
            value = tuple(int(v) for v in value)
        if argument == "ground_shape" and float(values.get("fov") or 360.0) < 360.0:
            from cvmnet_tf.data.fov import fov_width
            value = (value[0], fov_width(value[1], float(values["fov"])))
        if argument == "weights" and value == "none":
            continue
        kwargs[argument] = value
    kwargs.update(overrides)
    return build_model(name, **kwargs)
