"""Two-stage experiments: Model Garden's Faster R-CNN configs, extended for MSNAS.

Model Garden's `MaskRCNN` config with `include_mask=False` (its `fasterrcnn_resnetfpn_coco`)
plus our backbones (the `msnas` encoder among them) and a `k_first` for the group RoI
aligner. Experiments: `msnas_fasterrcnn_coco` (the paper's detector and schedule, §4.1),
its CPU twin `msnas_fasterrcnn_synthetic`, and the Table 1 baselines
`fasterrcnn_resnet{18,34,50}fpn` with the same box head and schedule; `msnas_supernet_paper`
is the one-stage experiment the paper-scale super-net trains with (the same schedule).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

from official.core import config_definitions as cfg
from official.core import exp_factory
from official.modeling import optimization
from official.vision.configs import common, decoders, maskrcnn
from official.vision.configs import backbones as mg_backbones

from mnas_tf.configs.retinanet import (COCO_INPUT_PATH_BASE, SYNTHETIC, Backbone, Decoder,
                                       MSNASBackbone, msnas_synthetic, synthetic_runtime,
                                       synthetic_trainer)

COCO_TRAIN_IMAGES = 118_287
K_FIRST_CHOICES = (1, 2)


@dataclasses.dataclass
class ROIAligner(maskrcnn.ROIAligner):
    """`k_first` (MSNAS group aligner only): RoI group = clip(4 + floor(log2(sqrt(wh)/224))
    - k_first, 0, 4). 1: the paper's Fig. 2(b) (group 0 takes RoIs of 56-112 px); 2: FPN's
    rule (group g <-> FPN level g+2)."""
    k_first: int = 2


@dataclasses.dataclass
class FasterRCNN(maskrcnn.MaskRCNN):
    include_mask: bool = False
    backbone: Backbone = dataclasses.field(
        default_factory=lambda: Backbone(type="msnas", msnas=MSNASBackbone()))
    decoder: Decoder = dataclasses.field(default_factory=lambda: Decoder(type="identity"))
    roi_aligner: ROIAligner = dataclasses.field(default_factory=ROIAligner)
    mask_head: Optional[maskrcnn.MaskHead] = None
    mask_sampler: Optional[maskrcnn.MaskSampler] = None
    mask_roi_aligner: Optional[maskrcnn.MaskROIAligner] = None


@dataclasses.dataclass
class FasterRCNNTask(maskrcnn.MaskRCNNTask):
    model: FasterRCNN = dataclasses.field(default_factory=FasterRCNN)

    def check(self) -> None:
        """Values the field types cannot restrict (`load_experiment` calls this)."""
        k_first = self.model.roi_aligner.k_first
        if k_first not in K_FIRST_CHOICES:
            raise ValueError(f"task.model.roi_aligner.k_first must be 1 (the paper's Fig. "
                             f"2(b)) or 2 (FPN's rule), got {k_first!r}")


def box_head() -> maskrcnn.DetectionHead:
    """§4.1: "two convolutions and one fully-connected layer" (He et al. 2019)."""
    return maskrcnn.DetectionHead(num_convs=2, num_filters=256, num_fcs=1, fc_dims=1024)


def paper_schedule(steps_per_epoch: int, epochs: int = 48, warmup_lr: float = 0.00125,
                   base_lr: float = 0.04) -> optimization.OptimizationConfig:
    """§4.1: SGD momentum 0.9, one warm-up epoch 0.00125 -> 0.04, x0.1 at epochs 42, 47."""
    boundaries = [round(steps_per_epoch * epochs * e / 48) for e in (42, 47)]
    return optimization.OptimizationConfig({
        "optimizer": {"type": "sgd", "sgd": {"momentum": 0.9}},
        "learning_rate": {"type": "stepwise", "stepwise": {
            "boundaries": boundaries, "values": [base_lr, base_lr / 10, base_lr / 100]}},
        "warmup": {"type": "linear", "linear": {"warmup_steps": steps_per_epoch,
                                                "warmup_learning_rate": warmup_lr}}})


def coco_fasterrcnn(model: FasterRCNN) -> cfg.ExperimentConfig:
    """`model` trained from scratch on COCO as §4.1 trains MSNAS (and its baselines).

    Images are resized to fit 800x1333 and padded to a multiple of 64 (2^max_level);
    batch 32, 48 epochs ("4x"), weight decay 1e-4, SyncBN (16 GPUs in the paper).
    """
    batch_size = 32
    steps_per_epoch = COCO_TRAIN_IMAGES // batch_size
    epochs = 48
    return cfg.ExperimentConfig(
        runtime=cfg.RuntimeConfig(mixed_precision_dtype="float32"),
        task=FasterRCNNTask(
            annotation_file=os.path.join(COCO_INPUT_PATH_BASE, "instances_val2017.json"),
            model=model,
            losses=maskrcnn.Losses(l2_weight_decay=1e-4),
            train_data=maskrcnn.DataConfig(
                input_path=os.path.join(COCO_INPUT_PATH_BASE, "train*"), is_training=True,
                global_batch_size=batch_size,
                parser=maskrcnn.Parser(aug_rand_hflip=True, aug_scale_min=1.0,
                                       aug_scale_max=1.0)),
            validation_data=maskrcnn.DataConfig(
                input_path=os.path.join(COCO_INPUT_PATH_BASE, "val*"), is_training=False,
                global_batch_size=8, drop_remainder=False)),
        trainer=cfg.TrainerConfig(
            train_steps=steps_per_epoch * epochs,
            validation_steps=5000 // 8,
            validation_interval=steps_per_epoch,
            steps_per_loop=500,
            summary_interval=500,
            checkpoint_interval=steps_per_epoch,
            best_checkpoint_eval_metric="AP",
            optimizer_config=paper_schedule(steps_per_epoch, epochs)),
        restrictions=["task.train_data.is_training != None",
                      "task.validation_data.is_training != None"])


def fasterrcnn_model(backbone: Backbone, decoder: Decoder, num_classes: int = 91,
                     input_size=(800, 1333)) -> FasterRCNN:
    """The §4.1 detector: levels/groups 2-6, 3 anchors of size 8 * 2^l, 2-conv+1-fc head."""
    return FasterRCNN(
        num_classes=num_classes, input_size=[*input_size, 3], min_level=2, max_level=6,
        anchor=maskrcnn.Anchor(num_scales=1, aspect_ratios=[0.5, 1.0, 2.0], anchor_size=8.0),
        backbone=backbone, decoder=decoder, detection_head=box_head(),
        norm_activation=common.NormActivation(activation="relu", use_sync_bn=True,
                                              norm_momentum=0.997, norm_epsilon=1e-4))


@exp_factory.register_config_factory("msnas_fasterrcnn_coco")
def msnas_fasterrcnn_coco() -> cfg.ExperimentConfig:
    """MSNAS (default: Table 7's MSNAS-R18 top-5 architecture) as the paper trains it."""
    return coco_fasterrcnn(fasterrcnn_model(
        Backbone(type="msnas", msnas=MSNASBackbone()), Decoder(type="identity")))


def _resnet_fpn(model_id: int) -> cfg.ExperimentConfig:
    return coco_fasterrcnn(fasterrcnn_model(
        Backbone(type="resnet", resnet=mg_backbones.ResNet(model_id=model_id)),
        Decoder(type="fpn", fpn=decoders.FPN(num_filters=256))))


@exp_factory.register_config_factory("fasterrcnn_resnet18fpn")
def fasterrcnn_resnet18fpn() -> cfg.ExperimentConfig:
    """Table 1's R18-FPN baseline (145.45 GFLOPs Encoder+RPN at 832x1280)."""
    return _resnet_fpn(18)


@exp_factory.register_config_factory("fasterrcnn_resnet34fpn")
def fasterrcnn_resnet34fpn() -> cfg.ExperimentConfig:
    """Table 1's R34-FPN baseline (182.20 GFLOPs Encoder+RPN at 832x1280)."""
    return _resnet_fpn(34)


@exp_factory.register_config_factory("fasterrcnn_resnet50fpn")
def fasterrcnn_resnet50fpn() -> cfg.ExperimentConfig:
    """Table 1's R50-FPN baseline (197.33 GFLOPs Encoder+RPN at 832x1280)."""
    return _resnet_fpn(50)


@exp_factory.register_config_factory("msnas_supernet_paper")
def msnas_supernet_paper() -> cfg.ExperimentConfig:
    """The super-net's experiment of the paper-scale searches (configs/search/msnas_r*.yaml).

    `msnas_synthetic`'s one-stage task (the super-net's head and losses; the search sets
    data, input size and head) with §4.1's optimizer: `paper_schedule` over 48 epochs and
    weight decay 1e-4. The search stretches the schedule to `supernet.steps`, so only its
    shape matters here (warm-up 1/48 of training, x0.1 at 42/48 and 47/48).
    """
    params = msnas_synthetic()
    steps_per_epoch, epochs = COCO_TRAIN_IMAGES // 32, 48
    params.task.losses.l2_weight_decay = 1e-4
    params.trainer.train_steps = steps_per_epoch * epochs
    params.trainer.optimizer_config = paper_schedule(steps_per_epoch, epochs)
    return params


@exp_factory.register_config_factory("msnas_fasterrcnn_synthetic")
def msnas_fasterrcnn_synthetic() -> cfg.ExperimentConfig:
    """The MSNAS Faster R-CNN on the embedded synthetic dataset, sized for a 2-core CPU.

    The same detector (6 classes + background), at 192x192 with narrower RPN and box
    heads, fewer RoIs, BN momentum 0.9, no SyncBN (one device) and Adam with a cosine
    schedule, as the other synthetic twins (`mnasfpn_synthetic`, `msnas_synthetic`): the
    paper's SGD schedule is tuned for 48 COCO epochs. CPU runs pass a narrow inline
    `backbone.msnas.architecture` (the paper's are 144-180 channels wide).
    """
    batch_size, train_steps = 8, 200
    model = fasterrcnn_model(Backbone(type="msnas", msnas=MSNASBackbone()),
                             Decoder(type="identity"), num_classes=7, input_size=(192, 192))
    model.rpn_head = maskrcnn.RPNHead(num_filters=64)
    model.detection_head = maskrcnn.DetectionHead(num_convs=2, num_filters=64, num_fcs=1,
                                                  fc_dims=128)
    model.roi_generator = maskrcnn.ROIGenerator(pre_nms_top_k=1000, num_proposals=200,
                                                test_pre_nms_top_k=500,
                                                test_num_proposals=100)
    model.roi_sampler = maskrcnn.ROISampler(num_sampled_rois=64)
    model.detection_generator = maskrcnn.DetectionGenerator(nms_version="batched",
                                                            pre_nms_top_k=500)
    model.norm_activation = common.NormActivation(activation="relu", use_sync_bn=False,
                                                  norm_momentum=0.9, norm_epsilon=1e-3)
    return cfg.ExperimentConfig(
        runtime=synthetic_runtime(),
        task=FasterRCNNTask(
            annotation_file=SYNTHETIC + "val",
            model=model,
            losses=maskrcnn.Losses(l2_weight_decay=1e-4),
            train_data=maskrcnn.DataConfig(
                input_path=SYNTHETIC + "train", is_training=True,
                global_batch_size=batch_size, shuffle_buffer_size=1000,
                parser=maskrcnn.Parser(aug_rand_hflip=True, aug_scale_min=0.8,
                                       aug_scale_max=1.2)),
            validation_data=maskrcnn.DataConfig(
                input_path=SYNTHETIC + "val", is_training=False, global_batch_size=8,
                drop_remainder=False)),
        trainer=synthetic_trainer(train_steps),
        restrictions=["task.train_data.is_training != None",
                      "task.validation_data.is_training != None"])
