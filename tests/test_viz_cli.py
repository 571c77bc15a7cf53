"""Drawing helpers render, and the command line works end to end."""
import pytest
import torch

from retinanet_lite import viz
from retinanet_lite.__main__ import build_parser, main, parse_overrides
from retinanet_lite.anchors import make_anchors
from retinanet_lite.data import CLASS_NAMES, ShapesDataset


def test_drawing_helpers_draw_what_they_are_given(tmp_path):
    images, targets = zip(*(ShapesDataset(4, 64, seed=1)[i] for i in range(4)))
    fig = viz.image_grid(images, targets, predictions=list(targets), class_names=CLASS_NAMES, columns=2)
    drawn = sum(len(ax.patches) for ax in fig.axes)
    assert drawn == 2 * sum(len(t["boxes"]) for t in targets)
    fig.savefig(tmp_path / "grid.png")
    ax = viz.show_image(images[0])
    viz.draw_anchors(ax, make_anchors((64, 64))[:9])
    assert len(ax.patches) == 9
    history = {"step": list(range(50)), "loss": [1 / (i + 1) for i in range(50)],
               "classification": [0.5 / (i + 1) for i in range(50)], "regression": [0.5 / (i + 1) for i in range(50)],
               "eval": [{"step": 25, "map": 0.3, "map_50": 0.5, "map_75": 0.2}, {"step": 50, "map": 0.6, "map_50": 0.9, "map_75": 0.6}]}
    fig = viz.plot_history(history)
    assert len(fig.axes[1].lines) == 3 and len(fig.axes[0].lines) == 6


def test_parse_overrides():
    assert parse_overrides(["lr=0.001", "box_loss=giou", "anchor_sizes=(8, 16, 32, 64, 128)"]) == {
        "lr": 0.001, "box_loss": "giou", "anchor_sizes": (8, 16, 32, 64, 128)}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_overrides(["lr"])


@pytest.mark.parametrize("command", ["data", "train", "evaluate", "detect"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args([command, "--help"])
    assert exit_info.value.code == 0
    assert "usage" in capsys.readouterr().out


def test_train_evaluate_predict_end_to_end(tmp_path, capsys):
    main(["train", "--out", str(tmp_path), "--steps", "3", "--set", "num_train_images=16", "num_val_images=8"])
    assert "map" in capsys.readouterr().out and (tmp_path / "model.pt").exists()
    main(["evaluate", "--checkpoint", str(tmp_path / "model.pt"), "--num-images", "8"])
    assert "map_50" in capsys.readouterr().out
    main(["data", "shapes", "--out", str(tmp_path / "shapes"), "--num-train", "3", "--num-val", "2"])
    image = sorted((tmp_path / "shapes" / "val" / "images").glob("*.png"))[0]
    main(["detect", str(image), "--checkpoint", str(tmp_path / "model.pt"), "--out", str(tmp_path / "p.png"),
          "--min-score", "0"])
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_bad_option_gives_a_message_not_a_traceback(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--steps", "1", "--set", "lerning_rate=1"])
    assert exit_info.value.code not in (0, None)
    assert "lerning_rate" in str(exit_info.value.code) + capsys.readouterr().err
