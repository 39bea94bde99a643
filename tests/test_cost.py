"""mnas_tf.cost against hand-computed MAdds / parameter counts.

Every expected number below is written out as arithmetic from the layer
shapes, never produced by the code under test.
"""

import pytest
import tensorflow as tf
import tf_keras as K

from mnas_tf.cost import count_madds, count_params, op_breakdown

L = K.layers

# --- the reference model on a (1, 16, 16, 3) input ----------------------------
# stem   Conv2D(8, 3, s2, same, no bias)   16x16x3 -> 8x8x8
STEM_MADDS = 8 * 8 * 8 * (3 * 3 * 3)
STEM_PARAMS = 3 * 3 * 3 * 8
BN_PARAMS = 8 + 8  # gamma + beta (moving mean / variance are not trainable)
# DepthwiseConv2D(3, same)                 8x8x8 -> 8x8x8
DW_MADDS = 8 * 8 * 8 * (3 * 3)
DW_PARAMS = 3 * 3 * 8 + 8
# SeparableConv2D(16, 5, same)             8x8x8 -> 8x8x16
SEP_DW_MADDS = 8 * 8 * 8 * (5 * 5)
SEP_PW_MADDS = 8 * 8 * 16 * 8
SEP_PARAMS = 5 * 5 * 8 + 8 * 16 + 16
# MaxPool2D                                8x8x16 -> 4x4x16
# shared Conv2D(4, 1) on 8x8x16 and on 4x4x16: two calls, one set of weights
SHARED_MADDS = 8 * 8 * 4 * 16 + 4 * 4 * 4 * 16
SHARED_PARAMS = 16 * 4 + 4
# UpSampling2D(nearest) 4x4x4 -> 8x8x4, Add, GlobalAveragePooling2D -> 4
# Dense(10)
DENSE_MADDS = 4 * 10
DENSE_PARAMS = 4 * 10 + 10

REF_MADDS = STEM_MADDS + DW_MADDS + SEP_DW_MADDS + SEP_PW_MADDS + SHARED_MADDS + DENSE_MADDS
REF_PARAMS = STEM_PARAMS + BN_PARAMS + DW_PARAMS + SEP_PARAMS + SHARED_PARAMS + DENSE_PARAMS


def reference_model(spatial=(16, 16)):
    inp = K.Input((*spatial, 3))
    x = L.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(inp)
    x = L.BatchNormalization()(x)
    x = L.ReLU()(x)
    x = L.DepthwiseConv2D(3, padding="same")(x)
    big = L.SeparableConv2D(16, 5, padding="same")(x)
    small = L.MaxPool2D()(big)
    shared = L.Conv2D(4, 1)
    y = L.Add()([shared(big), L.UpSampling2D(interpolation="nearest")(shared(small))])
    y = L.GlobalAveragePooling2D()(y)
    out = L.Dense(10)(y)
    return K.Model(inp, out)


@pytest.fixture(scope="module")
def ref():
    return reference_model()


def test_reference_numbers_are_self_consistent():
    assert REF_MADDS == 13824 + 4608 + 12800 + 8192 + 5120 + 40 == 44584
    assert REF_PARAMS == 216 + 16 + 80 + 344 + 68 + 50 == 774


def test_reference_madds(ref):
    assert count_madds(ref, (1, 16, 16, 3)) == REF_MADDS


def test_reference_params(ref):
    assert count_params(ref) == REF_PARAMS
    # Keras' own count includes the 16 BN moving statistics.
    assert ref.count_params() == REF_PARAMS + 16


def test_breakdown_by_op_type(ref):
    # SeparableConv2D traces as DepthwiseConv2dNative + 1x1 Conv2D; Dense as MatMul.
    assert op_breakdown(ref, (1, 16, 16, 3)) == {
        "Conv2D": STEM_MADDS + SEP_PW_MADDS + SHARED_MADDS,
        "DepthwiseConv2dNative": DW_MADDS + SEP_DW_MADDS,
        "MatMul": DENSE_MADDS,
    }


def test_breakdown_by_op_counts_shared_layer_per_call(ref):
    per_op = op_breakdown(ref, (1, 16, 16, 3), by="op")
    assert sum(per_op.values()) == REF_MADDS
    shared = sorted(v for v in per_op.values() if v in (8 * 8 * 4 * 16, 4 * 4 * 4 * 16))
    assert shared == [4 * 4 * 4 * 16, 8 * 8 * 4 * 16]


def test_batch_is_normalised_to_one_image(ref):
    assert count_madds(ref, (4, 16, 16, 3)) == REF_MADDS
    assert count_madds(ref, (None, 16, 16, 3)) == REF_MADDS
    assert count_madds(ref, tf.TensorShape([1, 16, 16, 3])) == REF_MADDS


def test_nested_model(ref):
    inp = K.Input((16, 16, 3))
    out = L.Dense(3)(ref(inp))
    outer = K.Model(inp, out)
    assert count_madds(outer, (1, 16, 16, 3)) == REF_MADDS + 10 * 3
    assert count_params(outer) == REF_PARAMS + 10 * 3 + 3


def test_model_reused_twice_counts_madds_twice_params_once(ref):
    a, b = K.Input((16, 16, 3)), K.Input((16, 16, 3))
    outer = K.Model([a, b], L.Add()([ref(a), ref(b)]))
    assert count_madds(outer, [(1, 16, 16, 3), (1, 16, 16, 3)]) == 2 * REF_MADDS
    assert count_params(outer) == REF_PARAMS


