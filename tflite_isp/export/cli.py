"""``python -m tflite_isp.export``: a trained model -> verified ``.tflite`` files, one folder per precision.

    python -m tflite_isp.export RUN_DIR [--fp16 | --int8 | --int8-qat | --int16x8 | --dynamic | --all] [--onnx]
    python -m tflite_isp.export check model.tflite --target nnapi:29 [--require-delegable nnapi:29]

Each export folder holds ``model.tflite`` (fixed batch 1 at ``--size``, Full HD packed 544 x 960
by default: AI Benchmark's PRO mode file), ``model_none.tflite`` (dynamic height and width,
the MAI 2021 submission convention) and ``manifest.json``: recipe, IO convention and
quantisation, ops, delegate verdicts and the fidelity figures measured on the validation split.
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from absl import flags

from tflite_isp.core import atomic, cli
from tflite_isp.core.errors import UserError, fail
from importlib import metadata
from tflite_isp.data import layouts
from tflite_isp.export import canvas
from tflite_isp.export import convert
from tflite_isp.export import convert, fidelity, quant_debug
from tflite_isp.export import fidelity
from tflite_isp.run import litert as runtime
import numpy as np
import tempfile
from tflite_isp.export import compat
from tflite_isp.export import compat
from tflite_isp.run import flatbuffer
from tflite_isp.run import flatbuffer
from tflite_isp.nets import recipes

FLAGS = flags.FLAGS
PRECISION_FLAGS = ("fp16", "int8", "int8_qat", "int16x8", "dynamic")
for _name, _help in [("fp16", "FP16 weights."), ("int8", "Full-integer INT8, post-training calibration."),
                     ("int8_qat", "Full-integer INT8 after quantization-aware fine-tuning."),
                     ("int16x8", "INT16 activations, INT8 weights."), ("dynamic", "Dynamic-range (INT8 weights)."),
                     ("all", "Every precision (FP32 included) and ONNX.")]:
    flags.DEFINE_boolean(_name, False, _help)
flags.DEFINE_string("size", "544x960", "Packed input HxW of model.tflite (Full HD RAW = 544x960); also --size H W.")
flags.DEFINE_boolean("model_none", True, "Also write model_none.tflite with dynamic height and width.")
flags.DEFINE_integer("calibration_images", 100, "Training images for INT8/16x8 calibration and QAT data checks.")
flags.DEFINE_enum("io_type", None, ["float32", "uint8", "int8", "int16"], "IO type of integer models (default: int8; "
                  "int16x8: float32).")
flags.DEFINE_boolean("raw_input", False, "Put input normalisation inside the graph: the file takes packed sensor "
                                         "values (the MAI rule: all processing inside the TFLite graph).")
flags.DEFINE_boolean("allow_float_ops", False, "Let ops that cannot be integer stay in float (named, never silent).")
flags.DEFINE_boolean("per_channel", True, "Per-channel weight quantisation (--noper_channel: per-tensor, for NPUs "
                                          "that need it).")
flags.DEFINE_integer("qat_steps", 200, "Quantization-aware fine-tuning steps.")
flags.DEFINE_float("qat_lr", None, "QAT learning rate (default: the recipe's final rate, lr_min).")
flags.DEFINE_enum("qat_target", "teacher", ["teacher", "data"], "QAT fine-tunes toward the FP32 model's own outputs "
                  "(teacher: aims at the conversion loss itself) or the dataset targets (data).")
flags.DEFINE_integer("fidelity_images", 32, "Validation images for the fidelity gate (0: skip the gate).")
flags.DEFINE_float("max_psnr_drop", None, "Fail an export whose PSNR drop against the FP32 Keras model exceeds this.")
flags.DEFINE_boolean("debug_quant", False, "Per-layer quantisation error table (INT8 / 16x8 / dynamic).")
flags.DEFINE_integer("keep_float", 0, "With --debug_quant: keep the N worst layers in float (selective "
                                      "quantisation) in the exported file, and report the effect.")
flags.DEFINE_boolean("onnx", False, "Also export ONNX (opset --opset) through tf2onnx, parity-checked with "
                                    "onnxruntime.")
flags.DEFINE_integer("opset", 17, "ONNX opset.")
flags.DEFINE_multi_string("target", None, "Delegate targets to check: xnnpack, gpu, nnapi[:SDK], hexagon, mediatek "
                                          "(default: all).")
flags.DEFINE_multi_string("require_delegable", None, "Fail when any op would fall back to the CPU on this target.")


@dataclass
class ExportConfig:
    source: str
    precisions: tuple = ("fp32",)
    onnx: bool = False
    size: tuple = (544, 960)
    model_none: bool = True
    data: str | None = None
    out: str | None = None
    calibration_images: int = 100
    io_type: str | None = None
    raw_input: bool = False
    allow_float_ops: bool = False
    per_channel: bool = True
    qat_steps: int = 200
    qat_lr: float | None = None
    qat_target: str = "teacher"
    fidelity_images: int = 32
    max_psnr_drop: float | None = None
    debug_quant: bool = False
    keep_float: int = 0
    opset: int = 17
    targets: tuple = ()
    require_delegable: tuple = ()
    threads: int = 2
    recipe: str | None = None
    seed: int = 0
    bad_files: str = "fail"
    log: bool = True
    gate_failures: list = field(default_factory=list)

# --- Inputs --------------------------------------------------------------------------------


def parse_size(text: str) -> tuple:
    try:
        h, w = (int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise UserError(f"--size must be H W or HxW (packed pixels), not {text!r}") from None
    if h <= 0 or w <= 0:
        raise UserError(f"--size must be positive, not {text!r}")
    return h, w


def load_source(source: str, recipe_name: str | None = None):
    """(recipe, Keras model, run dir or None) from a run directory or a saved ``.keras`` file."""
    from tflite_isp.nets import architectures

    path = Path(source)
    if path.is_dir():
        keras_path, run_dir = path / "model.keras", path
        if not (path / "recipe.json").is_file() or not keras_path.is_file():
            raise fail(path, "not a finished run directory (needs recipe.json and model.keras from "
                             "python -m tflite_isp.train)")
        recipe = recipes.load_recipe(path / "recipe.json")
    elif path.is_file() and path.suffix == ".keras":
        keras_path, run_dir = path, path.parent if (path.parent / "run.json").is_file() else None
        if recipe_name:
            recipe = recipes.load_recipe(recipe_name)
        elif (path.parent / "recipe.json").is_file():
            recipe = recipes.load_recipe(path.parent / "recipe.json")
        else:
            raise fail(path, "a bare .keras model needs --recipe (its packing order and normalisation)")
    elif path.exists():
        raise fail(path, "expected a run directory or a .keras model")
    else:
        raise fail(path, "no such run directory or model")
    model = architectures.load(keras_path)
    if tuple(model.input_shape[-1:]) != (4,) or len(model.input_shape) != 4:
        raise fail(keras_path, f"input {model.input_shape} is not packed RAW (batch, H, W, 4)")
    return recipe, model, run_dir


def data_source(cfg: ExportConfig, recipe, run_dir):
    """(layout, root) of the calibration/fidelity data: --data, else the run's training data."""

    if cfg.data:
        return layouts.parse_data_flag(cfg.data)
    if run_dir and (run_dir / "run.json").is_file():
        data = json.loads((run_dir / "run.json").read_text())["data"]
        if not Path(data["root"]).exists():
            raise fail(data["root"], "the run's training data is gone; pass --data LAYOUT:PATH")
        return data["layout"], Path(data["root"])
    return layouts.parse_data_flag(f"embedded:{recipe.task}")


