"""The configs and the one preset registry: every preset builds, bad values are named, nothing fails late."""
import subprocess
import sys
from pathlib import Path

import pytest

from retinanet_lite.__main__ import build_parser, main
from retinanet_lite.config import PRESETS, Preset, RetinaNetConfig, TrainConfig, preset_config, preset_recipe
from retinanet_lite.losses import SMOOTH_L1_BETA, smooth_l1_loss
from retinanet_lite.model import RetinaNet

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_its_model_and_recipe(name):
    preset = PRESETS[name]
    assert isinstance(preset, Preset) and preset.description
    assert isinstance(preset.model, RetinaNetConfig) and isinstance(preset.train, TrainConfig)
    assert RetinaNet.from_preset(name).config == preset_config(name) == preset.model
    assert preset_recipe(name) == preset.train
    assert TrainConfig.from_dict(preset.train.to_dict()) == preset.train


def test_the_command_line_offers_exactly_the_registry():
    train = build_parser()._subparsers._group_actions[0].choices["train"]
    preset_option = next(a for a in train._actions if "--preset" in a.option_strings)
    assert list(preset_option.choices) == list(PRESETS)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--preset", "resnet-9000"])


@pytest.mark.parametrize("change, message", [
    ({"batch_size": 0}, "batch_size must be ≥ 1"),
    ({"steps": -5}, "steps must be ≥ 1"),
    ({"lr": 0.0}, "lr must be > 0"),
    ({"lr": "fast"}, "lr must be float"),
    ({"steps": 10.5}, "steps must be int"),
    ({"hflip": 1.5}, "hflip is a probability"),
    ({"image_size": 8}, "image_size must be ≥ 16"),
    ({"num_train_images": 0}, "num_train_images"),
    ({"max_seconds": 0}, "max_seconds"),
    ({"amp": 1}, "amp must be bool"),
    ({"warmup": 10}, "unknown TrainConfig key"),
])
def test_bad_training_recipes_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        preset_recipe("shapes-cpu", **change)


@pytest.mark.parametrize("change, message", [
    ({"num_classes": 0}, "num_classes"),
    ({"size_divisible": 0}, "size_divisible"),
    ({"min_size": -1}, "min_size"),
    ({"fpn_channels": "64"}, "fpn_channels must be int"),
    ({"anchor_sizes": (16, 32, "64", 128, 256)}, "anchor_sizes must be tuple"),
])
def test_bad_model_configs_are_named(change, message):
    with pytest.raises(ValueError, match=message):
        preset_config("shapes-cpu", **change)


def test_smooth_l1_beta_has_one_default():
    assert RetinaNetConfig().smooth_l1_beta == SMOOTH_L1_BETA == pytest.approx(1 / 9)
    assert smooth_l1_loss.__defaults__[0] == SMOOTH_L1_BETA


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """``python -m retinanet_lite ARGS`` in a process of its own (each costs seconds: importing torch)."""
    return subprocess.run([sys.executable, "-m", "retinanet_lite", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def cli_error(*args: str) -> str:
    """The one line ``python -m retinanet_lite ARGS`` stops with, by ``main(ARGS)`` in this process (the function the
    command runs): a bad input must end in ``SystemExit`` with a message, not in any other exception."""
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    message = stop.value.code
    assert isinstance(message, str) and message.strip().count("\n") == 0, f"one line, got: {message!r}"
    return message


def test_a_file_that_is_not_a_checkpoint_gives_one_line(tmp_path):
    (tmp_path / "notes.txt").write_bytes(b"hello, I am not a checkpoint")
    (tmp_path / "empty.pt").write_bytes(b"")
    result = run_cli("evaluate", "--checkpoint", str(tmp_path / "notes.txt"), "--num-images", "2")  # the real command
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip().count("\n") == 0, f"one line, got: {result.stderr}"
    assert str(tmp_path / "notes.txt") in result.stderr and "not a checkpoint" in result.stderr
    message = cli_error("evaluate", "--checkpoint", str(tmp_path / "empty.pt"), "--num-images", "2")
    assert str(tmp_path / "empty.pt") in message and "not a checkpoint" in message


def test_a_saved_tensor_is_not_a_checkpoint(tmp_path):
    import torch

    from retinanet_lite.train import read_checkpoint

    torch.save({"weights": torch.zeros(3)}, tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="no model config"):
        read_checkpoint(tmp_path / "weights.pt")


def test_batch_size_zero_is_a_clear_error_not_a_traceback():
    assert "batch_size must be ≥ 1" in cli_error("train", "--steps", "1", "--set", "batch_size=0")


def test_every_set_flag_counts_and_a_repeated_key_is_refused():
    parser = build_parser()
    args = parser.parse_args(["train", "--set", "lr=1e-3", "--set", "steps=10", "warmup_steps=2"])
    assert args.set == ["lr=1e-3", "steps=10", "warmup_steps=2"]
    assert "lr twice" in cli_error("train", "--set", "lr=1e-3", "--set", "lr=1e-2")
