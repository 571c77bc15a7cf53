"""Lesson 00 (welcome): its self-checks have teeth."""
import sys
from pathlib import Path

import pytest
from nbclient.exceptions import CellExecutionError

sys.path.insert(0, str(Path(__file__).parent))
from notebook_runner import run_lesson  # noqa: E402

LESSON = "00_welcome.ipynb"

# A classic mistake: keeping xyxy instead of converting to COCO's [x, y, w, h].
XYXY_NOT_XYWH = '''
def to_coco_bbox(box):
    return list(box)
'''


def test_coco_bbox_check_catches_xyxy_boxes():
    with pytest.raises(CellExecutionError, match="AssertionError"):
        run_lesson(LESSON, replace={"impl-coco-bbox": XYXY_NOT_XYWH}, stop_after="check-coco-bbox")
