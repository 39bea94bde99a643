"""MSNAS encoder + feature utilization as a Model Garden backbone, and its anchor layout.

`MSNASEncoder` (backbone type `msnas`) runs the stem, the mixed blocks with the paper's
laterals (eq. 4-6) and returns one feature per detection group, keyed '2'..'6' (group g
is key g+2), so Model Garden's RetinaNetHead, losses and detection generator run as-is.
Groups may share a feature map (two keys, one tensor).

The only departure from RetinaNet is the anchor layout: group g's anchors have the size
of FPN level g+2 (anchor_size * 2^(g+2)) but sit on the grid of stride s_g, the stride of
the feature the group reads. `GroupAnchorGenerator` makes that layout, `GroupAnchorParser`
labels with it (Model Garden's Parser takes an `input_anchor`), and `MSNASRetinaNet`
uses it at inference when no anchors are passed.
"""

from __future__ import annotations

import collections
import math
from typing import Any, Mapping, Optional, Sequence

import tensorflow as tf
import tf_keras
from official.vision.dataloaders import retinanet_input
from official.vision.modeling import retinanet_model
from official.vision.modeling.backbones import factory as backbone_factory

from mnas_tf.arch.msnas import FIRST_GROUP_LEVEL, NUM_GROUPS, MSNASSpec, load_msnas
from mnas_tf.modeling.layers import ConfigDictModel, ConfigurableLayer

GROUP_KEYS = tuple(str(FIRST_GROUP_LEVEL + g) for g in range(NUM_GROUPS))
ENCODER_OUTPUT = "encoder"  # the final block's output (no head reads it)


def _conv(filters, kernel, strides, name, regularizer):
    return tf_keras.layers.Conv2D(filters, kernel, strides=strides, padding="same",
                                  use_bias=False, kernel_regularizer=regularizer,
                                  kernel_initializer="he_normal", name=name)


def _bn(name, momentum, epsilon, use_sync_bn=False):
    """SyncBN (the paper's, for the encoder) when asked: statistics over all replicas."""
    return tf_keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon,
                                              synchronized=use_sync_bn, name=name)


@tf_keras.utils.register_keras_serializable(package="mnas_tf")
class Stem(ConfigurableLayer):
    """Two 3x3 stride-2 conv+BN+ReLU: the input to stride 4 at the encoder width."""

    def __init__(self, channels: int, norm_momentum: float = 0.99, norm_epsilon: float = 1e-3,
                 kernel_regularizer: Any = None, use_sync_bn: bool = False, **kwargs):
        super().__init__(**kwargs)
        self._record(channels=channels, norm_momentum=norm_momentum,
                     norm_epsilon=norm_epsilon, kernel_regularizer=kernel_regularizer,
                     use_sync_bn=use_sync_bn)
        reg = self._config_dict["kernel_regularizer"]
        self._convs = [_conv(channels, 3, 2, f"conv_{i}", reg) for i in range(2)]
        self._bns = [_bn(f"bn_{i}", norm_momentum, norm_epsilon, use_sync_bn)
                     for i in range(2)]

    def call(self, x, training=None):
        for conv, bn in zip(self._convs, self._bns):
            x = tf.nn.relu(bn(conv(x), training=training))
        return x


