"""Training options: every TrainConfig field declares its flag (generated), loss
hyper-parameters are checked against the loss's signature, dataset options follow the
registry."""
import dataclasses
import subprocess
import sys
import os

import pytest
from absl import flags

from cvmnet_tf.data.registry import DATASETS, TRAINABLE_DATASETS
from cvmnet_tf.training import flags as train_flags
from cvmnet_tf.training.config import ARCHITECTURE_KEYS, LOSS_PARAMETERS, TrainConfig, make_config
from cvmnet_tf.training.options import option, option_info

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parse(dataset, argv):
    fv = flags.FlagValues()
    train_flags.define_flags(dataset, fv)
    fv([f"train_{dataset}.py"] + argv)
    return fv, train_flags.config_from_flags(dataset, fv)


def test_every_field_declares_its_flag_or_why_not():
    for field in dataclasses.fields(TrainConfig):
        info = option_info(field)                      # KeyError for a plain field
        assert info["help"].strip(), field.name
        assert info["flag"] is True or (isinstance(info["flag"], str) and info["flag"]), field.name
    with pytest.raises(ValueError, match="reason"):
        option(1, "x", flag=False)


@pytest.mark.parametrize("dataset", TRAINABLE_DATASETS)
def test_flags_are_exactly_the_fields_of_the_dataset(dataset):
    fv = flags.FlagValues()
    train_flags.define_flags(dataset, fv)
    defined = set(fv) - set(train_flags.EXTRA_FLAGS)
    spec = DATASETS[dataset]
    others = {name for s in DATASETS.values() for name in s.loader_options} - set(spec.loader_options)
    want = {f.name for f in dataclasses.fields(TrainConfig) if option_info(f)["flag"] is True} - others
    assert defined == want
    for name in want:       # same default as the field (except the loss's own: None)
        field = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
        assert fv[name].default == field.default, name
        assert fv[name].help, name


def test_architecture_and_loss_keys():
    assert set(ARCHITECTURE_KEYS) == {"model", "backbone", "satellite_size", "ground_size", "num_clusters",
                                      "descriptor_dim", "width", "normalize_output", "polar_satellite",
                                      "fov"}
    assert LOSS_PARAMETERS == ("alpha", "margin", "temperature")


@pytest.mark.parametrize("argv, pattern", [
    (["--loss", "weighted_soft_margin_triplet", "--margin", "0.3"], "--margin=0.3 does not apply to --loss"),
    (["--loss", "max_margin_triplet", "--alpha", "5"], "--alpha=5.0 does not apply to --loss=max_margin_triplet"),
    (["--loss", "contrastive", "--temperature", "0.1"], "--temperature=0.1 does not apply"),
    (["--loss", "contrastive", "--margin", "-1"], "--margin=-1.0"),
    (["--loss", "contrastive", "--hard_mining_from_epoch", "2"], "--hard_mining_from_epoch needs"),
])
def test_loss_parameters_checked_against_the_loss(argv, pattern):
    with pytest.raises(ValueError, match=pattern.replace("(", r"\(")):
        _parse("cvusa", ["--synthetic"] + argv)


def test_loss_parameters_reach_the_loss_only_when_given():
    _, c = _parse("cvusa", ["--synthetic"])
    assert c.loss_arguments() == {}                     # the loss's own alpha (10)
    _, c = _parse("cvusa", ["--synthetic", "--loss", "soft_margin_triplet", "--alpha", "3"])
    assert c.loss_arguments() == {"alpha": 3.0}          # formerly dropped silently
    _, c = _parse("cvusa", ["--synthetic", "--loss", "max_margin_triplet", "--margin", "0.5"])
    assert c.loss_arguments() == {"margin": 0.5}


def test_dataset_options_follow_the_registry(tmp_path):
    fv, c = _parse("vohays", ["--data_dir", str(tmp_path), "--test_city", "seattle"])
    assert c.test_city == "seattle" and c.loader_arguments() == {"test_city": "seattle"}
    assert "task" not in fv and "distractor_dir" not in fv
    fv, c = _parse("cvusa", ["--data_dir", str(tmp_path)])
    assert "test_city" not in fv and c.loader_arguments() == {}
    with pytest.raises(ValueError, match="--test_city is a Vo & Hays option"):
        make_config("cpu_demo", dataset="cvusa", synthetic=True, test_city="seattle").validate()


def test_presets_sizes_and_explicit_flags(tmp_path):
    _, c = _parse("cvusa", ["--synthetic", "--preset", "cpu_demo"])
    assert (c.satellite_size, c.ground_size, c.batch_size) == ((64, 64), (32, 128), 32)
    _, c = _parse("cvusa", ["--synthetic", "--preset", "cpu_demo", "--batch_size", "8", "--image_size", "half"])
    assert (c.satellite_size, c.ground_size, c.batch_size) == ((256, 256), (112, 616), 8)
    _, c = _parse("vohays", ["--synthetic", "--preset", "cpu_demo"])
    assert (c.satellite_size, c.ground_size) == ((64, 64), (48, 48))
    _, c = _parse("cvact", ["--synthetic", "--image_size", "96x96,48x160", "--backbone", "alexnet"])
    assert (c.satellite_size, c.ground_size, c.backbone) == ((96, 96), (48, 160), "alexnet")
    with pytest.raises(ValueError, match="--image_size='big'"):
        _parse("cvusa", ["--synthetic", "--image_size", "big"])


def test_usage_errors_are_one_line_exit_2_without_help(tmp_path):
    script = os.path.join(REPO, "train_cvusa.py")
    for argv, needle in ((["--batch_size=1", "--synthetic"], "--batch_size=1"),
                         (["--loss=contrastive", "--alpha=3", "--synthetic"], "--alpha=3.0"),
                         (["--model=resnet"], "--model"),
                         (["--no_such_flag"], "no_such_flag")):
        proc = subprocess.run([sys.executable, script, *argv, f"--output_dir={tmp_path / 'x'}"], capture_output=True,
                              text=True, timeout=120, cwd=str(tmp_path))
        assert proc.returncode == 2, proc.stderr
        lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        assert len(lines) == 1 and needle in lines[0], proc.stderr
        assert "Train CVM-Net" not in proc.stderr and "--helpfull" not in proc.stdout
    assert not os.path.exists(tmp_path / "x")
