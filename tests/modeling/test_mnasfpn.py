"""The MnasFPN cell and decoder: shapes, residual rule, block pruning, serialisation."""

import json

import numpy as np
import pytest
import tensorflow as tf

from mnas_tf.arch import BlockSpec, MnasFPNSpec, load_architecture
from mnas_tf.configs import retinanet as configs
from mnas_tf.modeling.mnasfpn import MnasFPN, MnasFPNCell
from official.vision.modeling.decoders import factory as decoder_factory

MOBILENETV2_320 = {"3": [None, 40, 40, 32], "4": [None, 20, 20, 96], "5": [None, 10, 10, 320]}


def _specs(height, width, channels=(32, 96, 320)):
    return {str(l): [None, height // 2 ** l, width // 2 ** l, c]
            for l, c in zip((3, 4, 5), channels)}


@pytest.mark.parametrize("height, width, expected", [
    (320, 320, [(40, 40), (20, 20), (10, 10), (5, 5)]),
    (320, 256, [(40, 32), (20, 16), (10, 8), (5, 4)]),  # the reference test's shapes
])
def test_output_shapes(height, width, expected):
    decoder = MnasFPN(_specs(height, width), "mnasfpn")
    out = decoder({k: tf.zeros([1] + v[1:]) for k, v in _specs(height, width).items()})
    assert sorted(out) == ["3", "4", "5", "6"]
    for level, (h, w) in zip("3456", expected):
        assert out[level].shape == (1, h, w, 48)
        assert decoder.output_specs[level].as_list() == [None, h, w, 48]


def _zero_block_outputs(cell):
    """Makes every block output exactly 0, so cell outputs show only the residuals."""
    for block in cell._blocks.values():
        block._bn.gamma.assign(tf.zeros_like(block._bn.gamma))
        block._bn.beta.assign(tf.zeros_like(block._bn.beta))


def test_first_cell_only_adds_the_p6_residual_later_cells_add_all():
    decoder = MnasFPN(MOBILENETV2_320, "mnasfpn")
    first, second = decoder.get_layer("cell_0"), decoder.get_layer("cell_1")
    _zero_block_outputs(first)
    _zero_block_outputs(second)
    # cell 0 sees backbone widths 32/96/320 and C6 with 48 = C channels
    inputs = [tf.random.normal([1, 40, 40, 32]), tf.random.normal([1, 20, 20, 96]),
              tf.random.normal([1, 10, 10, 320]), tf.random.normal([1, 5, 5, 48])]
    out = first(inputs)
    for level in range(3):
        assert np.abs(out[level].numpy()).max() == 0.0
    np.testing.assert_array_equal(out[3], inputs[3])
    same_width = [tf.random.normal([1, 40 // 2 ** i, 40 // 2 ** i, 48]) for i in range(4)]
    for got, want in zip(second(same_width), same_width):
        np.testing.assert_array_equal(got, want)


def test_blocks_no_output_reaches_are_not_built():
    dead_first = MnasFPNSpec(
        (BlockSpec((0, 1), 4, 512),  # never read, superseded at level 4
         BlockSpec((0, 1), 3, 32), BlockSpec((1, 2), 4, 32), BlockSpec((2, 3), 5, 32),
         BlockSpec((2, 3), 6, 32)), channels=16, repeats=1)
    pruned = MnasFPNSpec(dead_first.blocks[1:], channels=16, repeats=1)
    specs = _specs(128, 128, (16, 16, 16))
    cell_dead = MnasFPN(specs, dead_first).get_layer("cell_0")
    assert cell_dead.built_blocks == (1, 2, 3, 4)
    assert MnasFPN(specs, dead_first).count_params() == MnasFPN(specs, pruned).count_params()


def test_decoder_serialises_and_round_trips_through_json():
    decoder = MnasFPN(MOBILENETV2_320, "mnasfpn_dm0.7")
    config = json.loads(json.dumps(decoder.get_config()))
    assert config["architecture"] == load_architecture("mnasfpn_dm0.7").to_dict()
    clone = MnasFPN.from_config(config)
    assert clone.get_config() == decoder.get_config()
    clone.set_weights(decoder.get_weights())
    x = {k: tf.random.normal([1] + v[1:]) for k, v in MOBILENETV2_320.items()}
    for level in "3456":
        np.testing.assert_allclose(clone(x)[level], decoder(x)[level], atol=1e-5)
    cell = decoder.get_layer("cell_2")
    assert MnasFPNCell.from_config(json.loads(json.dumps(cell.get_config()))).spec == cell.spec


def test_cells_have_separate_weights():
    decoder = MnasFPN(MOBILENETV2_320, "mnasfpn")
    kernels = [decoder.get_layer(f"cell_{i}").block(4)._conv.depthwise_kernel for i in (1, 2)]
    assert kernels[0] is not kernels[1]
    assert not np.allclose(kernels[0].numpy(), kernels[1].numpy())


def test_decoder_checkpoints_and_restores(tmp_path):
    decoder = MnasFPN(MOBILENETV2_320, "mnasfpn")
    path = tf.train.Checkpoint(decoder=decoder).save(str(tmp_path / "ckpt"))
    clone = MnasFPN(MOBILENETV2_320, "mnasfpn")
    tf.train.Checkpoint(decoder=clone).restore(path).assert_existing_objects_matched()
    for a, b in zip(decoder.weights, clone.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_registry_built_decoder_equals_directly_built():
    model_cfg = configs.mnasfpn_model()
    from_registry = decoder_factory.build_decoder(
        input_specs={k: tf.TensorShape(v) for k, v in MOBILENETV2_320.items()},
        model_config=model_cfg)
    direct = MnasFPN(MOBILENETV2_320, "mnasfpn", norm_momentum=0.99, norm_epsilon=0.01,
                     kernel_regularizer={"class_name": "L2", "config": {"l2": 5e-5}})
    assert isinstance(from_registry, MnasFPN)
    assert from_registry.get_config() == direct.get_config()


def test_registry_rejects_level_mismatch():
    model_cfg = configs.mnasfpn_model()
    model_cfg.max_level = 7
    with pytest.raises(ValueError, match="covers levels 3..6 but the model is configured for 3..7"):
        decoder_factory.build_decoder(
            input_specs={k: tf.TensorShape(v) for k, v in MOBILENETV2_320.items()},
            model_config=model_cfg)


def test_missing_backbone_level_is_a_clear_error():
    with pytest.raises(ValueError, match="needs backbone level 3"):
        MnasFPN({"4": [None, 20, 20, 96], "5": [None, 10, 10, 320]}, "mnasfpn")