@tf_keras.utils.register_keras_serializable(package="mnas_tf")
class StrideBlock(ConfigurableLayer):
    """One choice of a mixed block at relative stride 0.5, 1 or 2; width never changes.

    0.5: the paper's "upsampling block with an interpolation operator followed by a
    convolution": bilinear x2, then one 3x3 conv + BN + ReLU (one conv: with two, Table
    7's architectures cost 19% over their FLOPs target; README, "MSNAS cost").
    1: a ResNet basic block (two 3x3 convs, identity shortcut). 2: the same with the first
    conv strided and a strided 1x1 conv + BN shortcut (ResNet's projection).
    """

    def __init__(self, channels: int, stride: float, norm_momentum: float = 0.99,
                 norm_epsilon: float = 1e-3, kernel_regularizer: Any = None,
                 use_sync_bn: bool = False, **kwargs):
        super().__init__(**kwargs)
        if stride not in (0.5, 1, 2):
            raise ValueError(f"StrideBlock stride must be 0.5, 1 or 2, got {stride!r}")
        self._record(channels=channels, stride=stride, norm_momentum=norm_momentum,
                     norm_epsilon=norm_epsilon, kernel_regularizer=kernel_regularizer,
                     use_sync_bn=use_sync_bn)
        reg = self._config_dict["kernel_regularizer"]
        self._stride = stride
        self._conv1 = _conv(channels, 3, 2 if stride == 2 else 1, "conv_1", reg)
        self._bn1 = _bn("bn_1", norm_momentum, norm_epsilon, use_sync_bn)
        if stride == 0.5:
            return
        self._conv2 = _conv(channels, 3, 1, "conv_2", reg)
        self._bn2 = _bn("bn_2", norm_momentum, norm_epsilon, use_sync_bn)
        if stride == 2:
            self._proj = _conv(channels, 1, 2, "projection", reg)
            self._proj_bn = _bn("projection_bn", norm_momentum, norm_epsilon, use_sync_bn)

    def call(self, x, training=None):
        if self._stride == 0.5:
            return tf.nn.relu(self._bn1(self._conv1(upsample2x(x)), training=training))
        shortcut = x
        if self._stride == 2:
            shortcut = self._proj_bn(self._proj(x), training=training)
        y = tf.nn.relu(self._bn1(self._conv1(x), training=training))
        y = self._bn2(self._conv2(y), training=training)
        return tf.nn.relu(y + shortcut)


def upsample2x(x):
    """Bilinear x2 resize that also works when the spatial size is only known at run time."""
    size = tf.shape(x)[1:3] * 2
    return tf.cast(tf.image.resize(x, size, method="bilinear"), x.dtype)


@tf_keras.utils.register_keras_serializable(package="mnas_tf")
class LateralConv(ConfigurableLayer):
    """The 1x1 conv + BN after a block that later stage ends add (eq. 5)."""

    def __init__(self, channels: int, norm_momentum: float = 0.99, norm_epsilon: float = 1e-3,
                 kernel_regularizer: Any = None, use_sync_bn: bool = False, **kwargs):
        super().__init__(**kwargs)
        self._record(channels=channels, norm_momentum=norm_momentum,
                     norm_epsilon=norm_epsilon, kernel_regularizer=kernel_regularizer,
                     use_sync_bn=use_sync_bn)
        self._conv = _conv(channels, 1, 1, "conv", self._config_dict["kernel_regularizer"])
        self._bn = _bn("bn", norm_momentum, norm_epsilon, use_sync_bn)

    def call(self, x, training=None):
        return self._bn(self._conv(x), training=training)


CHOICE_NAMES = {0.5: "up", 1: "normal", 2: "down"}


def block_name(index: int, stride: float) -> str:
    """Same names in the super-net and a child, so checkpoints line up."""
    return f"block_{index}_{CHOICE_NAMES[stride]}"