class _Decoder(L.Layer):
    """Takes a dict of feature maps like an FPN decoder."""

    def __init__(self):
        super().__init__()
        self.c3 = L.Conv2D(2, 1)
        self.c4 = L.Conv2D(3, 3, padding="same", use_bias=False)

    def call(self, feats, training=None):
        return {"3": self.c3(feats["3"]), "4": self.c4(feats["4"])}


def test_dict_inputs():
    dec = _Decoder()
    shapes = {"3": (1, 8, 8, 4), "4": (1, 4, 4, 5)}
    # Unbuilt: variables are created during the trace.
    assert count_madds(dec, shapes) == 8 * 8 * 2 * 4 + 4 * 4 * 3 * (3 * 3 * 5)
    assert count_params(dec) == (4 * 2 + 2) + (3 * 3 * 5 * 3)


def test_functional_dict_inputs():
    ins = {"a": K.Input((6, 6, 2), name="a"), "b": K.Input((10,), name="b")}
    out = L.Dense(7)(L.Flatten()(L.Conv2D(3, 3)(ins["a"]))) + L.Dense(7, use_bias=False)(ins["b"])
    model = K.Model(ins, out)
    expected = 4 * 4 * 3 * (3 * 3 * 2) + (4 * 4 * 3) * 7 + 10 * 7
    assert count_madds(model, {"a": (1, 6, 6, 2), "b": (1, 10)}) == expected


def test_conv_transpose_and_grouped_conv():
    inp = K.Input((5, 5, 8))
    x = L.Conv2D(6, 3, groups=2, padding="same")(inp)  # 5x5x6, kernel 3x3x4x6
    x = L.Conv2DTranspose(4, 3, strides=2, padding="same")(x)  # 5x5x6 -> 10x10x4
    model = K.Model(inp, x)
    expected = 5 * 5 * 6 * (3 * 3 * 4) + 5 * 5 * 6 * (3 * 3 * 4)
    assert count_madds(model, (1, 5, 5, 8)) == expected


class _FunctionCallingLayer(L.Layer):
    """Runs a conv inside a nested tf.function, a while loop and a tf.cond."""

    def build(self, input_shape):
        self.k = self.add_weight("k", (1, 1, 3, 5))

    def call(self, x):
        @tf.function
        def conv(t):
            return tf.nn.conv2d(t, self.k, 1, "SAME")  # 4*4*5*3 = 240

        y = conv(x)
        _, y2 = tf.while_loop(
            lambda i, a: i < 3,
            lambda i, a: (i + 1, a + tf.linalg.matmul(a, a)),  # 5x5x5 = 125
            [tf.constant(0), tf.ones((5, 5))],
        )
        z = tf.cond(
            tf.reduce_sum(x) > 0,
            lambda: tf.reduce_sum(conv(x)),  # 240
            lambda: tf.reduce_sum(x),  # 0
        )
        return tf.reduce_sum(y) + tf.reduce_sum(y2) + z


def test_nested_functions_and_control_flow():
    layer = _FunctionCallingLayer()
    breakdown = op_breakdown(layer, (1, 4, 4, 3))
    # call + most expensive cond branch; the while body is costed once.
    assert breakdown == {"Conv2D": 2 * 4 * 4 * 5 * 3, "MatMul": 5 * 5 * 5}


class _RelaxedFunctionLayer(L.Layer):
    """Nested tf.functions traced for unknown shapes, reading variables."""

    def build(self, input_shape):
        self.k = self.add_weight("k", (3, 3, 3, 5))
        self.w = self.add_weight("w", (5, 7))

        @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3))])
        def conv_then_dense(t):
            y = tf.nn.conv2d(t, self.k, 1, "SAME")

            @tf.function
            def dense(u):
                return tf.linalg.matmul(tf.reshape(u, (-1, 5)), self.w)

            return dense(y)

        self.fn = conv_then_dense

    def call(self, x):
        return self.fn(x)


def test_nested_function_traced_for_unknown_shapes_uses_call_site_shapes():
    # The function bodies only know (None, None, None, 3); the call site knows
    # (1, 4, 4, 3), which also fixes the matmul's rows to 4 * 4.
    expected = 4 * 4 * 5 * (3 * 3 * 3) + (4 * 4) * 7 * 5
    assert count_madds(_RelaxedFunctionLayer(), (1, 4, 4, 3)) == expected


def test_unknown_dimension_raises_naming_the_op():
    model = reference_model(spatial=(None, None))
    with pytest.raises(ValueError, match=r"conv2d.*\(Conv2D\) has an unknown dimension"):
        count_madds(model, (1, None, 16, 3))
    # Fully specified at trace time it works.
    assert count_madds(model, (1, 16, 16, 3)) == REF_MADDS


def test_bad_input_shapes():
    with pytest.raises(ValueError, match="input_shapes"):
        count_madds(reference_model(), "1x16x16x3")
    with pytest.raises(ValueError, match="batch"):
        count_madds(reference_model(), {"a": (1, 4), "b": (2, 4)})


def test_count_params_dedupes_shared_variables():
    shared = L.Dense(4)
    a = K.Input((3,))
    model = K.Model(a, shared(shared(L.Dense(3)(a))[:, :3]))
    assert count_params(model) == (3 * 3 + 3) + (3 * 4 + 4)
    assert count_params(list(shared.trainable_weights) * 2) == 3 * 4 + 4
