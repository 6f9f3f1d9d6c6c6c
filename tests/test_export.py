"""The export command: every precision for the three zoo models and CSANet, manifests that match the files,
QAT to an all-int8 graph, the fidelity gate, quantisation debugging, raw-sensor input, bad input."""
import hashlib
import json

import numpy as np
import pytest
from conftest import make_run, run_module

SIZE = (32, 48)  # packed; divisible by 16 for both U-Nets


@pytest.fixture(scope="module")
def runs(tmp_path_factory, isp_data, lowlight_data):
    root = tmp_path_factory.mktemp("runs")
    return {
        "smallnet": make_run(root / "smallnet", "smallnet", f"mai21:{isp_data}"),
        "sid_unet": make_run(root / "sid_unet", "sid_unet", f"sid:{lowlight_data}", width_multiplier=0.125),
        "punet": make_run(root / "punet", "punet", f"mai21:{isp_data}", base=4),
        "csanet": make_run(root / "csanet", "csanet", f"mai21:{isp_data}"),
    }


def export(source, out, precisions, **options):
    from tflite_isp.export import exporter as ex

    settings = {"size": SIZE, "calibration_images": 6, "fidelity_images": 4, "qat_steps": 3, "log": False, **options}
    cfg = ex.ExportConfig(source=str(source), out=str(out), precisions=tuple(precisions), **settings)
    return ex.run(cfg), cfg