@tf_keras.utils.register_keras_serializable(package="mnas_tf")
class MSNASEncoder(ConfigDictModel, tf_keras.Model):
    """Stem, mixed blocks with laterals, and the heads' features keyed '2'..'6'.

    Every block is built and run, also those after the last block a head reads: the
    paper's encoder is the whole path (eq. 5 gives the final block a lateral) and its
    FLOPs count it (see README, "MSNAS cost"). Their output is returned under key
    ENCODER_OUTPUT, which no head reads, so that Keras does not prune them.
    """

    def __init__(self, architecture: Any, input_specs: Any = None, norm_momentum: float = 0.99,
                 norm_epsilon: float = 1e-3, kernel_regularizer: Any = None,
                 use_sync_bn: bool = False, **kwargs):
        spec = load_msnas(architecture)
        if input_specs is None:
            input_specs = tf_keras.layers.InputSpec(shape=[None, None, None, 3])
        elif not isinstance(input_specs, tf_keras.layers.InputSpec):
            input_specs = tf_keras.layers.InputSpec(shape=list(input_specs))
        kernel_regularizer = tf_keras.regularizers.get(kernel_regularizer)
        c, args = spec.encoder.channels, dict(norm_momentum=norm_momentum,
                                              norm_epsilon=norm_epsilon,
                                              kernel_regularizer=kernel_regularizer,
                                              use_sync_bn=use_sync_bn)
        image = tf_keras.Input(shape=input_specs.shape[1:])
        x = Stem(c, name="stem", **args)(image)
        outputs, laterals = [], {}
        for i, (s, r) in enumerate(zip(spec.encoder.strides,
                                       spec.encoder.lateral_sources())):
            x = StrideBlock(c, s, name=block_name(i, s), **args)(x)
            if r is not None:
                if r not in laterals:
                    laterals[r] = LateralConv(c, name=f"lateral_{r}", **args)(outputs[r])
                x = tf_keras.layers.Add(name=f"merge_{i}")([x, laterals[r]])
            outputs.append(x)
        features = {key: outputs[b] for key, b in zip(GROUP_KEYS, spec.head_blocks())}
        features[ENCODER_OUTPUT] = outputs[-1]
        super().__init__(inputs=image, outputs=features, **kwargs)
        self._spec = spec
        self._output_specs = {k: v.get_shape() for k, v in features.items()}
        self._config_dict = dict(
            architecture=spec.to_dict(), input_specs=list(input_specs.shape),
            norm_momentum=norm_momentum, norm_epsilon=norm_epsilon,
            kernel_regularizer=(tf_keras.regularizers.serialize(kernel_regularizer)
                                if kernel_regularizer is not None else None),
            use_sync_bn=use_sync_bn)

    @property
    def spec(self) -> MSNASSpec:
        return self._spec

    @property
    def output_specs(self) -> Mapping[str, tf.TensorShape]:
        return self._output_specs


@backbone_factory.register_backbone_builder("msnas")
def build_msnas_encoder(input_specs, backbone_config, norm_activation_config,
                        l2_regularizer=None) -> tf_keras.Model:
    """Model Garden backbone factory entry for `backbone.type: msnas`."""
    if backbone_config.type != "msnas":
        raise ValueError(f"inconsistent backbone type {backbone_config.type}")
    return MSNASEncoder(backbone_config.get().architecture, input_specs=input_specs,
                        norm_momentum=norm_activation_config.norm_momentum,
                        norm_epsilon=norm_activation_config.norm_epsilon,
                        kernel_regularizer=l2_regularizer,
                        use_sync_bn=norm_activation_config.use_sync_bn)


# ------------------------------------------------------------------------ anchors
def group_anchor_boxes(stride: int, level: int, num_scales: int,
                       aspect_ratios: Sequence[float], anchor_size: float,
                       image_size: Sequence[int]) -> tf.Tensor:
    """[H/stride, W/stride, A*4] anchors of level `level`'s sizes on a `stride` grid.

    Model Garden's `Anchor` math with the grid stride decoupled from the level.
    """
    feat_y = math.ceil(image_size[0] / stride)
    feat_x = math.ceil(image_size[1] / stride)
    step_y, step_x = image_size[0] / feat_y, image_size[1] / feat_x
    y = tf.range(feat_y, dtype=tf.float32) * step_y + step_y / 2
    x = tf.range(feat_x, dtype=tf.float32) * step_x + step_x / 2
    xv, yv = tf.meshgrid(x, y)
    boxes = []
    for scale in range(num_scales):
        for ratio in aspect_ratios:
            base = anchor_size * 2 ** level * 2 ** (scale / num_scales)
            half_x, half_y = base * ratio ** 0.5 / 2, base * ratio ** -0.5 / 2
            boxes.append(tf.stack([yv - half_y, xv - half_x, yv + half_y, xv + half_x],
                                  axis=-1))
    return tf.concat(boxes, axis=-1)


