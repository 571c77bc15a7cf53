"""retinanet_lite: RetinaNet object detection built piece by piece in PyTorch.

One module per concept — ``boxes``, ``anchors``, ``backbone``, ``fpn``, ``heads``, ``matching``,
``losses``, ``config``, ``model``, ``data``, ``metrics``, ``train``, ``viz`` — read them in that order.
Import what you need from its module, e.g. ``from retinanet_lite.model import RetinaNet``.
"""
__version__ = "0.1.0"
