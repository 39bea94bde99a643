"""`python -m mnas_tf.describe`: cost of a detector, whole and per part.

Builds the detector of an experiment (or YAML) and prints MAdds and parameters for the
backbone, the head (decoder) and the predictor (one-stage) or the RPN and box head
(two-stage, which also report `encoder_rpn_madds`, the MSNAS paper's Table 1 measure), the
anchor count and output shapes.
MAdds come from the traced inference graph (BN folded, see mnas_tf.cost); parameters are
trainable weights (BN gamma/beta included, moving statistics not).

`--draw FILE.svg` instead draws the architecture ARCH (a shipped name, a .json path or
inline JSON; MnasFPN-family or MSNAS) the way the search report does, without building
a model (`mnas_tf.arch.draw`).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Optional, Sequence

from mnas_tf import console  # noqa: E402  (first: quiets TensorFlow before it loads)


def describe(ref: Optional[str] = None, input_size: Optional[Sequence[int]] = None,
             overrides: Sequence[Any] = ()) -> dict[str, Any]:
    """Builds the experiment's model and returns its costs as a JSON-ready dict."""
    from official.core import task_factory

    from mnas_tf.experiment import DEFAULT_EXPERIMENT, check_input_size, load_experiment

    overrides = list(overrides)
    if input_size:
        overrides.append({"task": {"model": {"input_size": [*input_size, 3]}}})
    params = load_experiment(ref, overrides)
    check_input_size(params)
    model = task_factory.get_task(params.task).build_model()
    return {"experiment": ref or DEFAULT_EXPERIMENT, **model_costs(params, model)}


def model_costs(params, model) -> dict[str, Any]:
    """Costs of `model`, built from `params` at `params.task.model.input_size`."""
    import tf_keras

    from mnas_tf import cost
    from mnas_tf.modeling.factory import num_anchors_per_location
    model_cfg = params.task.model
    height, width = model_cfg.input_size[:2]
    image_shape = (1, height, width, 3)
    backbone_out = model.backbone(tf_keras.Input(image_shape[1:], batch_size=1))
    backbone_shapes = {k: tuple(v.shape) for k, v in backbone_out.items()}
    features = model.decoder(backbone_out) if model.decoder is not None else backbone_out
    # levels only: an MSNAS encoder also returns its final block's output, which no head reads
    feature_shapes = {k: tuple(v.shape) for k, v in features.items() if k.isdigit()}
    parts = {
        "backbone": {"madds": cost.count_madds(model.backbone, image_shape),
                     "params": cost.count_params(model.backbone)},
        "head": ({"madds": cost.count_madds(model.decoder, backbone_shapes),
                  "params": cost.count_params(model.decoder)}
                 if model.decoder is not None else {"madds": 0, "params": 0}),
    }
    anchors_per_loc = num_anchors_per_location(model_cfg)
    num_anchors = sum(s[1] * s[2] * anchors_per_loc for s in feature_shapes.values())
    decoder_cfg = model_cfg.decoder.get()
    info = {
        "detector": "fasterrcnn" if hasattr(model, "rpn_head") else "retinanet",
        "backbone": f"{model_cfg.backbone.type}:{getattr(model_cfg.backbone.get(), 'model_id', '')}",
        "decoder": model_cfg.decoder.type,
        "architecture": getattr(decoder_cfg, "architecture", None),
        "input_size": [height, width],
        "num_classes": model_cfg.num_classes,
        "num_anchors": num_anchors,
        "anchors_per_location": anchors_per_loc,
        "parts": parts,
        "feature_shapes": {k: list(v[1:]) for k, v in sorted(feature_shapes.items())},
    }
    if info["detector"] == "fasterrcnn":
        _two_stage_parts(model, model_cfg, feature_shapes, info)
    else:
        scores, boxes, _ = model.head({k: features[k] for k in feature_shapes})
        parts["predictor"] = {"madds": cost.count_madds(model.head, feature_shapes),
                              "params": cost.count_params(model.head)}
        info["output_shapes"] = {
            "class_outputs": {k: list(v.shape[1:]) for k, v in sorted(scores.items())},
            "box_outputs": {k: list(v.shape[1:]) for k, v in sorted(boxes.items())}}
    info["madds"] = sum(p["madds"] for p in parts.values())
    info["params"] = sum(p["params"] for p in parts.values())
    return info


