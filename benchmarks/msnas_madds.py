"""MAdds of the paper's MSNAS top-5 architectures (Tables 7-9) vs their ResNet-FPN baseline.

`--table r18|r34|r50` compares Table 7/8/9 with ResNet18/34/50-FPN, the baseline whose
Encoder+RPN FLOPs are that table's target (Table 1: 145.45 / 182.20 / 197.33 G at
832x1280). Counts multiply-adds with `mnas_tf.cost.count_madds` on the built Keras models
(the MSNAS number is also checked against `encoder_rpn_madds`, the analytic formula the
search can use). Encoder = stem + every mixed block + laterals (MSNAS) or Model Garden's
ResNet + FPN P2-P6 with 256 filters (baseline). "+ RPN" adds Model Garden's RPNHead (one
3x3 256-filter conv, 1x1 objectness and box convs, 3 anchors) on the five group maps.

    python benchmarks/msnas_madds.py [--size 832 1280] [--table r18]
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


def head_madds_of(features_specs) -> int:
    """MAdds of Model Garden's RPNHead on levels 2..6 of `features_specs`."""
    from official.vision.modeling.heads.dense_prediction_heads import RPNHead

    from mnas_tf.cost import count_madds
    head = RPNHead(2, 6, num_anchors_per_location=3)
    shapes = {k: (1, *v.as_list()[1:]) for k, v in features_specs.items()}
    return count_madds(lambda f: head(f), shapes)


TARGETS = {"r18": (18, 145.45e9), "r34": (34, 182.20e9), "r50": (50, 197.33e9)}


def resnet_fpn(model_id, size):
    """(encoder MAdds, head MAdds) of Model Garden's ResNet + FPN P2-P6, 256 filters."""
    import tf_keras
    from official.vision.modeling.backbones import ResNet
    from official.vision.modeling.decoders import FPN

    from mnas_tf.cost import count_madds
    spec = tf_keras.layers.InputSpec(shape=[None, *size, 3])
    backbone = ResNet(model_id=model_id, input_specs=spec)
    fpn = FPN(backbone.output_specs, min_level=2, max_level=6, num_filters=256)
    encoder = lambda x: fpn(backbone(x))  # noqa: E731
    return count_madds(encoder, (1, *size, 3)), head_madds_of(fpn.output_specs)


def msnas(name, size):
    from mnas_tf.arch.msnas import load_msnas
    from mnas_tf.cost import count_madds
    from mnas_tf.experiment import load_experiment
    from mnas_tf.modeling.msnas import GROUP_KEYS, MSNASEncoder, encoder_rpn_madds
    spec = load_msnas(name)
    enc = MSNASEncoder(spec, input_specs=[None, *size, 3])
    counted = count_madds(enc, (1, *size, 3))
    head = head_madds_of({k: enc.output_specs[k] for k in GROUP_KEYS})
    analytic = encoder_rpn_madds(spec, size, load_experiment("msnas_fasterrcnn_coco").task.model)
    assert counted + head == analytic, (name, counted + head, analytic)
    return counted, head, spec


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=2, default=[832, 1280])
    parser.add_argument("--table", default="r18", choices=("r18", "r34", "r50"))
    args = parser.parse_args()
    size = tuple(args.size)
    model_id, target = TARGETS[args.table]
    enc, head = resnet_fpn(model_id, size)
    print(f"input {size[0]}x{size[1]}; GMAdds (encoder / encoder + RPN / vs paper target "
          f"{target / 1e9:.2f})")
    base = f"ResNet{model_id}-FPN (P2-P6, 256)"
    print(f"{base:28s} {enc / 1e9:8.2f} {(enc + head) / 1e9:8.2f} "
          f"{(enc + head) / target - 1:+7.1%}")
    costs = []
    for i in range(1, 6):
        name = f"msnas_{args.table}_top{i}"
        e, h, spec = msnas(name, size)
        costs.append(e + h)
        print(f"{name:28s} {e / 1e9:8.2f} {(e + h) / 1e9:8.2f} {(e + h) / target - 1:+7.1%}"
              f"  heads {list(spec.feature_strides)}")
    print(f"top-5 spread {max(costs) / min(costs) - 1:.1%}; within 1% of the target: "
          f"{sum(abs(c / target - 1) <= 0.01 for c in costs)}/5")


if __name__ == "__main__":
    main()