class GroupAnchorGenerator:
    """Callable like Model Garden's AnchorGeneratorv2: image_size -> {'2'..'6': anchors}."""

    def __init__(self, feature_strides: Sequence[int], num_scales: int,
                 aspect_ratios: Sequence[float], anchor_size: float):
        self.feature_strides = tuple(feature_strides)
        self.num_scales, self.aspect_ratios = num_scales, list(aspect_ratios)
        self.anchor_size = anchor_size

    def __call__(self, image_size):
        return collections.OrderedDict(
            (key, group_anchor_boxes(s, int(key), self.num_scales, self.aspect_ratios,
                                     self.anchor_size, image_size))
            for key, s in zip(GROUP_KEYS, self.feature_strides))

    @classmethod
    def from_config(cls, feature_strides, model_config) -> "GroupAnchorGenerator":
        a = model_config.anchor
        return cls(feature_strides, a.num_scales, a.aspect_ratios, a.anchor_size)


class GroupAnchorParser(retinanet_input.Parser):
    """Model Garden's RetinaNet parser, labelling against the group anchor layout."""

    def __init__(self, anchor_generator: GroupAnchorGenerator, **kwargs):
        super().__init__(**kwargs)
        self._group_anchors = anchor_generator

    def _parse_train_data(self, data, anchor_labeler=None, input_anchor=None):
        return super()._parse_train_data(data, anchor_labeler,
                                         input_anchor or self._group_anchors)

    def _parse_eval_data(self, data, anchor_labeler=None, input_anchor=None):
        return super()._parse_eval_data(data, anchor_labeler,
                                        input_anchor or self._group_anchors)


class MSNASRetinaNet(retinanet_model.RetinaNetModel):
    """RetinaNetModel whose default inference anchors follow the group layout."""

    def __init__(self, *args, anchor_generator: GroupAnchorGenerator, **kwargs):
        super().__init__(*args, **kwargs)
        self._group_anchors = anchor_generator

    def call(self, images, image_shape=None, anchor_boxes=None,
             output_intermediate_features=False, training=None):
        if anchor_boxes is None and not training:
            anchor_boxes = self._group_anchors(images.get_shape().as_list()[1:3])
            anchor_boxes = {k: tf.tile(v[None], [tf.shape(images)[0], 1, 1, 1])
                            for k, v in anchor_boxes.items()}
        return super().call(images, image_shape=image_shape, anchor_boxes=anchor_boxes,
                            output_intermediate_features=output_intermediate_features,
                            training=training)


def as_msnas_detector(model: retinanet_model.RetinaNetModel, model_config) -> MSNASRetinaNet:
    """Re-wraps Model Garden's RetinaNet parts (same layers) with the group anchors."""
    spec = model.backbone.spec
    return MSNASRetinaNet(
        model.backbone, model.decoder, model.head, model.detection_generator,
        min_level=model_config.min_level, max_level=model_config.max_level,
        num_scales=model_config.anchor.num_scales,
        aspect_ratios=model_config.anchor.aspect_ratios,
        anchor_size=model_config.anchor.anchor_size,
        anchor_generator=GroupAnchorGenerator.from_config(spec.feature_strides, model_config))


# ------------------------------------------------------------------------ inputs
def build_detection_inputs(task_config, params, parser,
                           input_context: Optional[tf.distribute.InputContext] = None):
    """Model Garden's RetinaNetTask.build_inputs with the parser supplied by the caller."""
    from official.vision.dataloaders import (input_reader, input_reader_factory,
                                             tf_example_decoder)
    from official.common import dataset_fn
    if params.tfds_name or params.decoder.type != "simple_decoder":
        raise ValueError("MSNAS inputs support TFRecords with decoder.type 'simple_decoder'")
    decoder = tf_example_decoder.TfExampleDecoder(
        regenerate_source_id=params.decoder.get().regenerate_source_id)
    reader = input_reader_factory.input_reader_generator(
        params, dataset_fn=dataset_fn.pick_dataset_fn(params.file_type),
        decoder_fn=decoder.decode, combine_fn=input_reader.create_combine_fn(params),
        parser_fn=parser.parse_fn(params.is_training))
    return reader.read(input_context=input_context)


