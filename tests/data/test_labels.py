"""Category names and the label map that ships beside an exported TFLite."""

import json

from mnas_tf.data import labels, shapes


def test_label_map_names_each_class_index(tmp_path):
    ann = tmp_path / "a.json"
    ann.write_text(json.dumps({"categories": [{"id": 3, "name": "car"},
                                              {"id": 1, "name": "tree"}]}))
    cats = labels.categories_of(str(ann))
    assert cats == [{"id": 1, "name": "tree"}, {"id": 3, "name": "car"}]
    assert labels.label_map(cats, 5) == ["???", "tree", "???", "car", "???"]
    path = labels.label_map_path(str(tmp_path / "m.tflite"))
    assert path.endswith("m.labels.txt")
    labels.write_label_map(path, labels.label_map(cats, 4))
    assert open(path).read() == "???\ntree\n???\ncar\n"


def test_synthetic_and_missing_annotations():
    assert [c["name"] for c in labels.categories_of("synthetic://val")] == list(shapes.NAMES)
    assert labels.categories_of(None) == []
    assert labels.categories_of("/no/such/file.json") == []
    assert labels.categories_of("/data/train-00000-of-00001.tfrecord") == []
