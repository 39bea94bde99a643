"""The two-stage MSNAS detector: group RoI aligner, group RPN anchors, training, cost."""


import json
import os

import numpy as np
import pytest
import tensorflow as tf
from official.vision.modeling.layers.roi_aligner import MultilevelROIAligner

from mnas_tf import train
from mnas_tf.arch.msnas import MSNASSpec
from mnas_tf.describe import model_costs
from mnas_tf.modeling.fasterrcnn import GroupROIAligner, roi_groups
from mnas_tf.modeling.msnas import encoder_rpn_madds


def _boxes(rng, n, image=1024):
    """Boxes of 16..1024 px (every group) inside a `image`-sized square."""
    size = np.exp(rng.uniform(np.log(16), np.log(image), (1, n, 2)))
    y0 = rng.uniform(0, image - size[..., 0])
    x0 = rng.uniform(0, image - size[..., 1])
    boxes = np.stack([y0, x0, y0 + size[..., 0], x0 + size[..., 1]], -1)
    large = [[[10, 20, 1010, 1000], [0, 0, 1024, 1024], [3.5, 7.25, 990.5, 1019]]]
    return tf.constant(np.concatenate([boxes, large], axis=1), tf.float32)


def test_group_aligner_equals_model_garden_on_fpn_strides():
    rng = np.random.default_rng(0)
    features = {str(l): tf.constant(rng.normal(size=(1, 1024 // 2 ** l, 1024 // 2 ** l, 2)),
                                    tf.float32) for l in range(2, 7)}
    boxes = _boxes(rng, 300)
    ours = GroupROIAligner((4, 8, 16, 32, 64), k_first=2)(features, boxes)
    theirs = MultilevelROIAligner()(features, boxes)
    assert len(set(roi_groups(boxes, 2).numpy().ravel())) == 5
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())


def test_group_aligner_crops_each_group_feature_at_its_stride():
    strides = (8, 8, 16, 16, 32)
    # each map holds 1000 * its stride + the image x of its pixels (Model Garden puts
    # pixel i at i * stride), so a crop's mean tells which map it read and whether the box
    # was scaled by that map's stride: 1000 * s_g + the box's centre x
    features = {}
    for key, s in zip("23456", strides):
        x = np.arange(256 // s) * s + 1000.0 * s
        features[key] = tf.constant(np.tile(x[None, None, :, None], (1, 256 // s, 1, 1)),
                                    tf.float32)
    boxes = tf.constant([[[40, 40, 104, 104], [64, 16, 192, 240], [0, 0, 256, 256]]],
                        tf.float32)
    centre_x = (boxes[0, :, 1] + boxes[0, :, 3]) / 2
    for k_first in (1, 2):
        crops = GroupROIAligner(strides, k_first=k_first)(features, boxes)
        read = np.array(strides)[roi_groups(boxes, k_first).numpy()[0]]
        np.testing.assert_allclose(tf.reduce_mean(crops, [2, 3, 4])[0],
                                   1000.0 * read + centre_x, atol=0.5)
    # 64, 169 and 256 px: FPN's rule gives groups 0, 1, 2; the paper's k_first = 1 one more
    assert roi_groups(boxes, 2).numpy().tolist() == [[0, 1, 2]]
    assert roi_groups(boxes, 1).numpy().tolist() == [[1, 2, 3]]
    with pytest.raises(ValueError, match="k_first"):
        GroupROIAligner(strides, k_first=3)


def test_group_rpn_targets_model_and_cost(tiny_msnas_task):
    params, task, model, (images, labels) = tiny_msnas_task("msnas_fasterrcnn_synthetic", 2)
    for key, s in zip("23456", (4, 8, 8, 16, 64)):
        assert labels["rpn_score_targets"][key].shape[1:] == (128 // s, 128 // s, 3)
        assert labels["anchor_boxes"][key].shape[1:] == (128 // s, 128 // s, 12)
        # group g's anchors: 32 * 2^g pixels (ratio 1 is the middle of the three)
        box = labels["anchor_boxes"][key][0, 0, 0, 4:8].numpy()
        assert box[2] - box[0] == pytest.approx(32 * 2 ** (int(key) - 2))
    assert float(tf.reduce_sum(tf.cast(labels["rpn_score_targets"]["3"] == 1, tf.int32))) > 0
    # the aligner reads each group's feature at its stride, with the config's k_first
    assert model.roi_aligner.get_config()["feature_strides"] == [4, 8, 8, 16, 64]
    # box head: two 3x3 convs and one fc (§4.1)
    head = model.detection_head[0].get_config()
    assert (head["num_convs"], head["num_fcs"]) == (2, 1)
    # inference without passed anchors uses the group layout
    detections = model(images[:1], image_shape=labels["image_info"][:1, 1, :],
                       training=False)
    assert detections["detection_boxes"].shape == (1, 100, 4)
    # describe's Table 1 measure (encoder + RPN) equals the analytic one the search can use
    info = model_costs(params, model)
    assert info["detector"] == "fasterrcnn"
    assert info["encoder_rpn_madds"] == encoder_rpn_madds(
        MSNASSpec.from_json(params.task.model.backbone.msnas.architecture), (128, 128),
        params.task.model)
    assert info["madds"] == info["encoder_rpn_madds"] + info["parts"]["box_head"]["madds"]


def test_synthetic_twin_trains_and_evaluates_through_the_cli(tiny_dataset, tiny_msnas_arch,
                                                            tmp_path):
    d = tiny_dataset
    model_dir = str(tmp_path / "run")
    override = (f"task.train_data.input_path={d.train_records},"
                f"task.validation_data.input_path={d.val_records},"
                f"task.annotation_file={d.val_annotations},task.model.input_size=[128,128,3],"
                f"task.train_data.global_batch_size=2,task.validation_data.global_batch_size=8,"
                f"trainer.steps_per_loop=2,trainer.summary_interval=2,"
                f"trainer.checkpoint_interval=2,trainer.validation_interval=2,"
                f"trainer.train_steps=2")
    argv = ["--experiment", "msnas_fasterrcnn_synthetic", "--model-dir", model_dir,
            "--params-override", override,
            "--params-override", json.dumps({"task": {"model": {"backbone": {
                "msnas": {"architecture": tiny_msnas_arch}}}}})]
    assert train.main(argv) == 0
    metrics = json.load(open(os.path.join(model_dir, "metrics.json")))
    assert {"AP", "AP50"} <= set(metrics)
    assert tf.train.latest_checkpoint(model_dir).endswith("-2")


def test_bad_k_first_is_a_one_line_error(tiny_dataset, tmp_path, capsys):
    d = tiny_dataset
    argv = ["--experiment", "msnas_fasterrcnn_synthetic", "--model-dir", str(tmp_path),
            "--params-override", f"task.train_data.input_path={d.train_records},"
            f"task.validation_data.input_path={d.val_records},"
            f"task.annotation_file={d.val_annotations},task.model.roi_aligner.k_first=3"]
    assert train.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "k_first must be 1" in err and "Traceback" not in err
