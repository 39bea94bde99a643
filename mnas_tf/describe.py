"""`python -m mnas_tf.describe`: cost of a detector, whole and per part.

Builds the detector of an experiment (or YAML) and prints MAdds and parameters for the
backbone, the head (decoder) and the predictor, the anchor count and output shapes.
MAdds come from the traced inference graph (BN folded, see mnas_tf.cost); parameters are
trainable weights (BN gamma/beta included, moving statistics not).
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
    import tf_keras
    from official.core import task_factory

    from mnas_tf import cost
    from mnas_tf.experiment import DEFAULT_EXPERIMENT, check_input_size, load_experiment
    from mnas_tf.modeling.factory import num_anchors_per_location

    overrides = list(overrides)
    if input_size:
        overrides.append({"task": {"model": {"input_size": [*input_size, 3]}}})
    params = load_experiment(ref, overrides)
    check_input_size(params)
    model_cfg = params.task.model
    height, width = model_cfg.input_size[:2]
    model = task_factory.get_task(params.task).build_model()

    image_shape = (1, height, width, 3)
    backbone_out = model.backbone(tf_keras.Input(image_shape[1:], batch_size=1))
    backbone_shapes = {k: tuple(v.shape) for k, v in backbone_out.items()}
    features = model.decoder(backbone_out) if model.decoder is not None else backbone_out
    feature_shapes = {k: tuple(v.shape) for k, v in features.items()}
    scores, boxes, _ = model.head(features)

    parts = {
        "backbone": {"madds": cost.count_madds(model.backbone, image_shape),
                     "params": cost.count_params(model.backbone)},
        "head": ({"madds": cost.count_madds(model.decoder, backbone_shapes),
                  "params": cost.count_params(model.decoder)}
                 if model.decoder is not None else {"madds": 0, "params": 0}),
        "predictor": {"madds": cost.count_madds(model.head, feature_shapes),
                      "params": cost.count_params(model.head)},
    }
    anchors_per_loc = num_anchors_per_location(model_cfg)
    num_anchors = sum(s[1] * s[2] * anchors_per_loc for s in feature_shapes.values())
    decoder_cfg = model_cfg.decoder.get()
    return {
        "experiment": ref or DEFAULT_EXPERIMENT,
        "backbone": f"{model_cfg.backbone.type}:{getattr(model_cfg.backbone.get(), 'model_id', '')}",
        "decoder": model_cfg.decoder.type,
        "architecture": getattr(decoder_cfg, "architecture", None),
        "input_size": [height, width],
        "num_classes": model_cfg.num_classes,
        "madds": sum(p["madds"] for p in parts.values()),
        "params": sum(p["params"] for p in parts.values()),
        "num_anchors": num_anchors,
        "anchors_per_location": anchors_per_loc,
        "parts": parts,
        "feature_shapes": {k: list(v[1:]) for k, v in sorted(feature_shapes.items())},
        "output_shapes": {
            "class_outputs": {k: list(v.shape[1:]) for k, v in sorted(scores.items())},
            "box_outputs": {k: list(v.shape[1:]) for k, v in sorted(boxes.items())}},
    }


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
    for level, shape in info["feature_shapes"].items():
        lines.append(f"  P{level}: {'x'.join(map(str, shape))}   class "
                     f"{info['output_shapes']['class_outputs'][level][-1]} ch, box "
                     f"{info['output_shapes']['box_outputs'][level][-1]} ch")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mnas_tf.describe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", nargs="?", default=None,
                        help="registered experiment name or YAML file "
                             "(default: mnasfpn_mobilenetv2_coco)")
    parser.add_argument("--input-size", nargs=2, type=int, metavar=("H", "W"))
    parser.add_argument("--params-override", action="append", default=[],
                        help="YAML/JSON overrides, e.g. "
                             "'task: {model: {decoder: {mnasfpn: {architecture: x.json}}}}'")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    console.add_flag(parser)
    args = parser.parse_args(console.cli(argv))
    if args.input_size and min(args.input_size) <= 0:
        parser.error("--input-size needs two positive integers")

    from mnas_tf.arch import ArchitectureError
    from mnas_tf.experiment import ConfigError
    try:
        info = describe(args.experiment, args.input_size, args.params_override)
    except (ConfigError, ArchitectureError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(info) if args.json else format_report(info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
