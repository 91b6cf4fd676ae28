"""The registries every tool reads: datasets, models, backbones (consistency, no drift)."""
import dataclasses

import pytest

from cvmnet_tf.data import registry


@pytest.mark.parametrize("name", registry.DATASET_NAMES)
def test_dataset_entries_are_complete(name):
    from cvmnet_tf.data.preprocessing import GROUND_RULES

    spec = registry.get_dataset(name)
    assert spec.name == name
    assert callable(registry.resolve_target(spec.loader))
    assert spec.ground_rule in GROUND_RULES
    assert set(spec.image_sizes) == {"paper", "half", "small", "tiny"}
    for sat, grd in spec.image_sizes.values():
        assert len(sat) == 2 and len(grd) == 2 and min(sat + grd) >= 16
    if spec.trainable:
        assert spec.validation_split in spec.splits
    if spec.synthetic is not None:
        assert callable(registry.resolve_target(spec.synthetic.writer))


def test_unknown_dataset_lists_the_choices():
    with pytest.raises(ValueError, match="unknown dataset 'kitti'.*cvusa"):
        registry.get_dataset("kitti")


def test_loader_options_are_training_options():
    from cvmnet_tf.training.config import TrainConfig

    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for spec in registry.DATASETS.values():
        assert set(spec.loader_options) <= fields, spec.name
