"""Pascal VOC annotation files: one XML file per image, read into our box convention.

A VOC file looks like::

    <annotation>
      <filename>OSBS_029.png</filename>
      <size><width>400</width><height>400</height><depth>3</depth></size>
      <object>
        <name>Tree</name>
        <bndbox><xmin>203</xmin><ymin>67</ymin><xmax>227</xmax><ymax>90</ymax></bndbox>
      </object>
      …
    </annotation>

**The pixel convention.** VOC numbers pixels from 1 and its boxes are *inclusive*: ``xmin = 1,
xmax = 400`` is the whole width of a 400-px image, and ``xmin = xmax`` is a box one pixel wide. Our
boxes are pixel *edges* counted from 0 (xyxy, the whole image is ``[0, 0, W, H]``), so the first
pixel's left edge is 0 and the last pixel's right edge is W::

    x1 = xmin - 1,   y1 = ymin - 1,   x2 = xmax,   y2 = ymax

The DeepForest files follow VOC: over their 951 boxes the smallest ``xmin``/``ymin`` is 1 (never 0)
and the largest ``xmax``/``ymax`` equals the width/height (boxes touching the right or bottom edge).
Some tools write 0-based edges instead (``xmin`` may be 0); read those with ``one_based=False``.

Every field is checked, and a bad file raises a ``ValueError`` naming the file, the object and the
field, like the COCO reader does.
"""
from __future__ import annotations

import math
import xml.etree.ElementTree as ElementTree
from pathlib import Path
from typing import Mapping, NamedTuple

import torch
from torch import Tensor


class VocAnnotation(NamedTuple):
    """What one VOC file says: the image's file name, its ``(height, width)``, the boxes ``[N, 4]``
    (float32, xyxy pixel edges from 0) and the ``N`` class names (after ``class_map``)."""

    file_name: str
    size: tuple[int, int]
    boxes: Tensor
    names: list[str]


def read_voc(xml_path: str | Path, class_map: Mapping[str, str] | None = None,
             one_based: bool = True) -> VocAnnotation:
    """Read one Pascal VOC XML file → ``(file_name, (height, width), boxes [N, 4] xyxy, names)``.

    ``class_map`` renames classes (e.g. ``{"Alive": "tree", "Dead": "tree"}``); with a map, an object
    whose name is not in it is an error. ``one_based`` (VOC's rule, see the module docstring) maps
    ``xmin..xmax`` to ``[xmin - 1, xmax]``; with ``False`` the numbers are taken as 0-based edges.
    A file without objects gives ``N = 0``. Raises ``ValueError`` for a missing or unreadable file,
    malformed XML, a missing or non-numeric field, ``xmax < xmin`` (or ``ymax < ymin``) and a box
    that reaches outside the image.
    """
    path = Path(xml_path)
    try:
        root = ElementTree.parse(path).getroot()
    except FileNotFoundError:
        raise ValueError(f"VOC file {path} does not exist") from None
    except ElementTree.ParseError as error:
        raise ValueError(f"{path} is not valid XML: {error}") from None
    if root.tag != "annotation":
        raise ValueError(f"{path}: the root element must be <annotation>, got <{root.tag}>")
    file_name = _text(root, "filename", path, "annotation")
    width = _number(root, "size/width", path, "annotation", integer=True)
    height = _number(root, "size/height", path, "annotation", integer=True)
    if width < 1 or height < 1:
        raise ValueError(f"{path}: field 'size' must give a positive width and height, got {width}×{height}")
    low = 1 if one_based else 0
    boxes, names = [], []
    for index, element in enumerate(root.findall("object")):
        what = f"object {index}"
        name = _text(element, "name", path, what)
        if class_map is not None:
            if name not in class_map:
                raise ValueError(f"{path}: {what}: field 'name' = {name!r} is not one of {sorted(class_map)}")
            name = class_map[name]
        box = [_number(element, f"bndbox/{key}", path, what) for key in ("xmin", "ymin", "xmax", "ymax")]
        for axis, (start, end, limit) in zip("xy", ((box[0], box[2], width), (box[1], box[3], height))):
            if end < start or (not one_based and end == start):
                raise ValueError(f"{path}: {what}: field 'bndbox' has {axis}max {end:g} "
                                 f"{'<' if end < start else '='} {axis}min {start:g}: an empty box")
            if start < low or end > limit:
                raise ValueError(
                    f"{path}: {what}: field 'bndbox' [{axis}min {start:g}, {axis}max {end:g}] reaches outside the "
                    f"image ({axis} must lie in {low}..{limit}"
                    + (", VOC's coordinates are 1-based; read 0-based files with one_based=False)" if one_based
                       else ")"))
        if one_based:
            box[0], box[1] = box[0] - 1, box[1] - 1
        boxes.append(box)
        names.append(name)
    return VocAnnotation(file_name, (height, width), torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), names)


def _text(element: ElementTree.Element, key: str, path: Path, what: str) -> str:
    """The non-empty text of ``element``'s child ``key``, else a ``ValueError`` naming ``what`` and ``key``."""
    child = element.find(key)
    if child is None:
        raise ValueError(f"{path}: {what}: missing field '{key}'")
    text = (child.text or "").strip()
    if not text:
        raise ValueError(f"{path}: {what}: field '{key}' is empty")
    return text


def _number(element: ElementTree.Element, key: str, path: Path, what: str, integer: bool = False) -> float:
    """``element``'s child ``key`` as a finite number (an int if ``integer``), else a ``ValueError``."""
    text = _text(element, key, path, what)
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise ValueError(f"{path}: {what}: field '{key}' must be {'an integer' if integer else 'a number'}, "
                         f"got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{path}: {what}: field '{key}' must be finite, got {text!r}")
    return value
