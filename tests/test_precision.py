"""--mixed_precision none|fp16|bf16: the flag (with the boolean spellings of older flags
files), the config and resume checks, and one bfloat16 training step of the loop."""
import os

import numpy as np
import pytest
from absl import flags

from cvmnet_tf.training import flags as train_flags
from cvmnet_tf.training.config import make_config
from cvmnet_tf.training.loop import changed_settings
from cvmnet_tf.utils import precision


def _parse(argv):
    fv = flags.FlagValues()
    train_flags.define_flags("cvusa", fv)
    fv(["train_cvusa.py", "--synthetic"] + argv)
    return fv, train_flags.config_from_flags("cvusa", fv)


@pytest.mark.parametrize("argv, want", [
    ([], "none"),
    (["--mixed_precision"], "fp16"),             # the boolean flag of older versions
    (["--nomixed_precision"], "none"),
    (["--mixed_precision=fp16"], "fp16"),
    (["--mixed_precision=bf16"], "bf16"),
    (["--mixed_precision=BF16"], "bf16"),
    (["--mixed_precision=mixed_bfloat16"], "bf16"),
    (["--mixed_precision=true"], "fp16"),
    (["--mixed_precision=false"], "none"),
    (["--mixed_precision=off"], "none"),
    (["--mixed_precision=fp32"], "none"),
    (["--mixed_precision=none"], "none"),
])
def test_flag_values_and_old_spellings(argv, want):
    fv, config = _parse(argv)
    assert config.mixed_precision == want
    assert fv["mixed_precision"].value == want


def test_old_flags_file_still_means_fp16(tmp_path):
    old = tmp_path / "old.flags"
    old.write_text("--mixed_precision\n--batch_size=8\n")
    _, config = _parse([f"--flagfile={old}"])
    assert config.mixed_precision == "fp16" and config.batch_size == 8
    old.write_text("--nomixed_precision\n")
    assert _parse([f"--flagfile={old}"])[1].mixed_precision == "none"
    # a flags file written from the new flag reads back the same
    fv, _ = _parse(["--mixed_precision=bf16"])
    assert fv["mixed_precision"].serialize() == "--mixed_precision=bf16"


def test_bad_value_is_one_line_naming_the_flag():
    with pytest.raises(flags.IllegalFlagValueError) as info:
        _parse(["--mixed_precision=fp8"])
    message = str(info.value)
    assert "--mixed_precision" in message and "fp8" in message and "bf16" in message
    assert "\n" not in message
    with pytest.raises(ValueError, match=r"--mixed_precision='fp8' is unknown; choose one of none, fp16, bf16"):
        make_config("cpu_demo", synthetic=True, mixed_precision="fp8").validate()


def test_config_and_resume_read_the_old_boolean():
    assert make_config("cpu_demo", synthetic=True, mixed_precision=True).mixed_precision == "fp16"
    assert make_config("cpu_demo", synthetic=True, mixed_precision=False).mixed_precision == "none"
    # a checkpoint of an older version saved the bool: resuming with the same meaning is no change
    assert changed_settings({"mixed_precision": True}, {"mixed_precision": "fp16"}) == {}
    assert changed_settings({"mixed_precision": False}, {"mixed_precision": "none"}) == {}
    assert changed_settings({}, {"mixed_precision": "none"}) == {}         # key absent: the default
    assert changed_settings({"mixed_precision": True}, {"mixed_precision": "bf16"}) == {
        "mixed_precision": ["fp16", "bf16"]}


def test_precision_registry():
    assert precision.policy_name("bf16") == "mixed_bfloat16"
    assert precision.policy_name("fp16") == "mixed_float16"
    assert precision.policy_name(None) == "float32"
    assert precision.uses_loss_scaling("fp16") and not precision.uses_loss_scaling("bf16")
    assert precision.cpu_bf16_support({"avx2", "avx512_bf16"}) == ["avx512_bf16"]
    assert precision.cpu_bf16_support({"amx_bf16", "avx512_bf16"}) == ["amx_bf16", "avx512_bf16"]
    assert precision.cpu_bf16_support({"avx2"}) == []
    assert isinstance(precision.cpu_flags("/nonexistent/cpuinfo"), set)


def test_bf16_training_step_of_the_loop(tmp_path):
    """setup() under bf16: mixed_bfloat16 layers with float32 variables, no loss scaling;
    one step gives a finite float32 loss, float32 descriptors, and moves the weights."""
    import keras
    import tensorflow as tf

    from cvmnet_tf import data as cv_data
    from cvmnet_tf.training.loop import setup, write_synthetic_dataset

    data_dir = str(tmp_path / "data")
    write_synthetic_dataset(data_dir, "cvusa", num_train=16, num_val=8, seed=0)
    config = make_config("cpu_demo", data_dir=data_dir, output_dir=str(tmp_path / "run"), verbose=0,
                         tensorboard=False, epochs=1, batch_size=8, max_eval_pairs=8, mixed_precision="bf16",
                         lr_schedule="constant", warmup_epochs=0.0)  # (the warm-up starts at lr 0)
    try:
        run = setup(config)
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        assert not isinstance(run.optimizer, keras.optimizers.LossScaleOptimizer)
        assert run.model.get_config()["dtype"] == "mixed_bfloat16"
        assert {str(v.dtype) for v in run.model.weights} == {"float32"}
        ds = cv_data.make_pair_dataset(run.train_split, run.sizes, training=True, batch_size=8, seed=0,
                                       augmentation=config.augmentation)
        batch = next(iter(ds))
        out = run.model({"satellite": batch["satellite"], "ground": batch["ground"]}, training=False)
        # NetVLAD / FC / l2 normalisation compute in float32: the descriptors are float32 unit vectors
        for key in ("satellite", "ground"):
            assert out[key].dtype == tf.float32, (key, out[key].dtype)
            norms = np.linalg.norm(np.asarray(out[key]), axis=1)
            np.testing.assert_allclose(norms, 1.0, rtol=8 * 2.0 ** -23 * np.sqrt(out[key].shape[1]))
        before = [np.array(v) for v in run.model.trainable_variables]
        loss = run.step_fn(False)(batch)
        assert loss.dtype == tf.float32 and np.isfinite(float(loss))
        moved = [not np.array_equal(b, np.array(v)) for b, v in zip(before, run.model.trainable_variables)]
        assert sum(moved) >= len(moved) // 2
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert os.path.isdir(os.path.join(config.output_dir, "Model", "cvm_net_i", "0"))  # the initial checkpoint
