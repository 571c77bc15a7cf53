"""Lesson 10 (classical baseline): its explorer computes the right numbers (its exercises' checks:
test_workbook_lesson10.py)."""
import torch

from retinanet_lite.widgets import classical_explorer, colour_components, degrade, draw_classical_stages


def test_degrade_keeps_the_image_at_full_contrast_and_flattens_it_at_zero():
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(degrade(image), image)
    flat = degrade(image, contrast=0.0)
    assert torch.allclose(flat, image.mean(dim=(1, 2), keepdim=True).expand_as(image))
    noisy = degrade(image, noise=0.1)
    assert torch.equal(noisy, degrade(image, noise=0.1)) and 0 <= noisy.min() and noisy.max() <= 1


def test_colour_components_paints_the_background_black():
    labels = torch.tensor([[0, 1], [2, 0]])
    colours = colour_components(labels)
    assert colours.shape == (2, 2, 3) and (colours[0, 0] == 0).all() and (colours[1, 1] == 0).all()
    assert colours[0, 1].sum() > 0 and not (colours[0, 1] == colours[1, 0]).all()


def test_draw_classical_stages_finds_separate_shapes_and_merges_touching_ones():
    clean = draw_classical_stages(image_index=0)
    assert clean["objects"] == clean["found"] == clean["boxes"] == 4 and clean["mean_best_iou"] > 0.85
    touching = draw_classical_stages(image_index=2)  # five shapes that touch each other
    assert touching["components"] == 1 and touching["found"] < touching["objects"]


def test_draw_classical_stages_closing_and_degradation():
    broken = draw_classical_stages(image_index=15, kernel_size=1)
    mended = draw_classical_stages(image_index=15, kernel_size=3)
    assert broken["closing_added"] == 0 < mended["closing_added"]
    assert mended["components"] < broken["components"] and mended["components"] == mended["objects"]
    noisy = draw_classical_stages(image_index=0, noise=0.2)
    assert noisy["edge_pixels"] > 5 * draw_classical_stages(image_index=0)["edge_pixels"] and noisy["found"] < 4
    faint = draw_classical_stages(image_index=0, contrast=0.15)
    assert faint["found"] < 4


def test_classical_explorer_updates_when_a_slider_moves():
    explorer = classical_explorer()
    names = [c.description for c in explorer.children[:6]]
    assert names == ["image", "blur σ", "threshold", "closing k", "contrast", "noise σ"]
    before = explorer.result
    explorer.children[2].value = 0.3  # a high threshold: fewer edge pixels
    assert explorer.result["edge_pixels"] < before["edge_pixels"]
    explorer.children[0].value = 2
    assert explorer.result["objects"] == 5
