"""Lesson 11 (what next): its self-checks have teeth, and the anchor-fit explorer computes the right numbers."""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from nbclient.exceptions import CellExecutionError  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from notebook_runner import NOTEBOOKS, run_lesson, tagged  # noqa: E402

from retinanet_lite.config import preset_config  # noqa: E402
from retinanet_lite.data import VAL_SEED_OFFSET, ShapesDataset  # noqa: E402
from retinanet_lite.model import RetinaNet  # noqa: E402
from retinanet_lite.widgets import anchor_fit_explorer, draw_anchor_fit, input_scale  # noqa: E402

LESSON = "11_what_next.ipynb"

# Hands the COCO bbox through unchanged: [x, y, w, h] taken for [x1, y1, x2, y2].
XYWH_AS_XYXY = '''
def boxes_of_image(coco, image_id):
    boxes = [a["bbox"] for a in coco["annotations"] if a["image_id"] == image_id]
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
'''


def test_box_check_catches_xywh_taken_for_xyxy():
    with pytest.raises(CellExecutionError, match="AssertionError"):
        run_lesson(LESSON, replace={"impl-boxes": XYWH_AS_XYXY}, stop_after="check-boxes")


def quiz_cells() -> tuple[str, str]:
    """The sources of the quiz's answer cell and of its check cell."""
    cells = nbformat.read(NOTEBOOKS / LESSON, as_version=4).cells
    answer = next(c.source for c in cells if tagged(c, "exercise") and "answers = {" in c.source)
    check = next(c.source for c in cells if tagged(c, "exercise-check") and "EXPECTED" in c.source)
    return answer, check


def test_quiz_check_accepts_the_answers_and_rejects_a_wrong_one():
    answer, check = quiz_cells()
    namespace = {"hashlib": __import__("hashlib"), "preset_config": preset_config}
    exec(answer, namespace)
    exec(check, namespace)  # the instructor's answers pass
    for question, wrong in [(1, "a"), (3, 8), (4, 4), (8, "a")]:
        attempt = {**namespace["answers"], question: wrong}
        with pytest.raises(AssertionError, match=rf"\[{question}\]"):
            exec(check, {**namespace, "answers": attempt})
    assert "EXPECTED" in check and "BEGIN SOLUTION" not in check, "the check must not show the answers"


def test_input_scale_matches_what_the_model_does():
    config = preset_config("shapes-cpu", min_size=200, max_size=300)
    model = RetinaNet(config)
    for height, width in [(100, 150), (100, 400), (250, 120), (200, 300)]:
        scale = input_scale(config, height, width)
        batch, scales = model.prepare_batch([torch.rand(3, height, width)])
        assert scales[0] == pytest.approx(scale)
        assert tuple(batch.shape[-2:]) == (int(height * scale), int(width * scale))
    assert input_scale(preset_config("shapes-cpu"), 37, 1000) == 1.0  # min_size None: no resizing
    assert input_scale(preset_config("paper"), 480, 640) == pytest.approx(800 / 480)
    assert input_scale(preset_config("paper"), 100, 1000) == pytest.approx(1333 / 1000)  # the long side caps it


def test_draw_anchor_fit_scales_the_objects_like_the_preset():
    dataset = ShapesDataset(24, 128, seed=VAL_SEED_OFFSET)
    results = {preset: draw_anchor_fit(preset, dataset=dataset) for preset in ("shapes-cpu", "resnet18-512", "paper")}
    plt.close("all")
    assert results["shapes-cpu"]["scale"] == 1.0
    assert results["resnet18-512"]["scale"] == pytest.approx(512 / 128)
    assert results["paper"]["scale"] == pytest.approx(800 / 128)
    for preset, result in results.items():
        assert result["num_objects"] == sum(len(dataset[i][1]["boxes"]) for i in range(len(dataset)))
        assert result["smallest"] == pytest.approx(results["shapes-cpu"]["smallest"] * result["scale"])
        assert 0.0 <= result["share_matched"] <= 1.0
    # shapes-cpu's smallest anchors (16 px) are too big for the smallest shapes; upscaled, all fit
    assert results["shapes-cpu"]["share_matched"] < 1.0 <= results["paper"]["share_matched"]
    fewer = draw_anchor_fit("shapes-cpu", dataset=dataset, max_images=4)
    plt.close("all")
    assert fewer["num_objects"] == sum(len(dataset[i][1]["boxes"]) for i in range(4))


def test_anchor_fit_explorer_redraws_for_another_preset():
    explorer = anchor_fit_explorer(ShapesDataset(8, 128, seed=VAL_SEED_OFFSET))
    assert explorer.result["scale"] == 1.0
    explorer.children[0].value = "paper"
    assert explorer.result["scale"] == pytest.approx(800 / 128)
    plt.close("all")
