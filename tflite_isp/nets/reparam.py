"""Structural re-parameterisation: a multi-branch convolution for training that fuses into one Conv2D to deploy.

``RepConv2D`` (training form) runs parallel k x k, 1 x 1, 3 x 3, 3 x 1 and 1 x 3 convolutions (those no larger
than k), each ``rep_scale`` times wider than the output and each also as a twin followed by batch normalisation,
concatenates them and mixes them with a 1 x 1 convolution (as SYENet's ConvRep blocks). Every step is linear at
inference, so the block equals one k x k convolution with a bias: ``fuse`` computes it, ``RepConv2D.fused_weights``
applies it to a trained layer. A model still holding RepConv2D layers must not be shipped (``unfused_layers``).
"""
from __future__ import annotations

import numpy as np

from tflite_isp.core.tf import keras, tf

#: branch kernel shapes in the reference's order, after the block's own k x k
_EXTRA_SHAPES = ((1, 1), (3, 3), (3, 1), (1, 3))


def branch_shapes(kernel_size: int) -> tuple:
    """(kh, kw) of each parallel branch of a k x k block: k x k first, then the smaller ones that fit."""
    k = int(kernel_size)
    return ((k, k), *(s for s in _EXTRA_SHAPES if s != (k, k) and max(s) <= k))


def fold_batch_norm(kernel, bias, gamma, beta, mean, variance, epsilon):
    """Conv (kernel ..., out; bias out) followed by inference-mode BN -> one conv's (kernel, bias)."""
    scale = np.asarray(gamma, np.float64) / np.sqrt(np.asarray(variance, np.float64) + epsilon)
    return kernel * scale, (bias - mean) * scale + beta


def fuse(branches, out_kernel, out_bias, kernel_size: int, output_scale: float = 1.0):
    """One block's weights -> (kernel (k, k, in, out), bias (out,)) of the equivalent 'same' convolution.

    ``branches``: (kernel (kh, kw, in, m), bias (m,), bn) per branch, bn None or (gamma, beta, mean, variance,
    epsilon); ``out_kernel`` (1, 1, sum m, out) and ``out_bias`` mix the concatenated branches. Odd kernels
    with 'same' padding are centred, so a smaller branch is its kernel zero-padded to k x k.
    """
    k = int(kernel_size)
    kernels, biases = [], []
    for kernel, bias, bn in branches:
        kernel, bias = np.asarray(kernel, np.float64), np.asarray(bias, np.float64)
        if bn is not None:
            kernel, bias = fold_batch_norm(kernel, bias, *bn)
        kh, kw = kernel.shape[:2]
        if kh % 2 == 0 or kw % 2 == 0 or kh > k or kw > k:
            raise ValueError(f"branch kernel {kh}x{kw} does not centre in {k}x{k}")
        pad_h, pad_w = (k - kh) // 2, (k - kw) // 2
        kernels.append(np.pad(kernel, ((pad_h, pad_h), (pad_w, pad_w), (0, 0), (0, 0))))
        biases.append(bias)
    mix = np.asarray(out_kernel, np.float64)[0, 0]  # (sum m, out)
    kernel = np.tensordot(np.concatenate(kernels, axis=-1), mix, axes=([3], [0]))
    bias = np.concatenate(biases) @ mix + np.asarray(out_bias, np.float64)
    return (output_scale * kernel).astype(np.float32), (output_scale * bias).astype(np.float32)


