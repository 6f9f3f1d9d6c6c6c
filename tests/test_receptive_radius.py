"""receptive_field.receptive_radius per op kind: tiny real Keras nets converted to .tflite, checked against the radius
measured by perturbing one input pixel; unknown and global ops are unbounded and tiling then says approximate."""
import math

import numpy as np
import pytest

from tflite_isp.apps import enhance, exported, memory_plan
from tflite_isp.core.tf import keras, tf
from tflite_isp.export import convert
from tflite_isp.nets import recipes
from tflite_isp.nets.layers import PixelShuffle
from tflite_isp.run import flatbuffer, receptive_field, tiling

L = keras.layers
H, W = 32, 48


class SpaceToDepth(L.Layer):
    """tf.nn.space_to_depth as a real layer (SPACE_TO_DEPTH)."""

    def call(self, x):
        return tf.nn.space_to_depth(x, 2)


class MirrorPad(L.Layer):
    """tf.pad REFLECT by 2 on both spatial axes (MIRROR_PAD)."""

    def call(self, x):
        return tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT")


class Flip(L.Layer):
    """A left-right flip (REVERSE_V2): an op with no radius rule."""

    def call(self, x):
        return tf.reverse(x, axis=[2])


class AlignCornersResize(L.Layer):
    """A 2x bilinear resize with align_corners (the mapping depends on the image size)."""

    def call(self, x):
        return tf.compat.v1.image.resize_bilinear(x, (2 * x.shape[1], 2 * x.shape[2]), align_corners=True)


def net(*layers, channels=4, batch=1, size=(H, W)):
    """A Sequential-style functional model of ``layers`` on a (batch, H, W, channels) input."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((*size, channels), batch_size=batch)
    x = inputs
    for layer in layers:
        x = layer(x)
    return keras.Model(inputs, x)


def to_tflite(model, batch=1, precision="fp32", size=(H, W)):
    """The project's converter at (batch, H, W, C); int8 keeps float input and output (QUANTIZE/DEQUANTIZE)."""
    shape = (batch, *size, model.input_shape[-1])
    if precision == "fp32":
        return convert.convert(model, shape, convert.precisions()["fp32"])
    sample = [np.random.default_rng(i).random((1, *shape[1:]), np.float32) for i in range(4)]
    return convert.convert(model, shape, convert.precisions()[precision],
                           representative=convert.representative_from(sample), io_type="float32")


