"""CSANet (team AIISP, MAI 2021: 2nd overall, best PSNR; Hsyu et al., CVPRW 2021, pp. 2486-2493).

Channel and spatial attention network, as in the TF code that matches the paper (reference-architectures
§3.2; provenance doubtful):

1. Feature extraction: a 3x3 stride-2 conv and a 3x3 conv (ReLU) take the packed RAW to half its size.
2. Double attention modules (DAM) in series, each with a skip connection:
   - 3x3 conv (ReLU) and 1x1 conv (linear) widen the features to ``dam_width`` -> u;
   - spatial attention: a depthwise dilated 5x5 conv with a sigmoid, times u;
   - channel attention: squeeze (global mean) -> 1x1 conv (ReLU) -> 1x1 conv (sigmoid), times u;
   - the two concatenated, a 1x1 conv back to ``filters``, plus the module's input.
3. A 3x3 conv (ReLU), concatenated with the extracted features.
4. Upscale: a 3x3 stride-2 transposed conv (no bias, linear) back to the packed size, a 3x3 conv (ReLU)
   and depth_to_space(2) to full sensor resolution.
5. A 3x3 conv to RGB and a sigmoid.

Every op maps to one TFLite builtin (CONV_2D, DEPTHWISE_CONV_2D with dilation, MEAN, LOGISTIC, MUL,
CONCATENATION, ADD, TRANSPOSE_CONV, DEPTH_TO_SPACE) at a fixed input size.
"""
from tflite_isp.core.tf import keras
from tflite_isp.nets.layers import PixelShuffle

L = keras.layers


def _conv(x, channels, kernel, name, activation="relu", **kwargs):
    return L.Conv2D(channels, kernel, padding="same", activation=activation, name=name, **kwargs)(x)


def double_attention_module(inputs, *, width, squeeze, kernel, dilation, name):
    """DAM: spatial and channel attention side by side on widened features, then a residual 1x1 conv."""
    u = _conv(inputs, width, 3, f"{name}_conv")
    u = _conv(u, width, 1, f"{name}_expand", activation=None)

    # Spatial attention: one depthwise dilated conv gives a per-pixel, per-channel gate.
    gate = L.DepthwiseConv2D(kernel, padding="same", dilation_rate=dilation, activation="sigmoid",
                             name=f"{name}_spatial_dw")(u)
    spatial = L.Multiply(name=f"{name}_spatial_mul")([u, gate])

    # Channel attention: squeeze to 1 x 1, excite through a bottleneck of 1x1 convs.
    s = L.GlobalAveragePooling2D(keepdims=True, name=f"{name}_squeeze")(u)
    s = _conv(s, squeeze, 1, f"{name}_channel_down")
    s = _conv(s, width, 1, f"{name}_channel_up", activation="sigmoid")
    channel = L.Multiply(name=f"{name}_channel_mul")([u, s])

    x = L.Concatenate(name=f"{name}_concat")([spatial, channel])
    x = _conv(x, inputs.shape[-1], 1, f"{name}_fuse", activation=None)
    return L.Add(name=f"{name}_skip")([x, inputs])


def csanet(inputs, *, filters=16, dams=2, dam_width=32, squeeze=8, kernel=5, dilation=2):
    """Packed RAW -> RGB at twice the packed resolution (28,511 parameters with the defaults)."""
    # 1. Feature extraction at half the packed resolution.
    x = _conv(inputs, filters, 3, "extract1", strides=2)
    features = _conv(x, filters, 3, "extract2")

    # 2. Cascaded double attention modules.
    x = features
    for i in range(1, dams + 1):
        x = double_attention_module(x, width=dam_width, squeeze=squeeze, kernel=kernel, dilation=dilation,
                                    name=f"dam{i}")

    # 3. Long skip from the extracted features.
    x = _conv(x, filters, 3, "merge")
    x = L.Concatenate(name="merge_concat")([x, features])

    # 4. Upscale: transposed conv back to the packed size, then pixel shuffle to full resolution.
    x = L.Conv2DTranspose(filters, 3, strides=2, padding="same", use_bias=False, name="upsample")(x)
    x = _conv(x, filters, 3, "refine")
    x = PixelShuffle(2, name="pixel_shuffle")(x)

    # 5. RGB head.
    return _conv(x, 3, 3, "out", activation="sigmoid")


INPUT_MULTIPLE = 2  # one stride-2 conv, undone by one stride-2 transposed conv