def parser_kwargs(task_config, params) -> dict:
    """The arguments Model Garden's RetinaNetTask gives its Parser."""
    model, p = task_config.model, params.parser
    return dict(
        output_size=model.input_size[:2], min_level=model.min_level,
        max_level=model.max_level, num_scales=model.anchor.num_scales,
        aspect_ratios=model.anchor.aspect_ratios, anchor_size=model.anchor.anchor_size,
        dtype=params.dtype, match_threshold=p.match_threshold,
        unmatched_threshold=p.unmatched_threshold,
        box_coder_weights=model.detection_generator.box_coder_weights,
        aug_type=p.aug_type, aug_rand_hflip=p.aug_rand_hflip, aug_rand_jpeg=p.aug_rand_jpeg,
        aug_scale_min=p.aug_scale_min, aug_scale_max=p.aug_scale_max,
        skip_crowd_during_training=p.skip_crowd_during_training,
        max_num_instances=p.max_num_instances, pad=p.pad,
        keep_aspect_ratio=p.keep_aspect_ratio)


# ------------------------------------------------------------------------ cost
def encoder_madds(spec: MSNASSpec, input_size: Sequence[int]) -> int:
    """MAdds of the encoder at `input_size` (convs only, the cost.py convention).

    Every block counts, also those after the last block a head reads (the encoder
    builds them; see MSNASEncoder). An up block is one 3x3 conv at its output size.
    """
    h, w = input_size
    c = spec.encoder.channels
    area = lambda stride: math.ceil(h / stride) * math.ceil(w / stride)  # noqa: E731
    total = area(2) * 9 * 3 * c + area(4) * 9 * c * c
    strides = spec.encoder.block_strides()
    for rel, out in zip(spec.encoder.strides, strides):
        convs = 1 if rel == 0.5 else 2
        total += convs * area(out) * 9 * c * c + (area(out) * c * c if rel == 2 else 0)
    for r in {r for r in spec.encoder.lateral_sources() if r is not None}:
        total += area(strides[r]) * c * c
    return total


def rpn_madds(feature_strides: Sequence[int], input_size: Sequence[int], in_channels: int,
              num_convs: int, num_filters: int, num_anchors: int) -> int:
    """MAdds of Model Garden's RPNHead (3x3 convs, 1x1 objectness and box convs).

    It runs once per group, so groups that share a feature map each pay for it.
    """
    per_location, cin = 0, in_channels
    for _ in range(num_convs):
        per_location += 9 * cin * num_filters
        cin = num_filters
    per_location += cin * num_anchors * 5
    h, w = input_size
    return sum(math.ceil(h / s) * math.ceil(w / s) * per_location for s in feature_strides)


def encoder_rpn_madds(spec: MSNASSpec, input_size: Sequence[int], model_config) -> int:
    """The paper's search measure (Table 1, "FLOPs (Encoder+RPN)") for `spec`.

    `model_config` is a Faster R-CNN model config: its `rpn_head` and `anchor` give the
    RPN's width and anchors per location, so nothing here is fixed to one experiment.
    """
    rpn, anchor = model_config.rpn_head, model_config.anchor
    return encoder_madds(spec, input_size) + rpn_madds(
        spec.feature_strides, input_size, spec.encoder.channels, rpn.num_convs,
        rpn.num_filters, anchor.num_scales * len(anchor.aspect_ratios))


def head_madds(feature_strides: Sequence[int], input_size: Sequence[int], in_channels: int,
               num_convs: int, num_filters: int, num_classes: int, num_anchors: int,
               separable: bool = False) -> int:
    """MAdds of Model Garden's RetinaNetHead (two towers, two predictors) on every group."""
    def conv(cin, cout):
        return 9 * cin + cin * cout if separable else 9 * cin * cout
    per_location = 0
    cin = in_channels
    for _ in range(num_convs):
        per_location += 2 * conv(cin, num_filters)
        cin = num_filters
    per_location += conv(cin, num_classes * num_anchors) + conv(cin, 4 * num_anchors)
    h, w = input_size
    return sum(math.ceil(h / s) * math.ceil(w / s) * per_location for s in feature_strides)
