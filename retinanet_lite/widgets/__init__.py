"""Interactive explorers for the lessons (ipywidgets): one short module per lesson topic, every public
name importable from here (``from retinanet_lite.widgets import iou_explorer``).

Every explorer has two halves:

* a plain **draw function** that takes the knob values as keyword arguments, draws a matplotlib
  figure and returns what it computed (so tests can call it directly, with no browser), and
* an ``*_explorer()`` function that puts sliders and dropdowns on those keyword arguments with
  :func:`explore`.

They also work headless (nbval, a plain script): the draw function runs once when the explorer is
built and again whenever a control's value changes.

==================  ======  =================================================================
module              lesson  what it explores
==================  ======  =================================================================
:mod:`.explore`     all     :func:`explore`, the helper every explorer is built with
:mod:`.boxes`       01      IoU of two boxes; decoding anchor-relative deltas
:mod:`.anchors`     02      one level's anchors; how well a pyramid's anchors cover the boxes
:mod:`.heads`       04      the loss at initialisation against the prior-probability bias
:mod:`.matching`    05      positive, ignored and negative anchors as the IoU thresholds move
:mod:`.focal_loss`  06      focal loss against cross-entropy, and where an image's loss comes from
:mod:`.training`    07      the learning-rate schedule
:mod:`.inference`   08      score and NMS thresholds; the precision–recall curve behind AP
:mod:`.classical`   10      every stage of the classical detector
:mod:`.trees`       11      tree crowns found and missed, and what the false positives are
:mod:`.own_data`    12      whether a preset's anchors fit the objects of your own data
==================  ======  =================================================================
"""
from .anchors import (RATIO_SETS, SCALE_SETS, anchors_explorer, coverage_explorer, draw_anchor_coverage,
                      draw_level_anchors, shapes_gt_boxes)
from .boxes import DELTA_WEIGHTS, IOU_REFERENCE, deltas_explorer, draw_box_deltas, draw_iou, iou_explorer
from .classical import (CLASSICAL_IMAGES, classical_explorer, colour_components, degrade, draw_classical_stages,
                        signed_log_image)
from .explore import explore
from .focal_loss import EASY_P_T, anchor_population, draw_focal_loss, focal_loss_explorer, loss_shares
from .heads import COCO_CLASSES, PAPER_ANCHORS_800, draw_prior_loss, loss_at_initialisation, prior_explorer
from .inference import (class_matches, detection_candidates, draw_pr_curve, draw_thresholds, greedy_match,
                        pr_explorer, thresholds_explorer)
from .matching import MATCHING_IMAGES, draw_matching, matching_explorer, shapes_cpu_anchors
from .own_data import anchor_fit_explorer, draw_anchor_fit, object_fit
from .training import SHAPES_CPU_RECIPE, draw_schedule, schedule_explorer
from .trees import MERGE_COVER, SHADOW_QUANTILE, SMALL_CROWN, crown_errors, crown_explorer, draw_crowns

__all__ = [
    "explore",
    # lesson 01
    "IOU_REFERENCE", "draw_iou", "iou_explorer", "DELTA_WEIGHTS", "draw_box_deltas", "deltas_explorer",
    # lesson 02
    "SCALE_SETS", "RATIO_SETS", "draw_level_anchors", "anchors_explorer", "shapes_gt_boxes", "draw_anchor_coverage",
    "coverage_explorer",
    # lesson 04
    "PAPER_ANCHORS_800", "COCO_CLASSES", "loss_at_initialisation", "draw_prior_loss", "prior_explorer",
    # lesson 05
    "MATCHING_IMAGES", "shapes_cpu_anchors", "draw_matching", "matching_explorer",
    # lesson 06
    "EASY_P_T", "anchor_population", "loss_shares", "draw_focal_loss", "focal_loss_explorer",
    # lesson 07
    "SHAPES_CPU_RECIPE", "draw_schedule", "schedule_explorer",
    # lesson 08
    "detection_candidates", "greedy_match", "draw_thresholds", "thresholds_explorer", "class_matches",
    "draw_pr_curve", "pr_explorer",
    # lesson 10
    "CLASSICAL_IMAGES", "degrade", "signed_log_image", "colour_components", "draw_classical_stages",
    "classical_explorer",
    # lesson 11
    "SMALL_CROWN", "SHADOW_QUANTILE", "MERGE_COVER", "crown_errors", "draw_crowns", "crown_explorer",
    # lesson 12
    "object_fit", "draw_anchor_fit", "anchor_fit_explorer",
]