def measured_radius(data: bytes, phases: int = 4) -> float:
    """The farthest an output pixel that changes lies from a perturbed input pixel (output y -> input y // scale)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=data, num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    x = np.random.default_rng(0).random((1, *inp["shape"][1:]), np.float32)

    def run(v):
        it.set_tensor(inp["index"], v)
        it.invoke()
        return it.get_tensor(out["index"]).copy()

    base, worst = run(x), 0
    sy, sx = base.shape[1] / x.shape[1], base.shape[2] / x.shape[2]
    for d in range(phases):
        py, px = x.shape[1] // 2 + d, x.shape[2] // 2 + d
        bumped = x.copy()
        bumped[0, py, px] += 50.0
        ys, xs = np.nonzero((run(bumped) != base).any(axis=(0, 3)))
        worst = max(worst, np.abs(np.floor(ys / sy) - py).max(), np.abs(np.floor(xs / sx) - px).max())
    return float(worst)


def radius_and_ops(data: bytes):
    model = flatbuffer.parse(data)
    return receptive_field.receptive_radius(model), set(model.op_counts())


BOUNDED = {  # name: (layers, an op the file must hold, radius)
    "conv_5x5": (lambda: [L.Conv2D(4, 5, padding="same")], "CONV_2D", 2),
    "conv_dilated": (lambda: [L.Conv2D(4, 3, dilation_rate=2, padding="same")], "CONV_2D", 2),
    "conv_asymmetric": (lambda: [L.Conv2D(4, (1, 7), padding="same")], "CONV_2D", 3),
    "depthwise_separable": (lambda: [L.SeparableConv2D(8, 3, padding="same")], "DEPTHWISE_CONV_2D", 1),
    "stride2_conv_transposed_conv": (lambda: [L.Conv2D(8, 3, strides=2, padding="same"),
                                              L.Conv2DTranspose(4, 3, strides=2, padding="same")],
                                     "TRANSPOSE_CONV", 2),
    "max_pool_upsample_nearest": (lambda: [L.MaxPool2D(2), L.Conv2D(4, 3, padding="same"), L.UpSampling2D(2)],
                                  "RESIZE_NEAREST_NEIGHBOR", 3),
    "average_pool_3x3": (lambda: [L.AveragePooling2D(3, strides=1, padding="same")], "AVERAGE_POOL_2D", 1),
    "upsample_bilinear": (lambda: [L.Conv2D(4, 3, padding="same"), L.UpSampling2D(2, interpolation="bilinear")],
                          "RESIZE_BILINEAR", 2),
    "resize_down_bilinear": (lambda: [L.Resizing(H // 2, W // 2), L.Conv2D(4, 3, padding="same"),
                                      L.UpSampling2D(2)], "RESIZE_BILINEAR", 3),
    "space_to_depth": (lambda: [SpaceToDepth(), L.Conv2D(16, 3, padding="same"), PixelShuffle(2)],
                       "SPACE_TO_DEPTH", 3),
    "depth_to_space": (lambda: [L.Conv2D(12, 3, padding="same"), PixelShuffle(2)], "DEPTH_TO_SPACE", 1),
    "zero_pad_valid_conv": (lambda: [L.ZeroPadding2D(((1, 1), (2, 0))), L.Conv2D(4, 3)], "PAD", 2),
    "mirror_pad_valid_conv": (lambda: [MirrorPad(), L.Conv2D(4, 5)], "MIRROR_PAD", 2),
}


@pytest.mark.parametrize("name", sorted(BOUNDED))
def test_radius_per_op_matches_the_measured_one(name):
    layers, op, expected = BOUNDED[name]
    data = to_tflite(net(*layers()))
    radius, ops = radius_and_ops(data)
    assert op in ops
    assert radius == expected == measured_radius(data)


def test_dilated_conv_through_space_to_batch_is_bounded():
    """A dynamic batch leaves a dilated conv as SPACE_TO_BATCH_ND, CONV_2D, BATCH_TO_SPACE_ND: bounded, not free."""
    data = to_tflite(net(L.Conv2D(4, 3, dilation_rate=2, padding="same"), batch=None), batch=None)
    radius, ops = radius_and_ops(data)
    assert {"SPACE_TO_BATCH_ND", "BATCH_TO_SPACE_ND"} <= ops
    assert measured_radius(data) == 2 and radius == 3  # the hull over the batch phases: one pixel to spare


def pointwise_net():
    """One 3x3 conv, then activations, arithmetic with broadcast constants, a channel concat and a per-pixel dense."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((H, W, 4), batch_size=1)
    x = L.Conv2D(8, 3, padding="same")(inputs)
    a = L.LeakyReLU(0.2)(x)
    b = L.PReLU(shared_axes=[1, 2])(x)
    c = L.Activation("sigmoid")(x)
    d = L.Activation("tanh")(L.Rescaling(0.5, offset=0.1)(x))
    e = L.Multiply()([L.Subtract()([a, b]), L.Average()([c, d])])
    f = L.Concatenate(axis=-1)([L.Add()([e, L.ReLU(6.0)(x)]), L.Activation("swish")(a)])
    return keras.Model(inputs, L.Dense(4)(f))


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_pointwise_ops_add_nothing(precision):
    data = to_tflite(pointwise_net(), precision=precision)
    radius, ops = radius_and_ops(data)
    assert {"LEAKY_RELU", "LOGISTIC", "TANH", "MUL", "CONCATENATION"} <= ops
    if precision == "int8":
        assert {"QUANTIZE", "DEQUANTIZE"} <= ops
    assert radius == 1 == measured_radius(data)