@pytest.mark.parametrize("name", ["smallnet", "sid_unet", "punet", "csanet"])
def test_every_precision_converts_runs_and_matches_its_manifest(runs, tmp_path, name):
    from ai_edge_litert.interpreter import Interpreter

    from tflite_isp.run import flatbuffer
    from tflite_isp.run import litert as runtime

    precisions = ("fp32", "fp16", "dynamic", "int8", "int8_qat", "int16x8")
    with_none = name == "smallnet"  # model_none doubles the conversions; one model shows it works for all
    results, cfg = export(runs[name], tmp_path / "out", precisions, allow_float_ops=True, model_none=with_none,
                          onnx=with_none)
    assert cfg.gate_failures == []
    for precision in precisions:
        folder = tmp_path / "out" / precision
        manifest = json.loads((folder / "manifest.json").read_text())
        data = (folder / "model.tflite").read_bytes()
        # the manifest describes the file on disk (checked against the file itself, not the dict it came from)
        assert manifest["file"]["size_bytes"] == len(data)
        assert manifest["file"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert manifest["precision"]["name"] == precision and results[precision]["file"]["sha256"] == hashlib.sha256(
            data).hexdigest()
        interp = Interpreter(model_content=data)
        interp.allocate_tensors()
        (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
        for detail, record in ((inp, manifest["file"]["inputs"][0]), (out, manifest["file"]["outputs"][0])):
            assert detail["dtype"].__name__ == record["dtype"]
            assert list(detail["shape"]) == record["shape"]
            if "quantization" in record:
                assert detail["quantization"][0] == pytest.approx(record["quantization"]["scale"][0])
                assert detail["quantization"][1] == record["quantization"]["zero_point"][0]
        assert list(inp["shape"]) == [1, *SIZE, 4] and list(out["shape"]) == [1, 2 * SIZE[0], 2 * SIZE[1], 3]
        expected_io = {"int8": "int8", "int8_qat": "int8", "int16x8": "float32"}.get(precision, "float32")
        assert manifest["precision"]["io_type"] == expected_io == inp["dtype"].__name__
        y = runtime.Runner(data)(np.full((1, *SIZE, 4), 0.25, np.float32))
        assert y.shape == (1, 2 * SIZE[0], 2 * SIZE[1], 3) and np.isfinite(y).all()
        fid = manifest["fidelity"]
        assert fid["images"] >= 1 and np.isfinite(fid["psnr_drop"]) and fid["max_abs_error"] >= 0
        # the gate measures conversion error: an FP32 file is the Keras model (float rounding only)
        bound = {"fp32": (0.01, 1e-4), "fp16": (0.1, 0.01)}.get(precision, (3.0, 0.25))
        assert abs(fid["psnr_drop"]) <= bound[0] and fid["max_abs_error"] <= bound[1], (precision, fid)
        if with_none:
            none = flatbuffer.read(folder / "model_none.tflite")
            assert none.inputs[0].shape_signature == (1, -1, -1, 4)
            assert manifest["model_none"]["sha256"] != manifest["file"]["sha256"]
        assert set(manifest["compatibility"]) == {"xnnpack", "gpu", "nnapi:30", "hexagon", "mediatek"}
        assert {c["basis"] for c in manifest["compatibility"].values()} == {"predicted"}
        if precision in ("fp32", "fp16"):  # FP16 weights reach the convs through DEQUANTIZE: XNNPACK unpacks them
            assert manifest["compatibility"]["xnnpack"]["fully_delegable"], manifest["compatibility"]["xnnpack"]
        assert manifest["input"]["order"] and manifest["tools"]["tensorflow"]
    assert not any(p.name.startswith(".tmp") for p in (tmp_path / "out").iterdir())
    if with_none:
        onnx = json.loads((tmp_path / "out" / "onnx" / "manifest.json").read_text())
        assert (tmp_path / "out" / "onnx" / "model.onnx").stat().st_size == onnx["onnx"]["size_bytes"]
        assert onnx["onnx"]["opset"] == 17 and onnx["parity"]["max_abs_diff"] < 1e-4


@pytest.mark.parametrize("name", ["smallnet", "sid_unet", "csanet"])
def test_qat_gives_an_all_int8_graph_with_an_int8_pixel_shuffle(runs, tmp_path, name):
    from tflite_isp.run import flatbuffer

    _, cfg = export(runs[name], tmp_path / "out", ["int8_qat"], model_none=False, fidelity_images=0)
    assert cfg.gate_failures == []
    model = flatbuffer.read(tmp_path / "out" / "int8_qat" / "model.tflite")
    shuffle = [op for op in model.ops if op.name == "DEPTH_TO_SPACE"]
    assert shuffle and shuffle[0].outputs[0].dtype == "int8"
    assert "DEQUANTIZE" not in model.op_counts()
    activations = {t.dtype for op in model.ops for t in op.outputs}
    assert activations == {"int8"}


def test_qat_ranges_start_from_the_float_model(runs):
    """Calibrated QAT ranges: the fake-quantised model is close to the float one before any training."""
    from tflite_isp.core.tf import keras
    from tflite_isp.export import qat
    from tflite_isp.nets import architectures

    model = keras.models.load_model(str(runs["smallnet"] / "model.keras"), custom_objects=architectures.CUSTOM_OBJECTS)
    x = np.random.default_rng(0).uniform(0, 0.5, (1, *SIZE, 4)).astype(np.float32)
    q = qat.quantize(model)
    before = float(np.abs(q(x, training=False).numpy() - model(x).numpy()).max())
    qat.calibrate_ranges(q, model, [x])
    after = float(np.abs(q(x, training=False).numpy() - model(x).numpy()).max())
    assert after < 0.05 < before


def test_int16x8_names_the_op_it_cannot_convert(runs, tmp_path):
    from tflite_isp.core.errors import UserError

    with pytest.raises(UserError, match="DEPTH_TO_SPACE .*--allow_float_ops"):
        export(runs["smallnet"], tmp_path / "out", ["int16x8"])
    assert not (tmp_path / "out" / "int16x8").exists()


def test_fidelity_gate_rejects_and_writes_nothing(runs, tmp_path):
    results, cfg = export(runs["smallnet"], tmp_path / "out", ["int8"], max_psnr_drop=-100.0)
    assert cfg.gate_failures and "PSNR drop" in cfg.gate_failures[0]
    assert results["int8"]["gates"]["passed"] is False
    assert not (tmp_path / "out" / "int8").exists()


def test_require_delegable_gate(runs, tmp_path):
    _, ok = export(runs["smallnet"], tmp_path / "a", ["int8"], require_delegable=("hexagon",), fidelity_images=0)
    assert ok.gate_failures == []
    _, bad = export(runs["smallnet"], tmp_path / "b", ["fp32"], require_delegable=("hexagon",), fidelity_images=0)
    assert bad.gate_failures and "hexagon" in bad.gate_failures[0]


def test_debug_quant_ranks_layers_and_keeps_the_worst_in_float(runs, tmp_path):
    from tflite_isp.run import flatbuffer

    results, _ = export(runs["sid_unet"], tmp_path / "out", ["int8"], debug_quant=True, keep_float=2, model_none=False)
    debug = results["int8"]["debug_quant"]
    ratios = [row["rmse_over_scale"] for row in debug["layers"]]
    assert len(ratios) > 5 and ratios == sorted(ratios, reverse=True)
    assert len(debug["selective"]["kept_float"]) == 2
    assert debug["selective"]["fidelity_before"]["images"] == debug["selective"]["fidelity_after"]["images"]
    model = flatbuffer.read(tmp_path / "out" / "int8" / "model.tflite")
    assert "float32" in {t.dtype for op in model.ops for t in op.outputs}  # the kept layers run in float


def test_raw_input_puts_normalisation_in_the_graph(runs, tmp_path, isp_data):
    """A --raw_input file takes sensor values and gives what the normalised model gives."""
    from tflite_isp.core.tf import keras
    from tflite_isp.export import exporter as ex
    from tflite_isp.nets import architectures
    from tflite_isp.run import litert as runtime

    results, _ = export(runs["smallnet"], tmp_path / "out", ["fp32"], raw_input=True)
    manifest = results["fp32"]
    assert manifest["input"]["raw_input"] and manifest["input"]["levels"]["white"] == 1020
    model = keras.models.load_model(str(runs["smallnet"] / "model.keras"), custom_objects=architectures.CUSTOM_OBJECTS)
    sensor = np.random.default_rng(1).integers(0, 1024, (1, *SIZE, 4)).astype(np.float32)
    got = runtime.Runner(tmp_path / "out" / "fp32" / "model.tflite")(sensor)
    np.testing.assert_allclose(got, model(sensor / 1020.0).numpy(), atol=1e-4)
    with pytest.raises(ex.UserError, match="8-bit IO"):
        export(runs["smallnet"], tmp_path / "x", ["int8"], raw_input=True, io_type="int8")


def test_uint8_io(runs, tmp_path):
    results, _ = export(runs["smallnet"], tmp_path / "out", ["int8"], io_type="uint8", fidelity_images=0)
    record = results["int8"]["file"]["inputs"][0]
    assert record["dtype"] == "uint8" and record["quantization"]["zero_point"] == [0]


def test_cli_check_and_export_end_to_end(runs, tmp_path):
    out = tmp_path / "out"
    proc = run_module("tflite_isp.export", runs["smallnet"], "--int8", "--size", *SIZE, "--out", out,
                      "--calibration-images", 4, "--fidelity-images", 2, "--target", "nnapi:29")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "int8:" in proc.stderr and "PSNR" in proc.stderr
    manifest = json.loads((out / "int8" / "manifest.json").read_text())
    assert list(manifest["compatibility"]) == ["nnapi:29"]
    # int8 file with int8 IO: no QUANTIZE op, every op delegable on NNAPI 29
    check = run_module("tflite_isp.export", "check", out / "int8" / "model.tflite", "--target", "nnapi:29",
                       "--require-delegable", "nnapi:29")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "CONV_2D" in check.stdout and "DEPTH_TO_SPACE" in check.stdout
    hexagon = run_module("tflite_isp.export", "check", out / "int8" / "model_none.tflite",
                         "--require_delegable", "gpu")
    assert hexagon.returncode == 1 and "dynamic" in hexagon.stdout + hexagon.stderr


def _error_line(proc) -> str:
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return lines[0]


def test_bad_input_is_one_line_and_leaves_no_folder(runs, tmp_path):
    out = tmp_path / "out"
    not_tflite = tmp_path / "notes.tflite"
    not_tflite.write_text("hello")
    cases = [
        (["export_missing_run"], "no such run directory"),
        ([tmp_path], "not a finished run directory"),
        ([runs["smallnet"], "--int8", "--fp16"], "choose one precision"),
        ([runs["smallnet"], "--all", "--int8"], "--all already includes"),
        ([runs["smallnet"], "--fp16", "--io_type", "int8"], "needs an integer precision"),
        ([runs["smallnet"], "--int16x8", "--io_type", "uint8"], "does not fit --int16x8"),
        ([runs["smallnet"], "--target", "tpu"], "unknown target 'tpu'"),
        ([runs["sid_unet"], "--size", "30", "48"], "divisible by 16"),
        (["check", not_tflite], "not a TFLite flatbuffer"),
    ]
    for args, expected in cases:
        proc = run_module("tflite_isp.export", *args, "--out", out)
        line = _error_line(proc)
        assert expected in line, line
    assert not out.exists()


def test_empty_calibration_split_and_unannotatable_layer(runs, tmp_path, isp_data):
    import shutil

    from tflite_isp.core.errors import UserError
    from tflite_isp.core.tf import keras
    from tflite_isp.export import qat

    empty = tmp_path / "empty"
    shutil.copytree(isp_data, empty)
    for f in (empty / "train").rglob("*"):
        if f.is_file():
            f.unlink()
    with pytest.raises(UserError, match="(no|empty)"):
        export(runs["smallnet"], tmp_path / "out", ["int8"], data=f"mai21:{empty}")
    assert not (tmp_path / "out").exists()

    inputs = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)
    model = keras.Model(inputs, keras.layers.LayerNormalization(name="odd_norm")(x))  # no QuantizeConfig
    with pytest.raises(UserError, match="'odd_norm' \\(LayerNormalization\\) cannot be annotated"):
        qat.annotate(model, "net.keras")
