"""Lesson 12 (what next): its self-checks have teeth, and the anchor-fit explorer computes the right numbers."""
import matplotlib.pyplot as plt
import nbformat
import pytest
import torch

from notebook_runner import NOTEBOOKS, tagged

from retinanet_lite.boxes import box_iou
from retinanet_lite.config import preset_config
from retinanet_lite.data import VAL_SEED_OFFSET, ShapesDataset
from retinanet_lite import workbook
from retinanet_lite.model import RetinaNet
from retinanet_lite.widgets import anchor_fit_explorer, draw_anchor_fit, object_fit

LESSON = "12_what_next.ipynb"

def quiz_cells() -> tuple[str, str]:
    """The sources of the quiz's answer cell and of its check cell."""
    cells = nbformat.read(NOTEBOOKS / LESSON, as_version=4).cells
    answer = next(c.source for c in cells if tagged(c, "exercise") and "def quiz_answers" in c.source)
    check = next(c.source for c in cells if tagged(c, "exercise-check") and "EXPECTED" in c.source)
    return answer, check


def test_quiz_check_accepts_the_answers_and_rejects_a_wrong_one():
    answer, check = quiz_cells()
    namespace = {"hashlib": __import__("hashlib"), "preset_config": preset_config, "workbook": workbook}
    exec(answer, namespace)
    exec(check, namespace)  # the instructor's answers pass
    for question, wrong in [(1, "a"), (3, 8), (4, 4), (8, "a")]:
        attempt = {**namespace["quiz_answers"](), question: wrong}
        with pytest.raises(AssertionError, match=rf"\[{question}\]"):
            exec(check, {**namespace, "quiz_answers": lambda attempt=attempt: attempt})
    assert "EXPECTED" in check and "BEGIN SOLUTION" not in check, "the check must not show the answers"


def test_anchor_fit_sees_each_image_as_the_model_does():
    """Images of different sizes: the same resize factors, and IoUs with the same anchors, as the model's."""
    config = preset_config("paper", backbone="tiny", fpn_channels=16, head_convs=1, num_classes=2)
    model = RetinaNet(config)
    box = torch.tensor([[10.0, 20.0, 60.0, 45.0]])
    dataset = [(torch.rand(3, h, w), {"boxes": box, "labels": torch.zeros(1, dtype=torch.long)})
               for h, w in [(100, 150), (100, 400), (250, 120), (480, 640)]]
    scales, sizes, best = object_fit(config, dataset, len(dataset))
    for (image, target), scale, size, iou in zip(dataset, scales, sizes, best):
        batch, (expected_scale,) = model.prepare_batch([image])
        anchors = model.anchors(batch.shape[-2:], batch.device)
        assert scale == expected_scale
        assert size.tolist() == pytest.approx([(50 * 25) ** 0.5 * scale])
        assert torch.equal(iou, box_iou(target["boxes"] * scale, anchors).amax(dim=1))


def test_draw_anchor_fit_scales_the_objects_like_the_preset():
    dataset = ShapesDataset(24, 128, seed=VAL_SEED_OFFSET)
    results = {preset: draw_anchor_fit(preset, dataset=dataset) for preset in ("shapes-cpu", "resnet18-512", "paper")}
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
    assert fewer["num_objects"] == sum(len(dataset[i][1]["boxes"]) for i in range(4))


def test_anchor_fit_explorer_redraws_for_another_preset():
    explorer = anchor_fit_explorer(ShapesDataset(8, 128, seed=VAL_SEED_OFFSET))
    assert explorer.result["scale"] == 1.0
    explorer.children[0].value = "paper"
    assert explorer.result["scale"] == pytest.approx(800 / 128)


def without_objects(dataset, indices) -> list:
    """``dataset`` as a list of ``(image, target)``, the images at ``indices`` with their objects removed."""
    nothing = {"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)}
    return [(dataset[i][0], nothing) if i in indices else dataset[i] for i in range(len(dataset))]


def figure_texts() -> str:
    """Every title and text of the current figure, one per line."""
    return "\n".join(t.get_text() for ax in plt.gcf().axes for t in [ax.title, *ax.texts])


def test_draw_anchor_fit_says_plainly_when_there_are_no_objects():
    shapes = ShapesDataset(8, 128, seed=VAL_SEED_OFFSET)
    result = draw_anchor_fit(dataset=without_objects(shapes, range(8)), max_images=6)
    assert result == {"scale": 1.0, "share_matched": None, "num_objects": 0, "smallest": None, "largest": None,
                      "summary": "no objects among the first 6 images"}
    assert "no objects among the first 6 images" in figure_texts()
    upscaled = draw_anchor_fit("paper", dataset=without_objects(shapes, range(8)))
    assert upscaled["scale"] == pytest.approx(800 / 128) and upscaled["num_objects"] == 0


@pytest.mark.parametrize("empty", [range(3), range(0, 8, 2)], ids=["first-images-empty", "every-other-empty"])
def test_draw_anchor_fit_counts_the_objects_of_the_images_that_have_some(empty):
    shapes = ShapesDataset(8, 128, seed=VAL_SEED_OFFSET)
    result = draw_anchor_fit(dataset=without_objects(shapes, empty))
    kept = [i for i in range(8) if i not in empty]
    everything = draw_anchor_fit(dataset=[shapes[i] for i in kept])
    assert result["num_objects"] == everything["num_objects"] == sum(len(shapes[i][1]["boxes"]) for i in kept)
    for key in ("share_matched", "smallest", "largest"):
        assert result[key] == everything[key]
    with_objects = sum(len(shapes[i][1]["boxes"]) > 0 for i in kept)
    assert f"in {with_objects} of the first 8 images" in result["summary"]


def test_draw_anchor_fit_rejects_an_empty_dataset():
    with pytest.raises(ValueError, match="at least one image"):
        draw_anchor_fit(dataset=[])