UNBOUNDED = {  # name: (layers, an op the file must hold)
    "global_pool_gate": (None, "MEAN"),
    "width_concat": (None, "CONCATENATION"),
    "transpose": (lambda: [L.Conv2D(4, 3, padding="same"), L.Permute((2, 1, 3))], "TRANSPOSE"),
    "flip": (lambda: [L.Conv2D(4, 3, padding="same"), Flip()], "REVERSE_V2"),
    "crop": (lambda: [L.Cropping2D(2), L.Conv2D(4, 3, padding="same")], "STRIDED_SLICE"),
    "align_corners": (lambda: [AlignCornersResize()], "RESIZE_BILINEAR"),
}


def unbounded_net(name):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((H, W, 4), batch_size=1)
    x = L.Conv2D(4, 3, padding="same")(inputs)
    if name == "global_pool_gate":
        return keras.Model(inputs, L.Multiply()([x, L.GlobalAveragePooling2D(keepdims=True)(x)]))
    if name == "width_concat":
        return keras.Model(inputs, L.Concatenate(axis=2)([x, inputs]))
    return net(*UNBOUNDED[name][0]())


@pytest.mark.parametrize("name", sorted(UNBOUNDED))
def test_global_and_unknown_ops_are_unbounded(name):
    radius, ops = radius_and_ops(to_tflite(unbounded_net(name)))
    assert UNBOUNDED[name][1] in ops
    assert radius == math.inf


def test_unbounded_radius_plans_approximate_tiles(tmp_path):
    """enhance's memory plan with an unbounded net: exact only for the whole frame, never a crash."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((H, W, 4), batch_size=1)
    x = L.Conv2D(12, 3, padding="same")(inputs)
    x = PixelShuffle(2)(L.Multiply()([x, L.GlobalAveragePooling2D(keepdims=True)(x)]))
    data = to_tflite(keras.Model(inputs, x))
    model = flatbuffer.parse(data)
    spec = recipes.load_recipe("smallnet").input  # a Bayer model's input convention
    export = exported.Export(tmp_path, {}, spec, "isp", data, (H, W), receptive_field.input_multiple(model),
                            receptive_field.receptive_radius(model), None)
    assert export.radius == math.inf and tiling.exact_margin(export.radius, (H, W)) == H // 4
    whole = memory_plan.plan(export, (H, W), budget_mb=10_000, base_mb=0)
    frame = (4 * H, 4 * W)
    phases = memory_plan.frame_phases(frame, (4 * H, 4 * W))
    budget = memory_plan.peak_mb(0, phases, memory_plan.tile_bytes(export, (96, 96)) / memory_plan.MB) + 0.01
    tight = memory_plan.plan(export, frame, budget_mb=budget, base_mb=0)
    assert whole.exact and (tight.tile, tight.margin) == ((96, 96), 96 // 4) and not tight.exact
    assert "unbounded" in enhance.approximate_reason({"radius": export.radius, "margin": tight.margin})


def test_tiles_stitch_exactly_with_a_resize_and_pad_net():
    """Tiles overlapping by the radius equal the whole frame for a net of strides, pads and resizes."""
    from ai_edge_litert.interpreter import Interpreter

    model = net(L.Conv2D(8, 3, strides=2, padding="same"), MirrorPad(), L.Conv2D(8, 5),
                L.UpSampling2D(2, interpolation="bilinear"), L.Conv2D(12, 1), PixelShuffle(2), size=(None, None))
    data = to_tflite(model)
    parsed = flatbuffer.parse(data)
    radius, multiple = receptive_field.receptive_radius(parsed), receptive_field.input_multiple(parsed)
    assert math.isfinite(radius) and multiple == 2

    def runner(blob):
        it = Interpreter(model_content=blob, num_threads=1)
        it.allocate_tensors()

        def run(x):
            it.set_tensor(it.get_input_details()[0]["index"], np.ascontiguousarray(x, np.float32))
            it.invoke()
            return it.get_tensor(it.get_output_details()[0]["index"])
        return run

    image = np.random.default_rng(2).random((3 * H, 3 * W, 4), np.float32) * 0.1
    whole = tiling.run_tiled(runner(to_tflite(model, size=(3 * H, 3 * W))), image, (3 * H, 3 * W), multiple=multiple)
    tiled = tiling.run_tiled(runner(data), image, (H, W), margin=tiling.exact_margin(radius, (H, W)),
                             multiple=multiple)
    np.testing.assert_array_equal(tiled, whole)
