"""Pascal VOC reading: VOC's 1-based inclusive pixels become our xyxy edges; every bad file is named."""
import pytest
import torch

from retinanet_lite.data import read_voc

GOOD = """<annotation>
  <filename>{filename}</filename>
  <size><width>{width}</width><height>{height}</height><depth>3</depth></size>
  {objects}
</annotation>"""
OBJECT = "<object><name>{name}</name><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin><xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"


def voc_file(tmp_path, objects=((1, 1, 10, 20),), names=None, filename="a.png", width=400, height=300):
    """A VOC file with one object per box ``(xmin, ymin, xmax, ymax)``."""
    names = names or ["Tree"] * len(objects)
    text = GOOD.format(filename=filename, width=width, height=height, objects="".join(
        OBJECT.format(name=n, x1=b[0], y1=b[1], x2=b[2], y2=b[3]) for n, b in zip(names, objects)))
    path = tmp_path / "a.xml"
    path.write_text(text)
    return path


def test_one_based_inclusive_pixels_become_xyxy_edges(tmp_path):
    # VOC: pixels 1..W, both ends included. (1, 1, 400, 300) is the whole image → [0, 0, 400, 300];
    # xmin == xmax is one pixel wide.
    path = voc_file(tmp_path, [(1, 1, 400, 300), (5, 7, 5, 9), (10.5, 2, 20, 3)])
    file_name, size, boxes, names = read_voc(path)
    assert file_name == "a.png" and size == (300, 400) and names == ["Tree"] * 3
    assert boxes.dtype == torch.float32
    assert boxes.tolist() == [[0, 0, 400, 300], [4, 6, 5, 9], [9.5, 1, 20, 3]]


def test_zero_based_files_and_empty_files(tmp_path):
    path = voc_file(tmp_path, [(0, 0, 400, 300), (5, 7, 6, 9)])
    assert read_voc(path, one_based=False).boxes.tolist() == [[0, 0, 400, 300], [5, 7, 6, 9]]
    empty = read_voc(voc_file(tmp_path, objects=()))
    assert empty.boxes.shape == (0, 4) and empty.names == []


def test_class_map_renames_and_rejects_unknown_names(tmp_path):
    path = voc_file(tmp_path, [(1, 1, 5, 5)] * 3, names=["Alive", "Dead", "Alive"])
    assert read_voc(path, {"Alive": "tree", "Dead": "tree"}).names == ["tree"] * 3
    with pytest.raises(ValueError, match=r"a\.xml: object 1: field 'name' = 'Dead' is not one of \['Alive'\]"):
        read_voc(path, {"Alive": "tree"})


@pytest.mark.parametrize("text, message", [
    ("<annotation><filename>a.png</filename>", r"a\.xml is not valid XML"),
    ("<annotations/>", r"a\.xml: the root element must be <annotation>, got <annotations>"),
    ("<annotation><size><width>4</width><height>4</height></size></annotation>",
     r"a\.xml: annotation: missing field 'filename'"),
    ("<annotation><filename> </filename></annotation>", r"a\.xml: annotation: field 'filename' is empty"),
    ("<annotation><filename>a.png</filename></annotation>", r"a\.xml: annotation: missing field 'size/width'"),
    ("<annotation><filename>a.png</filename><size><width>4.5</width><height>4</height></size></annotation>",
     r"a\.xml: annotation: field 'size/width' must be an integer, got '4\.5'"),
    ("<annotation><filename>a.png</filename><size><width>0</width><height>4</height></size></annotation>",
     r"a\.xml: field 'size' must give a positive width and height"),
    ("<annotation><filename>a.png</filename><size><width>9</width><height>9</height></size>"
     "<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></object></annotation>",
     r"a\.xml: object 0: missing field 'name'"),
    ("<annotation><filename>a.png</filename><size><width>9</width><height>9</height></size>"
     "<object><name>Tree</name></object></annotation>", r"a\.xml: object 0: missing field 'bndbox/xmin'"),
    ("<annotation><filename>a.png</filename><size><width>9</width><height>9</height></size>"
     "<object><name>Tree</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax></bndbox></object></annotation>",
     r"a\.xml: object 0: missing field 'bndbox/ymax'"),
])
def test_malformed_files_name_the_file_and_field(tmp_path, text, message):
    path = tmp_path / "a.xml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_voc(path)


@pytest.mark.parametrize("box, message", [
    (("1", "1", "ten", "5"), r"object 1: field 'bndbox/xmax' must be a number, got 'ten'"),
    (("1", "1", "nan", "5"), r"object 1: field 'bndbox/xmax' must be finite, got 'nan'"),
    ((9, 1, 8, 5), r"object 1: field 'bndbox' has xmax 8 < xmin 9: an empty box"),
    ((1, 5, 8, 4), r"object 1: field 'bndbox' has ymax 4 < ymin 5"),
    ((1, 1, 401, 5), r"object 1: field 'bndbox' \[xmin 1, xmax 401\] reaches outside the image \(x must lie in 1\.\.400"),
    ((1, 1, 5, 301), r"object 1: field 'bndbox' \[ymin 1, ymax 301\] reaches outside the image \(y must lie in 1\.\.300"),
    ((0, 1, 5, 5), r"object 1: field .bndbox. \[xmin 0, xmax 5\] reaches outside .* 1-based; read 0-based files with one_based=False"),
    ((-3, 1, 5, 5), r"object 1: field 'bndbox' \[xmin -3, xmax 5\] reaches outside the image"),
])
def test_bad_boxes_name_the_file_object_and_field(tmp_path, box, message):
    path = voc_file(tmp_path, [(1, 1, 5, 5), box])
    with pytest.raises(ValueError, match=r"a\.xml: " + message):
        read_voc(path)


def test_zero_based_boxes_must_not_be_empty(tmp_path):
    with pytest.raises(ValueError, match=r"object 0: field 'bndbox' has xmax 5 = xmin 5: an empty box"):
        read_voc(voc_file(tmp_path, [(5, 1, 5, 5)]), one_based=False)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"VOC file .*nope\.xml does not exist"):
        read_voc(tmp_path / "nope.xml")