def uniform_levels(split, spec, source) -> dict:
    """Black (4, model order) and white for an in-graph Normalise: the split must agree on them."""

    blacks, whites = layouts.input_levels(split, spec)
    if not (np.allclose(blacks, blacks[0]) and np.allclose(whites, whites[0])):
        raise fail(source, "--raw_input needs one black/white level for every file, but this data's levels differ")
    return {"black": [float(b) for b in blacks[0]], "white": float(whites[0]), "clip": spec.clip}

# --- One export ----------------------------------------------------------------------------


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tool_versions() -> dict:

    names = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert", "tf2onnx", "onnxruntime",
             "numpy", "tflite-isp")
    versions = {"python": sys.version.split()[0]}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def io_record(tensor) -> dict:
    d = {"name": tensor.name, "dtype": tensor.dtype, "shape": list(tensor.shape),
         "shape_signature": list(tensor.shape_signature)}
    if tensor.scales:
        d["quantization"] = {"scale": list(tensor.scales), "zero_point": list(tensor.zero_points)}
    return d


def file_record(data: bytes, name: str) -> tuple:
    """(manifest record of a .tflite file, its parsed TFLiteModel)."""

    info = flatbuffer.parse(data, name)
    return {"file": name, "size_bytes": len(data), "sha256": sha256(data),
            "inputs": [io_record(t) for t in info.inputs], "outputs": [io_record(t) for t in info.outputs],
            "ops": info.to_dict()["ops"]}, info


