"""A short fine-tune loop shared by quantization-aware training and channel pruning."""
from __future__ import annotations

from tflite_isp.core.progress import Progress
from tflite_isp.core.tf import keras, tf


def fine_tune(model, dataset, *, steps: int, lr: float, loss_fn, log=True, label="QAT fine-tune") -> list:
    """Short fine-tune (Adam, cosine decay to lr/10) on (input, target) batches; returns the per-step losses."""
    optimizer = keras.optimizers.Adam(learning_rate=keras.optimizers.schedules.CosineDecay(lr, steps, alpha=0.1))

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables),
                                      model.trainable_variables))
        return loss

    losses, bar = [], Progress(steps, label, enabled=log)
    for i, (x, y) in enumerate(dataset.take(steps), start=1):
        losses.append(float(step(x, y)))
        bar.update(i, loss=sum(losses[-20:]) / len(losses[-20:]))
    bar.close()
    return losses
