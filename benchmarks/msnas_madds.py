"""MAdds of the paper's MSNAS-R18 architectures (Table 7) vs ResNet18-FPN, same input.

Counts multiply-adds with `mnas_tf.cost.count_madds` on the built Keras models (the
MSNAS number is also checked against the analytic formula the search uses). Encoder =
stem + mixed blocks + laterals (MSNAS) or Model Garden's ResNet-18 + FPN P2-P6 with 256
filters (baseline). "+ RPN" adds Model Garden's RPNHead (one 3x3 256-filter conv, 1x1 objectness
and box convs, 3 anchors) on the five maps the heads read: the paper counts encoder + RPN
(its Table 1: R18-FPN 145.45 GFLOPs at 832x1280).

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


def resnet18_fpn(size):
    """(encoder MAdds, head MAdds) of Model Garden's ResNet-18 + FPN P2-P6, 256 filters."""
    import tf_keras
    from official.vision.modeling.backbones import ResNet
    from official.vision.modeling.decoders import FPN

    from mnas_tf.cost import count_madds
    spec = tf_keras.layers.InputSpec(shape=[None, *size, 3])
    backbone = ResNet(model_id=18, input_specs=spec)
    fpn = FPN(backbone.output_specs, min_level=2, max_level=6, num_filters=256)
    encoder = lambda x: fpn(backbone(x))  # noqa: E731
    return count_madds(encoder, (1, *size, 3)), head_madds_of(fpn.output_specs)


def msnas(name, size):
    from mnas_tf.arch.msnas import load_msnas
    from mnas_tf.cost import count_madds
    from mnas_tf.modeling.msnas import MSNASEncoder, encoder_madds
    spec = load_msnas(name)
    enc = MSNASEncoder(spec, input_specs=[None, *size, 3])
    counted = count_madds(enc, (1, *size, 3))
    assert counted == encoder_madds(spec, size), (name, counted, encoder_madds(spec, size))
    return counted, head_madds_of(enc.output_specs), spec


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=2, default=[832, 1280])
    parser.add_argument("--table", default="r18", choices=("r18", "r34", "r50"))
    args = parser.parse_args()
    size = tuple(args.size)
    enc, head = resnet18_fpn(size)
    print(f"input {size[0]}x{size[1]}; GMAdds (encoder / encoder + RPN)")
    print(f"{'ResNet18-FPN (P2-P6, 256)':28s} {enc / 1e9:8.2f} {(enc + head) / 1e9:8.2f}")
    for i in range(1, 6):
        name = f"msnas_{args.table}_top{i}"
        e, h, spec = msnas(name, size)
        print(f"{name:28s} {e / 1e9:8.2f} {(e + h) / 1e9:8.2f}   x{(e + h) / (enc + head):.2f}"
              f"  heads {list(spec.feature_strides)}")


if __name__ == "__main__":
    main()
