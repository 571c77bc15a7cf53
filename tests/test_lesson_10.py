"""Lesson 10 (classical baseline): its self-checks have teeth, and its explorer computes the right numbers."""
import torch

from retinanet_lite.widgets import classical_explorer, colour_components, degrade, draw_classical_stages

LESSON = "10_classical_baseline.ipynb"

# The kernel is not normalised: blurring makes the image brighter.
UNNORMALISED_BLUR = '''
def my_gaussian_kernel(sigma):
    radius = math.ceil(3 * sigma)
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    return torch.exp(-x**2 / (2 * sigma**2))

def my_blur(image, sigma):
    kernel = my_gaussian_kernel(sigma)
    r = len(kernel) // 2
    x = F.pad(image[:, None], (r, r, r, r), mode="replicate")
    return F.conv2d(F.conv2d(x, kernel.view(1, 1, 1, -1)), kernel.view(1, 1, -1, 1))[:, 0]
'''

# Only the second difference along x: a quadratic in y is missed.
X_ONLY_LAPLACIAN = '''
def my_laplacian(image):
    kernel = torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 1.0], [0.0, 0.0, 0.0]])
    x = F.pad(image[:, None], (1, 1, 1, 1), mode="replicate")
    return F.conv2d(x, kernel.view(1, 1, 3, 3))[:, 0]
'''

# Forgets to multiply by the mask: numbers leak across the background and merge every blob.
LEAKING_COMPONENTS = '''
def my_connected_components(mask):
    height, width = mask.shape
    labels = torch.arange(1, height * width + 1, dtype=torch.float32).view(height, width) * mask.float()
    while True:
        spread = F.max_pool2d(labels[None, None], 3, stride=1, padding=1)[0, 0]
        if torch.equal(spread, labels):
            return labels
        labels = spread
'''


def test_blur_check_catches_an_unnormalised_kernel(check_rejects):
    check_rejects(LESSON, "impl-blur", UNNORMALISED_BLUR, "check-blur")


def test_laplacian_check_catches_a_one_dimensional_laplacian(check_rejects):
    check_rejects(LESSON, "impl-laplacian", X_ONLY_LAPLACIAN, "check-laplacian")


def test_components_check_catches_labels_leaking_through_the_background(check_rejects):
    check_rejects(LESSON, "impl-components", LEAKING_COMPONENTS, "check-components")


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
