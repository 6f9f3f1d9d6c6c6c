"""L -> ab colourisation autoencoder (Witte & Konkol, "Colorization of Grey Images by applying a Convolutional
Autoencoder on the Jetson Nano"): four stride-2 convs down, four stride-2 transposed convs up, each with batch norm
and an activation, then a stride-1 transposed conv to (a, b) with tanh. No skips in the published net (for speed);
``skips=True`` adds each encoder feature to the decoder feature of the same size (a U-Net with Add merges).
"""
from tflite_isp.core.tf import keras

INPUT_MULTIPLE = 16  # four stride-2 stages


def _stage(x, conv, filters: int, kernel: int, activation: str, name: str, batch_norm: bool):
    x = conv(filters, kernel, strides=2, padding="same", name=name)(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.Activation(activation, name=f"{name}_{activation}")(x)


def colorize_ae(inputs, *, encoder=(75, 100, 115, 150), decoder=(115, 75, 75, 75), kernel=2, head_kernel=2,
                activation="relu", skips=False, batch_norm=True):
    """L* / l_scale (B, H, W, 1) -> (a*, b*) / ab_scale (B, H, W, 2) in [-1, 1]. ``batch_norm=False`` is the deploy
    form: each ``<stage>_bn`` folded into its conv (architectures.fuse_weights)."""
    if len(encoder) != 4 or len(decoder) != 4:
        raise ValueError(f"colorize_ae has four encoder and four decoder stages, got {len(encoder)} and "
                         f"{len(decoder)}")
    if skips and tuple(decoder[:3]) != tuple(encoder[2::-1]):
        raise ValueError(f"skips add encoder features to the decoder: decoder[:3] must be {list(encoder[2::-1])}, "
                         f"not {list(decoder[:3])}")
    x, features = inputs, []
    for i, f in enumerate(encoder):
        x = _stage(x, keras.layers.Conv2D, f, kernel, activation, f"enc{i + 1}", batch_norm)
        features.append(x)
    for i, f in enumerate(decoder):
        x = _stage(x, keras.layers.Conv2DTranspose, f, kernel, activation, f"dec{i + 1}", batch_norm)
        if skips and i < 3:
            x = keras.layers.Add(name=f"skip{i + 1}")([x, features[2 - i]])
    return keras.layers.Conv2DTranspose(2, head_kernel, padding="same", activation="tanh", name="ab")(x)