@keras.utils.register_keras_serializable(package="tflite_isp")
class RepConv2D(keras.layers.Layer):
    """Training form of a k x k 'same' convolution (stride 1): parallel branches, optional BN twins, 1 x 1 mix.

    ``output_scale`` multiplies the result (a constant, folded into the fused weights). Deploy form: a Conv2D
    of the same name with ``fused_weights()``.
    """

    def __init__(self, filters: int, kernel_size: int, rep_scale: int = 4, batch_norm: bool = True,
                 output_scale: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = int(filters), int(kernel_size)
        self.rep_scale, self.batch_norm, self.output_scale = int(rep_scale), bool(batch_norm), float(output_scale)
        self.shapes = branch_shapes(self.kernel_size)
        # Keras momentum 0.9 and epsilon 1e-5 are PyTorch's BatchNorm2d defaults (momentum 0.1 there)
        self.norms = [keras.layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"bn{kh}x{kw}")
                      for kh, kw in self.shapes] if self.batch_norm else []

    def _tags(self):
        twins = ("", "_bn") if self.batch_norm else ("",)
        return [(f"{kh}x{kw}{twin}", (kh, kw)) for twin in twins for kh, kw in self.shapes]

    def build(self, input_shape):
        cin, wide = int(input_shape[-1]), self.filters * self.rep_scale
        self.branch_kernels, self.branch_biases = [], []
        for tag, (kh, kw) in self._tags():
            self.branch_kernels.append(self.add_weight(f"kernel{tag}", (kh, kw, cin, wide),
                                                       initializer="glorot_uniform"))
            self.branch_biases.append(self.add_weight(f"bias{tag}", (wide,), initializer="zeros"))
        self.out_kernel = self.add_weight("kernel_mix", (1, 1, wide * len(self.branch_kernels), self.filters),
                                          initializer="glorot_uniform")
        self.out_bias = self.add_weight("bias_mix", (self.filters,), initializer="zeros")
        for norm in self.norms:
            norm.build(tf.TensorShape([*input_shape[:-1], wide]))
        super().build(input_shape)

    def call(self, inputs, training=None):
        outputs, plain = [], len(self.shapes)
        for i, (kernel, bias) in enumerate(zip(self.branch_kernels, self.branch_biases)):
            y = tf.nn.bias_add(tf.nn.conv2d(inputs, kernel, 1, "SAME"), bias)
            outputs.append(self.norms[i - plain](y, training=training) if i >= plain else y)
        y = tf.nn.bias_add(tf.nn.conv2d(tf.concat(outputs, -1), self.out_kernel, 1, "VALID"), self.out_bias)
        return y * self.output_scale if self.output_scale != 1.0 else y

    def fused_weights(self) -> list:
        """[kernel (k, k, in, filters), bias (filters,)] of the one Conv2D this block equals at inference."""
        plain = len(self.shapes)
        branches = []
        for i, (kernel, bias) in enumerate(zip(self.branch_kernels, self.branch_biases)):
            bn = None
            if i >= plain:
                norm = self.norms[i - plain]
                bn = (norm.gamma.numpy(), norm.beta.numpy(), norm.moving_mean.numpy(), norm.moving_variance.numpy(),
                      norm.epsilon)
            branches.append((kernel.numpy(), bias.numpy(), bn))
        return list(fuse(branches, self.out_kernel.numpy(), self.out_bias.numpy(), self.kernel_size,
                         self.output_scale))

    def compute_output_shape(self, input_shape):
        return tf.TensorShape([*tf.TensorShape(input_shape).as_list()[:-1], self.filters])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "rep_scale": self.rep_scale, "batch_norm": self.batch_norm, "output_scale": self.output_scale}


def rep_conv(x, filters: int, kernel_size: int, *, name: str, reparam: bool, rep_scale: int = 4,
             output_scale: float = 1.0):
    """A k x k 'same' convolution: RepConv2D to train (``reparam``), else the plain Conv2D it fuses into."""
    if reparam:
        return RepConv2D(filters, kernel_size, rep_scale=rep_scale, output_scale=output_scale, name=name)(x)
    return keras.layers.Conv2D(filters, kernel_size, padding="same", name=name)(x)


def unfused_layers(model) -> list:
    """Names of the layers (nested models included) that are still in re-parameterisation training form."""
    names = []
    for layer in model.layers:
        if isinstance(layer, RepConv2D):
            names.append(layer.name)
        elif isinstance(layer, keras.Model):
            names.extend(unfused_layers(layer))
    return names


def deploy_weights(layer):
    """The weights ``layer`` contributes to the deploy form: fused if it is a training-form block."""
    return layer.fused_weights() if isinstance(layer, RepConv2D) else layer.get_weights()


CUSTOM_OBJECTS = {"RepConv2D": RepConv2D}