class Exporter:
    """Everything shared by the precisions of one export call: model, data, canvases, references."""

    def __init__(self, cfg: ExportConfig):
        from tflite_isp.nets import architectures

        self.cfg = cfg
        self.recipe, loaded, self.run_dir = load_source(cfg.source, cfg.recipe)
        self.multiple = architectures.input_multiple(self.recipe.model)
        h, w = cfg.size
        if h % self.multiple or w % self.multiple:
            raise UserError(f"--size {h}x{w}: {self.recipe.name} needs packed sizes divisible by {self.multiple}")
        self.layout, self.root = data_source(cfg, self.recipe, self.run_dir)
        spec = self.recipe.input
        self.train_split = layouts.open_split(self.layout, self.root, "train", on_bad=cfg.bad_files)
        self.val_split = layouts.open_split(self.layout, self.root, layouts.validation_split(self.layout, self.root),
                                             on_bad=cfg.bad_files)
        if self.train_split.task != self.recipe.task:
            raise fail(self.root, f"{self.layout} is {self.train_split.task} data but {self.recipe.name} is a "
                                  f"{self.recipe.task} model")
        self.levels = None
        if cfg.raw_input:
            if self.recipe.task == "lowlight":
                raise UserError("--raw_input is for ISP models; a low-light model's input is also amplified by "
                                "the exposure ratio, which the graph does not take")
            self.levels = uniform_levels(self.train_split, spec, self.root)
        self.model = loaded
        if self.levels:
            self.model = architectures.copy_weights(loaded, architectures.build(self.recipe.model, normalise=self.levels,
                                                              name=self.recipe.name))
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
        from tflite_isp.train import losses
        from tflite_isp.data import pipeline
        from tflite_isp.export import qat

        recipe, cfg = self.recipe, self.cfg
        q = qat.quantize(self.model, source=cfg.source)
        qat.calibrate_ranges(q, self.model, self.calibration_inputs[:4])
        augment, batch = bool(recipe.train.get("augment", True)), int(recipe.train.get("batch", 8))
        smallest = min(min(p.shape) for p in self.train_split.pairs) - (2 if augment else 0)
        step = 2 * self.multiple
        patch = min(int(recipe.train.get("patch", 256)), smallest // step * step)  # the recipe's, if data allow
        data = pipeline.training_dataset(self.train_split, recipe.input, patch=patch, batch=batch, augment=augment,
                                         seed=cfg.seed)
        if self.levels:

            from tflite_isp.core.tf import tf

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
        self.log(f"{precision.name}: converting at 1x{h}x{w}x4")
        data = self.convert(model, precision, (1, h, w, 4))
        convert_s = time.perf_counter() - start
        record, info = file_record(data, "model.tflite")
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
                record, info = file_record(data, "model.tflite")
                manifest["file"] = record

        if cfg.model_none and debug and debug.get("selective"):
            manifest["model_none"] = {"skipped": "selective quantisation (--keep_float) applies to model.tflite only"}
        elif cfg.model_none:
            try:
                none_data = self.convert(model, precision, (1, None, None, 4))
                files["model_none.tflite"] = none_data
                manifest["model_none"] = file_record(none_data, "model_none.tflite")[0]
            except UserError as err:
                manifest["model_none"] = {"error": str(err)}
                self.log(f"{precision.name}: no model_none.tflite ({err})")

        reports = compat.check_all(info, list(cfg.targets) or None)
        manifest["compatibility"] = {t: {"fully_delegable": r.fully_delegable, "summary": r.summary(),
                                         "cpu_fallback": sorted({v.op for v in r.verdicts if not v.delegable})}
                                     for t, r in reports.items()}
        if self.fidelity:

            runner = runtime.Runner(data, threads=cfg.threads)
            manifest["fidelity"] = fidelity.compare(runner, self.fidelity_inputs, self.reference_outputs(),
                                                    self.fidelity)
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
            return convert.converter_for(model, (1, *cfg.size, 4), precision,
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
                    runtime.Runner(full_data, threads=cfg.threads), self.fidelity_inputs, self.reference_outputs(),
                    self.fidelity)
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


def publish(folder: Path, files: dict, manifest: dict) -> None:
    """Write the folder under a temporary name, then rename it over any older one."""
    with atomic.staged_dir(folder) as tmp:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")


def export_onnx(exporter: Exporter, folder: Path) -> dict:
    """FP32 ONNX (tf2onnx) at the export size, parity-checked with onnxruntime; its own folder."""

    from tflite_isp.export import onnx_export

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

# --- CLI -----------------------------------------------------------------------------------


def config_from_flags(source: str) -> ExportConfig:
    chosen = tuple(p for p in PRECISION_FLAGS if FLAGS[p].value)
    if FLAGS.all and chosen:
        raise UserError(f"--all already includes every precision; drop --{', --'.join(chosen)}")
    if len(chosen) > 1:
        raise UserError(f"choose one precision (--{' | --'.join(chosen)} given) or --all")
    precisions = ("fp32", *PRECISION_FLAGS) if FLAGS.all else (chosen or ("fp32",))
    return ExportConfig(
        source=source, precisions=precisions, onnx=FLAGS.onnx or FLAGS.all, size=parse_size(FLAGS.size),
        model_none=FLAGS.model_none, data=FLAGS.data, out=FLAGS.out, calibration_images=FLAGS.calibration_images,
        io_type=FLAGS.io_type, raw_input=FLAGS.raw_input, allow_float_ops=FLAGS.allow_float_ops,
        per_channel=FLAGS.per_channel, qat_steps=FLAGS.qat_steps, qat_lr=FLAGS.qat_lr, qat_target=FLAGS.qat_target,
        fidelity_images=FLAGS.fidelity_images, max_psnr_drop=FLAGS.max_psnr_drop, debug_quant=FLAGS.debug_quant,
        keep_float=FLAGS.keep_float, opset=FLAGS.opset, targets=tuple(FLAGS.target or ()),
        require_delegable=tuple(FLAGS.require_delegable or ()), threads=FLAGS.threads, recipe=FLAGS.recipe,
        seed=FLAGS.seed, bad_files=FLAGS.bad_files)


def check_command(paths) -> int:
    """``export check FILE.tflite ...``: the delegate report of any .tflite file."""

    targets = list(FLAGS.target or ()) or None
    required = list(FLAGS.require_delegable or ())
    for t in (*(targets or ()), *required):
        compat.parse_target(t)
    status = 0
    for path in paths:
        model = flatbuffer.read(path)
        reports = compat.check_all(model, targets)
        for t in required:
            if t not in reports:
                reports[t] = compat.check(model, t)
        print(f"{path}: {len(model.ops)} ops, inputs " +
              ", ".join(f"{t.dtype}{list(t.shape_signature)}" for t in model.inputs))
        print(compat.format_table(list(reports.values())))
        for t in required:
            if not reports[t].fully_delegable:
                print(f"FAILED --require_delegable {t}: {reports[t].summary()}", file=sys.stderr)
                status = 1
    return status


def main(argv) -> int:
    def body(_):
        args = argv[1:]
        if args and args[0] == "check":
            if len(args) < 2:
                raise UserError("usage: python -m tflite_isp.export check MODEL.tflite [--target nnapi:29]")
            return check_command(args[1:])
        if len(args) != 1:
            raise UserError("usage: python -m tflite_isp.export RUN_DIR|MODEL.keras [--int8 ...] "
                            f"(got {len(args)} positional arguments)")
        cfg = config_from_flags(args[0])
        run(cfg)
        for failure in cfg.gate_failures:
            print(f"FAILED {failure}", file=sys.stderr)
        return 1 if cfg.gate_failures else 0

    return cli.run_command(body)


def entry():
    cli.entry(main)


if __name__ == "__main__":
    entry()