def _two_stage_parts(model, model_cfg, feature_shapes, info) -> None:
    """Faster R-CNN: the RPN, the box head on the test-time proposals, Table 1's measure.

    `encoder_rpn_madds` is backbone + decoder + RPN head, what the MSNAS paper's Table 1
    and its search constraint count ("FLOPs (Encoder+RPN)"); the box head runs on
    `roi_generator.test_num_proposals` RoIs of crop_size^2 pixels.
    """
    from mnas_tf import cost
    parts = info["parts"]
    parts["rpn"] = {"madds": cost.count_madds(lambda f: model.rpn_head(f), feature_shapes),
                    "params": cost.count_params(model.rpn_head)}
    head = model.detection_head[0]
    crop = model_cfg.roi_aligner.crop_size
    channels = next(iter(feature_shapes.values()))[-1]
    rois = (1, model_cfg.roi_generator.test_num_proposals, crop, crop, channels)
    parts["box_head"] = {"madds": cost.count_madds(lambda x: head(x), rois),
                         "params": cost.count_params(head)}
    info["encoder_rpn_madds"] = sum(parts[k]["madds"] for k in ("backbone", "head", "rpn"))


def format_report(info: dict[str, Any]) -> str:
    lines = [f"{info['experiment']}  ({info['backbone']} + {info['decoder']}"
             f"{':' + info['architecture'] if info['architecture'] else ''}, "
             f"{info['input_size'][0]}x{info['input_size'][1]}, {info['num_classes']} class slots "
             f"incl. background)",
             f"  {'part':<10} {'MAdds':>10} {'params':>10}"]
    for name, part in info["parts"].items():
        lines.append(f"  {name:<10} {part['madds'] / 1e9:>9.3f}B {part['params'] / 1e6:>9.3f}M")
    lines.append(f"  {'total':<10} {info['madds'] / 1e9:>9.3f}B {info['params'] / 1e6:>9.3f}M")
    lines.append(f"  anchors: {info['num_anchors']:,} ({info['anchors_per_location']} per location)")
    if "encoder_rpn_madds" in info:
        lines.append(f"  encoder + RPN (the MSNAS paper's Table 1 measure): "
                     f"{info['encoder_rpn_madds'] / 1e9:.3f}B")
    for level, shape in info["feature_shapes"].items():
        outputs = info.get("output_shapes")
        lines.append(f"  P{level}: {'x'.join(map(str, shape))}" + (
            f"   class {outputs['class_outputs'][level][-1]} ch, box "
            f"{outputs['box_outputs'][level][-1]} ch" if outputs else ""))
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnas_tf.describe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", nargs="?", default=None,
                        help="registered experiment name or YAML file "
                             "(default: mnasfpn_mobilenetv2_coco); with --draw, an "
                             "architecture")
    parser.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"))
    parser.add_argument("--params-override", action="append", default=[],
                        help="YAML/JSON overrides, e.g. "
                             "'task: {model: {decoder: {mnasfpn: {architecture: x.json}}}}'")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--draw", metavar="FILE.svg",
                        help="draw the positional ARCH (architecture name, .json or inline "
                             "JSON) as SVG to FILE.svg instead of describing an experiment")
    console.add_flag(parser)
    args = parser.parse_args(console.cli(argv))
    if args.input_size and min(args.input_size) <= 0:
        parser.error("--input-size needs two positive integers")

    if args.draw:  # before Model Garden loads: drawing builds nothing
        return draw_main(args.experiment, args.draw)
    from mnas_tf.arch import ArchitectureError
    from mnas_tf.experiment import ConfigError
    try:
        info = describe(args.experiment, args.input_size, args.params_override)
    except (ConfigError, ArchitectureError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(info) if args.json else format_report(info))
    return 0


def draw_main(ref: Optional[str], path: str) -> int:
    """`--draw`: ARCH as SVG to `path`; one line and exit code 2 on a bad ARCH or path."""
    from mnas_tf.arch import ArchitectureError
    from mnas_tf.arch.draw import draw, load_any
    from mnas_tf.writable import NotWritableError, check_writable_file
    try:
        if not ref:
            raise ArchitectureError("--draw needs an architecture: python -m "
                                    "mnas_tf.describe ARCH --draw FILE.svg")
        check_writable_file(path, "--draw")
        svg = draw(load_any(ref))
        with open(path, "w", encoding="utf-8") as f:
            f.write(svg)
    except (ArchitectureError, NotWritableError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"drew {ref} to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
