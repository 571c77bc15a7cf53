"""retinanet_lite: RetinaNet object detection built piece by piece in PyTorch.

One module per concept — ``boxes``, ``anchors``, ``backbone``, ``fpn``, ``heads``, ``matching``,
``losses``, ``config``, ``tta``, ``model``, ``data``, ``metrics``, ``train`` — read them in that order; then
``viz`` (matplotlib figures), ``widgets`` (the lessons' interactive explorers, one module per lesson
topic), ``classical`` (the blur → Laplacian → binarize → closing baseline of lesson 10), ``results``
(the benchmark result files that lessons show), ``drill`` (lesson 07's debugging drill: realistic bugs, each
a named change to a training run) and ``workbook`` (the exercises' checks, which name the mistake, and the fallbacks of the student edition).
``data``, ``widgets`` and ``workbook`` are subpackages: their ``__init__`` lists which file holds what.
Import what you need from its module, e.g. ``from retinanet_lite.model import RetinaNet``.
"""
__version__ = "0.1.0"
