"""The fidelity gate: a converted file against the FP32 Keras model on the same validation canvases.

Both see identical inputs (validation images tiled into canvases of the file's input size);
each image is scored on its own cell of the output against its target, so the figures are
per-image PSNRs and the drop is conversion loss alone.
"""
from __future__ import annotations

import numpy as np

from tflite_isp.core.metrics import image_psnr as psnr
from tflite_isp.export.canvas import crop_output


def reference_outputs(model, inputs) -> list:
    """FP32 Keras outputs for each canvas input (computed once, reused for every precision)."""
    return [model(x, training=False).numpy() for x in inputs]


def compare(run, inputs, references, canvases, render=None) -> dict:
    """Run ``run`` (a float-in, float-out callable) on each canvas input and score against the
    Keras ``references`` and each cell's target; ``render(input, output)`` turns a colourisation
    model's L and ab into the RGB that is scored (None: the output is RGB)."""
    ref_psnr, out_psnr, max_err, sum_err, n = [], [], 0.0, 0.0, 0
    for x, ref, canvas in zip(inputs, references, canvases, strict=True):
        out = run(x)
        for cell in canvas.cells:
            r, o = crop_output(ref, cell), crop_output(out, cell)
            if render is not None:
                cell_input = crop_output(x, cell, scale=1)
                r, o = render(cell_input, r), render(cell_input, o)
            ref_psnr.append(psnr(r, cell.target))
            out_psnr.append(psnr(o, cell.target))
            diff = np.abs(np.clip(o, 0, 1) - np.clip(r, 0, 1))
            max_err, sum_err, n = max(max_err, float(diff.max())), sum_err + float(diff.sum()), n + diff.size
    keras_psnr, file_psnr = float(np.mean(ref_psnr)), float(np.mean(out_psnr))
    return {
        "images": len(ref_psnr), "canvases": len(canvases),
        "keras_fp32_psnr": round(keras_psnr, 4), "psnr": round(file_psnr, 4),
        "psnr_drop": round(keras_psnr - file_psnr, 4),
        "max_abs_error": round(max_err, 6), "mean_abs_error": round(sum_err / max(n, 1), 7),
        "per_image_psnr": [round(p, 3) for p in out_psnr],
    }


__all__ = ["compare", "reference_outputs"]
