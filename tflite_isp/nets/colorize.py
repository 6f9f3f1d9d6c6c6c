"""L -> ab colourisation autoencoder (Witte & Konkol, "Colorization of Grey Images by applying a Convolutional
Autoencoder on the Jetson Nano"): four stride-2 convs down, four stride-2 transposed convs up, each with batch norm
and an activation, then a stride-1 transposed conv to (a, b) with tanh. No skips in the published net (for speed);
``skips=True`` adds each encoder feature to the decoder feature of the same size (a U-Net with Add merges);
``upsample="depth_to_space"`` builds each x2 stage as a 1x1 conv and pixel shuffle instead of a transposed conv.
"""
from tflite_isp.core.tf import keras
from tflite_isp.nets.layers import PixelShuffle

INPUT_MULTIPLE = 16  # four stride-2 stages


def _stage(x, conv, filters: int, kernel: int, activation: str, name: str, batch_norm: bool, strides: int = 2):
    x = conv(filters, kernel, strides=strides, padding="same", name=name)(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.Activation(activation, name=f"{name}_{activation}")(x)


def _up(x, filters: int, kernel: int, activation: str, name: str, batch_norm: bool, upsample: str):
    """x2 up: a stride-2 transposed conv, or (``depth_to_space``) a 1x1 conv to 4x the channels then pixel shuffle,
    the same map as a 2x2 stride-2 transposed conv without TRANSPOSE_CONV: faster on XNNPACK (FP32 and INT8,
    benchmarks/results/colorize.md), and NNAPI before 1.3 refuses INT8 TRANSPOSE_CONV."""
    if upsample == "transpose":
        return _stage(x, keras.layers.Conv2DTranspose, filters, kernel, activation, name, batch_norm)
    x = _stage(x, keras.layers.Conv2D, 4 * filters, 1, activation, name, batch_norm, strides=1)
    return PixelShuffle(2, name=f"{name}_shuffle")(x)


def colorize_ae(inputs, *, encoder=(75, 100, 115, 150), decoder=(115, 75, 75, 75), kernel=2, head_kernel=2,
                activation="relu", skips=False, batch_norm=True, upsample="transpose"):
    """L* / l_scale (B, H, W, 1) -> (a*, b*) / ab_scale (B, H, W, 2) in [-1, 1]. ``batch_norm=False`` is the deploy
    form: each ``<stage>_bn`` folded into its conv (architectures.fuse_weights)."""
    if len(encoder) != 4 or len(decoder) != 4:
        raise ValueError(f"colorize_ae has four encoder and four decoder stages, got {len(encoder)} and "
                         f"{len(decoder)}")
    if upsample not in ("transpose", "depth_to_space"):
        raise ValueError(f"upsample must be 'transpose' or 'depth_to_space', not {upsample!r}")
    if upsample == "depth_to_space" and kernel != 2:
        raise ValueError("upsample = 'depth_to_space' stands for 2x2 stride-2 transposed convs: kernel must be 2")
    if skips and tuple(decoder[:3]) != tuple(encoder[2::-1]):
        raise ValueError(f"skips add encoder features to the decoder: decoder[:3] must be {list(encoder[2::-1])}, "
                         f"not {list(decoder[:3])}")
    x, features = inputs, []
    for i, f in enumerate(encoder):
        x = _stage(x, keras.layers.Conv2D, f, kernel, activation, f"enc{i + 1}", batch_norm)
        features.append(x)
    for i, f in enumerate(decoder):
        x = _up(x, f, kernel, activation, f"dec{i + 1}", batch_norm, upsample)
        if skips and i < 3:
            x = keras.layers.Add(name=f"skip{i + 1}")([x, features[2 - i]])
    head = keras.layers.Conv2DTranspose if upsample == "transpose" else keras.layers.Conv2D
    return head(2, head_kernel, padding="same", activation="tanh", name="ab")(x)
