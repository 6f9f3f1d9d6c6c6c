"""One trained model to verified ``.tflite`` files: convert per precision, check delegates, measure fidelity."""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tflite_isp.core.errors import UserError, fail
from tflite_isp.data import layouts
from tflite_isp.export import canvas, compat, convert, fidelity, quant_debug
from tflite_isp.export.config import ExportConfig, data_source, load_source, uniform_levels
from tflite_isp.export.manifest import file_record, publish, sha256, tool_versions
from tflite_isp.run.litert import Runner
from tflite_isp.run.records import COLOUR_FRAME, full_hd_packed


class Exporter:
    """Everything shared by the precisions of one export call: model, data, canvases, references."""

    def __init__(self, cfg: ExportConfig):
        from tflite_isp.nets import architectures  # lazy: TensorFlow loads only when this runs

        self.cfg = cfg
        self.recipe, loaded, self.run_dir = load_source(cfg.source, cfg.recipe)
        self.multiple = architectures.input_multiple(self.recipe.model)
        self.channels = self.recipe.input.channels
        # --size when none is given: the size the runtime is timed at (run.records): a Full HD RAW packed (544 x 960,
        # 272 x 480 for Quad Bayer), the published 256 x 256 for colourisation
        cfg.size = cfg.size or (COLOUR_FRAME if self.channels == 1 else full_hd_packed(self.channels))
        h, w = cfg.size
        if h % self.multiple or w % self.multiple:
            raise UserError(f"--size {h}x{w}: {self.recipe.name} needs input sizes divisible by {self.multiple}")
        self.layout, self.root = data_source(cfg, self.recipe, self.run_dir)
        spec = self.recipe.input
        self.train_split = layouts.open_split(self.layout, self.root, "train", on_bad=cfg.bad_files)
        self.val_split = layouts.open_split(self.layout, self.root, layouts.validation_split(self.layout, self.root),
                                             on_bad=cfg.bad_files)
        if self.train_split.task != self.recipe.task:
            raise fail(self.root, f"{self.layout} is {self.train_split.task} data but {self.recipe.name} is a "
                                  f"{self.recipe.task} model")
        if self.recipe.task != "colorize":
            layouts.check_cfa(cfg.source, spec, self.train_split)
        self.levels = None
        if cfg.raw_input:
            if self.recipe.task == "colorize":
                raise UserError("--raw_input is for ISP models; a colourisation model takes L, not sensor values")
            if self.recipe.task == "lowlight":
                raise UserError("--raw_input is for ISP models; a low-light model's input is also amplified by "
                                "the exposure ratio, which the graph does not take")
            self.levels = uniform_levels(self.train_split, spec, self.root)
        self.model = loaded
        deploy = architectures.deploy_form(self.recipe.model)  # a re-parameterised model ships fused
        if self.levels or deploy != self.recipe.model:
            inner = architectures.build(deploy, normalise=self.levels, name=self.recipe.name, cfa=spec.cfa)
            self.model = architectures.fuse_weights(loaded, inner)
        convert.refuse_unfused(self.model, cfg.source)
        self.log(f"{self.recipe.name}: calibration from {self.layout}:{self.root} train, fidelity on "
                 f"{self.val_split.name}")
        self.calibration = self._canvases(self.train_split, cfg.calibration_images, seed=cfg.seed)
        if not self.calibration:
            raise fail(self.root, "the train split yields no images for calibration")
        self.fidelity = self._canvases(self.val_split, cfg.fidelity_images) if cfg.fidelity_images else []
        self.calibration_inputs = [self.model_input(c.input) for c in self.calibration]
        self.fidelity_inputs = [self.model_input(c.input) for c in self.fidelity]
        self.references = None

    def log(self, message: str) -> None:
        if self.cfg.log:
            print(message, file=sys.stderr, flush=True)

    def _canvases(self, split, limit: int, seed=None):

        samples = canvas.load_samples(split, self.recipe.input, multiple=self.multiple, limit=limit, seed=seed)
        return canvas.tile(samples, self.cfg.size, self.multiple)

    def model_input(self, x):
        """Normalised canvas -> what the exported file takes (sensor values with --raw_input)."""
        if not self.levels:
            return x

        black = np.asarray(self.levels["black"], np.float32)
        return (x * (self.levels["white"] - black) + black).astype(np.float32)

    def reference_outputs(self):

        if self.references is None:
            self.references = fidelity.reference_outputs(self.model, self.fidelity_inputs)
        return self.references

    # -- conversion

    def qat_model(self):
        from tflite_isp.data import pipeline  # lazy: TensorFlow loads only when this runs
        from tflite_isp.export import qat
        from tflite_isp.train import losses  # lazy: TensorFlow loads only when this runs

        recipe, cfg = self.recipe, self.cfg
        q = qat.quantize(self.model, source=cfg.source)
        qat.calibrate_ranges(q, self.model, self.calibration_inputs[:4])
        augment, batch = bool(recipe.train.get("augment", True)), int(recipe.train.get("batch", 8))
        smallest = min(min(p.shape) for p in self.train_split.pairs) - (recipe.input.scale if augment else 0)
        step = recipe.input.scale * self.multiple
        patch = min(int(recipe.train.get("patch", 256)), smallest // step * step)  # the recipe's, if data allow
        data = pipeline.training_dataset(self.train_split, recipe.input, patch=patch, batch=batch, augment=augment,
                                         seed=cfg.seed)
        if self.levels:

            from tflite_isp.core.tf import tf  # lazy: TensorFlow loads only when this runs

            black = tf.constant(np.asarray(self.levels["black"], np.float32))
            data = data.map(lambda x, y: (x * (self.levels["white"] - black) + black, y))
        if cfg.qat_target == "teacher":
            data = data.map(lambda x, y: (x, self.model(x, training=False)))
        loss_name = recipe.train.get("loss", "l1")
        terms = [(n, w) for n, w in losses.parse_loss(loss_name) if n != "vgg"] or [("l1", 1.0)]
        loss_fn = losses.make_loss(terms, patch=patch)
        lr = cfg.qat_lr or float(recipe.train.get("lr_min") or 0.01 * float(recipe.train.get("lr", 1e-3)))
        self.log(f"QAT: {cfg.qat_steps} steps toward the {cfg.qat_target} outputs, lr {lr:g}, loss {terms}")
        history = qat.fine_tune(q, data, steps=cfg.qat_steps, lr=lr, loss_fn=loss_fn, log=cfg.log)
        return q, {"steps": cfg.qat_steps, "lr": lr, "loss": terms, "target": cfg.qat_target, "patch": patch,
                   "first_loss": history[0] if history else None,
                   "last_loss": sum(history[-20:]) / max(len(history[-20:]), 1)}

    def convert(self, model, precision, shape):

        return convert.convert(model, shape, precision, representative=convert.representative_from(
            self.calibration_inputs), io_type=self._io_type(precision), allow_float_ops=self.cfg.allow_float_ops,
            per_channel=self.cfg.per_channel)

    def _io_type(self, precision):
        io = self.cfg.io_type
        if io and not precision.representative:
            return None  # float models ignore --io_type (checked in validate())
        return io

    def export(self, precision) -> tuple:
        """Convert, check and measure one precision: (manifest, {file name: bytes}) for its folder."""

        cfg, start = self.cfg, time.perf_counter()
        model, qat_info = (self.qat_model() if precision.qat else (self.model, None))
        h, w = cfg.size
        self.log(f"{precision.name}: converting at 1x{h}x{w}x{self.channels}")
        data = self.convert(model, precision, (1, h, w, self.channels))
        convert_s = time.perf_counter() - start
        record, info = file_record(data, "model.tflite", cfg.targets)
        files = {"model.tflite": data}
        manifest = self._manifest_head(precision, record, convert_s)
        if qat_info:
            manifest["qat"] = qat_info

        debug = None
        if cfg.debug_quant and precision.representative and not precision.qat:
            debug, selective = self.debug_quant(model, precision, data)
            manifest["debug_quant"] = debug
            if selective is not None:
                data = files["model.tflite"] = selective
                record, info = file_record(data, "model.tflite", cfg.targets)
                manifest["file"] = record

        if cfg.model_none and debug and debug.get("selective"):
            manifest["model_none"] = {"skipped": "selective quantisation (--keep_float) applies to model.tflite only"}
        elif cfg.model_none:
            try:
                none_data = self.convert(model, precision, (1, None, None, self.channels))
                files["model_none.tflite"] = none_data
                manifest["model_none"] = file_record(none_data, "model_none.tflite", cfg.targets)[0]
            except UserError as err:
                manifest["model_none"] = {"error": str(err)}
                self.log(f"{precision.name}: no model_none.tflite ({err})")

        reports = compat.check_all(info, list(cfg.targets) or None)
        manifest["compatibility"] = {t: {"basis": r.basis, "table": r.table,
                                         "fully_delegable": r.fully_delegable, "summary": r.summary(),
                                         "cpu_fallback": sorted({v.op for v in r.verdicts if not v.delegable})}
                                     for t, r in reports.items()}
        if self.fidelity:

            runner = Runner(data, threads=cfg.threads, name=f"{precision.name}/model.tflite")
            manifest["fidelity"] = fidelity.compare(runner, self.fidelity_inputs, self.reference_outputs(),
                                                    self.fidelity, self.recipe.input.render)
            manifest["fidelity"]["data"] = f"{self.layout}:{self.root} {self.val_split.name}"
        if debug and debug.get("selective"):
            manifest["debug_quant"]["selective"]["fidelity_after"] = manifest.get("fidelity")
        required = {t: compat.check(info, t) for t in cfg.require_delegable}
        manifest["gates"] = self.gates(precision.name, manifest, required)
        return manifest, files

    def debug_quant(self, model, precision, full_data):
        """Per-layer error table; with --keep_float also the selective file and the fully quantised
        file's fidelity (``full_data``) for comparison."""

        cfg = self.cfg
        inputs = self.fidelity_inputs[:2] or self.calibration_inputs[:2]

        def converter():
            return convert.converter_for(model, (1, *cfg.size, self.channels), precision,
                                         representative=convert.representative_from(self.calibration_inputs),
                                         io_type=self._io_type(precision), allow_float_ops=True,
                                         per_channel=cfg.per_channel)

        self.log(f"{precision.name}: per-layer quantisation error on {len(inputs)} canvas(es)")
        rows = quant_debug.layer_table(converter, inputs)
        print(quant_debug.format_table(rows), file=sys.stderr)
        report = {"metric": "rmse/scale per quantised tensor (0.29 = rounding noise)", "layers": rows[:50],
                  "flagged": sum(r["rmse_over_scale"] > quant_debug.FLAG_RATIO for r in rows)}
        selective = None
        if cfg.keep_float:
            keep = [r["tensor"] for r in rows[:cfg.keep_float]]
            selective = quant_debug.selective_model(converter, self.calibration_inputs[:4], keep)
            report["selective"] = {"kept_float": keep}
            if self.fidelity:
                report["selective"]["fidelity_before"] = fidelity.compare(
                    Runner(full_data, threads=cfg.threads), self.fidelity_inputs, self.reference_outputs(),
                    self.fidelity, self.recipe.input.render)
        return report, selective

    def gates(self, name, manifest, required) -> dict:
        cfg, failures = self.cfg, []
        fid = manifest.get("fidelity")
        if cfg.max_psnr_drop is not None and fid and fid["psnr_drop"] > cfg.max_psnr_drop:
            failures.append(f"PSNR drop {fid['psnr_drop']:.3f} dB > --max_psnr_drop {cfg.max_psnr_drop:g}")
        for target, report in required.items():
            if not report.fully_delegable:
                failures.append(f"not fully delegable on {target}: {report.summary()}")
        for f in failures:
            cfg.gate_failures.append(f"{name}: {f}")
        return {"max_psnr_drop": cfg.max_psnr_drop, "require_delegable": list(cfg.require_delegable),
                "passed": not failures, "failures": failures}

    def conventions(self) -> dict:
        """The IO convention a consumer of the file needs (the recipe's, or the in-graph levels)."""
        spec = self.recipe.input
        if self.recipe.task == "colorize":
            return {"input": {"layout": "L (1, H, W, 1) in NHWC", "values": "CIE L* / l_scale (sRGB, D65)",
                              "l_scale": spec.l_scale, "task": "colorize"},
                    "output": {"layout": "ab (1, H, W, 2) in NHWC", "values": "(a*, b*) / ab_scale",
                               "ab_scale": spec.ab_scale, "range": [-1.0, 1.0]}}
        values = ("sensor values (normalised in the graph)" if self.levels else
                  "normalised (x - black) / (white - black)"
                  + (", times the exposure ratio" if self.recipe.task == "lowlight" else "")
                  + (", clipped to [0, 1]" if spec.clip else ""))
        return {"input": {"layout": "packed RAW (1, H, W, 4) in NHWC", "order": list(spec.order), "values": values,
                          "black": spec.black, "white": spec.white, "clip": spec.clip,
                          "raw_input": bool(self.levels), "levels": self.levels, "task": self.recipe.task},
                "output": {"layout": "RGB (1, 2H, 2W, 3) in NHWC", "range": [0.0, 1.0]}}

    def _manifest_head(self, precision, record, convert_s) -> dict:
        cfg = self.cfg
        return {
            "format": "tflite_isp.export/1",
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "source": {"path": str(cfg.source), "run_dir": str(self.run_dir) if self.run_dir else None},
            "recipe": self.recipe.to_dict(),
            "precision": {"name": precision.name, "summary": precision.summary,
                          "io_type": self._io_type(precision) or ("float32" if not precision.representative
                                                                  else precision.io_types[0]),
                          "per_channel": cfg.per_channel, "allow_float_ops": cfg.allow_float_ops},
            **self.conventions(),
            "file": record,
            "conversion_seconds": round(convert_s, 2),
            "calibration": {"images": sum(len(c.cells) for c in self.calibration), "canvases": len(self.calibration),
                            "data": f"{self.layout}:{self.root} {self.train_split.name}"}
            if precision.representative else None,
            "tools": tool_versions(),
        }



def export_onnx(exporter: Exporter, folder: Path) -> dict:
    """FP32 ONNX (tf2onnx) at the export size, parity-checked with onnxruntime; its own folder."""

    from tflite_isp.export import onnx_export  # lazy: TensorFlow loads only when this runs

    cfg = exporter.cfg
    h, w = cfg.size
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.onnx"
        start = time.perf_counter()
        info = onnx_export.to_onnx(exporter.model, path, height=h, width=w, opset=cfg.opset)
        inputs = np.concatenate((exporter.fidelity_inputs or exporter.calibration_inputs)[:2])
        data = path.read_bytes()
        manifest = {"format": "tflite_isp.export/1", "recipe": exporter.recipe.to_dict(),
                    "precision": {"name": "onnx", "summary": "float32 ONNX through tf2onnx"},
                    **exporter.conventions(), "onnx": info, "sha256": sha256(data),
                    "conversion_seconds": round(time.perf_counter() - start, 2),
                    "parity": onnx_export.parity(path, exporter.model, inputs), "tools": tool_versions()}
    publish(folder, {"model.onnx": data}, manifest)
    return manifest


def validate(cfg: ExportConfig, precisions: dict) -> None:
    """Flag combinations that cannot work, before any slow step."""

    for t in (*cfg.targets, *cfg.require_delegable):
        compat.parse_target(t)
    if cfg.io_type:
        integer = [p for p in cfg.precisions if precisions[p].representative]
        if not integer:
            raise UserError(f"--io_type {cfg.io_type} needs an integer precision (--int8, --int8_qat, --int16x8)")
        for p in integer:
            if cfg.io_type not in precisions[p].io_types:
                raise UserError(f"--io_type {cfg.io_type} does not fit --{p} (valid: "
                                f"{', '.join(precisions[p].io_types)})")
    if cfg.raw_input and cfg.io_type in ("int8", "uint8"):
        raise UserError("--raw_input takes sensor values, which do not fit 8-bit IO: use --io_type float32")
    if cfg.keep_float and not cfg.debug_quant:
        raise UserError("--keep_float needs --debug_quant")
    if cfg.keep_float < 0 or cfg.calibration_images <= 0 or cfg.fidelity_images < 0 or cfg.qat_steps <= 0:
        raise UserError("--keep_float, --fidelity_images must be >= 0; --calibration_images, --qat_steps > 0")


def run(cfg: ExportConfig) -> dict:
    """Export every requested precision; returns {precision: manifest}. Gate failures are collected
    in ``cfg.gate_failures`` (their folders are not written)."""

    table = convert.precisions()
    if cfg.raw_input and cfg.io_type is None and any(table[p].representative for p in cfg.precisions):
        cfg.io_type = "float32"
    validate(cfg, table)
    exporter = Exporter(cfg)
    out = Path(cfg.out) if cfg.out else (exporter.run_dir or Path(cfg.source).with_suffix("")) / "export"
    results = {}
    for name in cfg.precisions:
        try:
            manifest, files = exporter.export(table[name])
        except UserError as err:
            if len(cfg.precisions) == 1:
                raise
            cfg.gate_failures.append(f"{name}: {err}")  # --all carries on with the other precisions
            exporter.log(f"{name}: FAILED: {err}")
            continue
        if manifest["gates"]["passed"]:
            publish(out / name, files, manifest)
        results[name] = manifest
        exporter.log(summary_line(name, manifest, out / name))
    if cfg.onnx:
        results["onnx"] = export_onnx(exporter, out / "onnx")
        exporter.log(f"onnx: {out / 'onnx' / 'model.onnx'}  parity max |ORT - Keras| "
                     f"{results['onnx']['parity']['max_abs_diff']:.2e}")
    return results


def summary_line(name, manifest, folder) -> str:
    rec, fid = manifest["file"], manifest.get("fidelity")
    parts = [f"{name}: {folder / 'model.tflite'}", f"{rec['size_bytes'] / 1024:.0f} KB",
             f"{manifest['conversion_seconds']:.1f} s"]
    if fid:
        parts.append(f"PSNR {fid['psnr']:.2f} dB (drop {fid['psnr_drop']:+.3f}, max err {fid['max_abs_error']:.3g})")
    parts.append("delegable: " + ", ".join(f"{t} {'yes' if c['fully_delegable'] else 'no'}"
                                           for t, c in manifest["compatibility"].items()))
    if not manifest["gates"]["passed"]:
        parts.append("REJECTED: " + "; ".join(manifest["gates"]["failures"]))
    return "  ".join(parts)
