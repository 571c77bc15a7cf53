"""Data for the course: one short module per topic, every public name importable from here.

==================  =========================================================================
module              what it holds
==================  =========================================================================
:mod:`.targets`     ``Target``, the image / target conventions and their checks
                    (:func:`check_image`, :func:`check_target`), :func:`collate` for batches
:mod:`.shapes`      :class:`ShapesDataset` (procedural circles, squares, triangles),
                    ``CLASS_NAMES``, ``VAL_SEED_OFFSET``, :func:`write_shapes_splits`
:mod:`.coco`        the COCO detection format: :func:`coco_ground_truth` builds the dict,
                    :func:`write_coco` writes a dataset, :class:`CocoDetection` reads a folder
:mod:`.voc`         Pascal VOC XML files: :func:`read_voc` (1-based inclusive pixels → xyxy)
:mod:`.tiling`      large images in tiles: :func:`tile_windows`, :func:`split_windows`,
                    :func:`crop_target` (the rule for cut boxes), :func:`detect_tiled`
:mod:`.trees`       real photographs: :class:`TreeCrowns` (NEON tree crowns from the DeepForest
                    wheel), :func:`deepforest_data`, :func:`write_tree_splits`
==================  =========================================================================

Conventions: an image is a float32 tensor ``[3, H, W]`` in [0, 1]; a target is
``{"boxes": [N, 4] float32 xyxy pixels, "labels": [N] int64 in 0..K-1}``; N may be 0.
"""
from .coco import CocoDetection, coco_ground_truth, write_coco
from .shapes import CLASS_NAMES, VAL_SEED_OFFSET, ShapesDataset, write_shapes_splits
from .targets import Target, check_image, check_target, collate
from .tiling import crop_image, crop_target, detect_tiled, split_windows, tile_windows, visible_fraction
from .trees import DEEPFOREST_WHEEL, TreeCrowns, deepforest_data, load_tree_image, write_tree_splits
from .voc import VocAnnotation, read_voc

__all__ = ["Target", "check_image", "check_target", "collate",
           "CLASS_NAMES", "VAL_SEED_OFFSET", "ShapesDataset", "write_shapes_splits",
           "CocoDetection", "coco_ground_truth", "write_coco", "VocAnnotation", "read_voc",
           "crop_image", "crop_target", "detect_tiled", "split_windows", "tile_windows", "visible_fraction",
           "DEEPFOREST_WHEEL", "TreeCrowns", "deepforest_data", "load_tree_image", "write_tree_splits"]
