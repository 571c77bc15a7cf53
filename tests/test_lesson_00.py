"""Lesson 00 (welcome): its self-checks have teeth."""

LESSON = "00_welcome.ipynb"

# A classic mistake: keeping xyxy instead of converting to COCO's [x, y, w, h].
XYXY_NOT_XYWH = '''
def to_coco_bbox(box):
    return list(box)
'''


def test_coco_bbox_check_catches_xyxy_boxes(check_rejects):
    check_rejects(LESSON, "impl-coco-bbox", XYXY_NOT_XYWH, "check-coco-bbox")
