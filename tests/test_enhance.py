"""python -m tflite_isp.enhance: DNGs the project writes -> JPEG; tiled equals whole-frame; folders; bad input."""
import numpy as np
import pytest
from conftest import make_run, run_module

from tflite_isp.apps import enhance, exported, images, memory_plan
from tflite_isp.raw import dng
from tflite_isp.run import flatbuffer
from tflite_isp.run.refit import refit

XYZ_TO_CAM = [[0.6722, -0.0635, -0.0963], [-0.4287, 1.2460, 0.2028], [-0.0908, 0.2162, 0.5668]]


def write_photo_dng(path, size=(200, 304), orientation=1, black=64, white=1023, level=1.0, cfa_repeat=None):
    """A real photo (scikit-image astronaut) sampled into a 10-bit RGGB mosaic (black 64, white 1023); ``level``
    scales the signal (a dim short exposure), ``cfa_repeat`` samples it through another colour filter instead."""
    from skimage import data
    from skimage.transform import resize

    rgb = resize(data.astronaut(), size, anti_aliasing=True)
    rows = cfa_repeat or ("RG", "GB")
    index = np.array([["RGB".index(c) for c in r] for r in rows])
    reps = (-(-size[0] // index.shape[0]), -(-size[1] // index.shape[1]))
    channel = np.tile(index, reps)[: size[0], : size[1]]
    mosaic = np.take_along_axis(rgb, channel[..., None], axis=2)[..., 0]
    raw = np.round(black + level * mosaic * (white - black)).astype(np.uint16)
    return dng.write_dng(path, raw, pattern="RGGB", black=black, white=white, xyz_to_cam=XYZ_TO_CAM,
                         as_shot_neutral=[0.5, 1.0, 0.6], orientation=orientation, cfa_repeat=cfa_repeat)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, isp_data):
    from tflite_isp.export import exporter as ex

    root = tmp_path_factory.mktemp("enhance")
    run = make_run(root / "smallnet", "smallnet", f"mai21:{isp_data}")
    ex.run(ex.ExportConfig(source=str(run), precisions=("int8",), size=(32, 48), calibration_images=4,
                           fidelity_images=0, model_none=False, log=False))
    return run / "export" / "int8"


def test_tiled_equals_whole_frame(export_dir, tmp_path):
    x = exported.load_export(export_dir)
    assert (x.tile, x.multiple, x.radius) == ((32, 48), 1, 3.0)
    frame, _ = enhance.read_frame(write_photo_dng(tmp_path / "a.dng"))
    packed = enhance.model_input(x, frame, 1.0)
    whole = enhance.enhance_frame(x, packed, packed.shape[:2], 0)
    tiled = enhance.enhance_frame(x, packed, (32, 48), memory_plan.margin_for(x, (32, 48)))
    assert whole.shape == tiled.shape == (200, 304, 3)
    np.testing.assert_array_equal(tiled, whole)


def test_refit_keeps_ops_and_weights(export_dir):
    data = (export_dir / "model.tflite").read_bytes()
    assert refit(data, 32, 48) == data
    big = flatbuffer.parse(refit(data, 64, 96))
    small = flatbuffer.parse(data)
    assert big.inputs[0].shape == (1, 64, 96, 4) and big.outputs[0].shape == (1, 128, 192, 3)
    assert [o.name for o in big.ops] == [o.name for o in small.ops]


def test_memory_plan_picks_the_largest_tile_that_fits(export_dir):
    x = exported.load_export(export_dir)
    roomy = memory_plan.plan(x, (600, 800), budget_mb=10_000, base_mb=0)
    assert roomy.tile == (600, 800) and roomy.exact  # the whole frame at once
    phases = memory_plan.frame_phases((600, 800))
    tight_budget = memory_plan.peak_mb(0, phases, memory_plan.tile_bytes(x, (128, 128)) / memory_plan.MB) + 0.01
    tight = memory_plan.plan(x, (600, 800), budget_mb=tight_budget, base_mb=0)
    assert tight.tile == (128, 128) and tight.margin == 3 and tight.exact and tight.estimate_mb <= tight_budget
    # the base counts
    assert memory_plan.plan(x, (600, 800), budget_mb=tight_budget + 50, base_mb=50).tile == (128, 128)
    with pytest.raises(Exception, match="too small for this 1600x1200 frame"):
        memory_plan.plan(x, (600, 800), budget_mb=memory_plan.peak_mb(0, phases, 0), base_mb=0)


def test_tile_cost_counts_xnnpack_indirection(export_dir):
    """A 3x3 conv's XNNPACK indirection buffer (a pointer per tap and output pixel) is in the tile's cost."""
    from tflite_isp.run import flatbuffer

    x = exported.load_export(export_dir)
    model = flatbuffer.parse(memory_plan.refit(x, (64, 96)))
    taps = sum(64 * 96 * 9 for op in model.ops if op.name == "CONV_2D" and op.inputs[1].shape[1:3] == (3, 3))
    assert taps and memory_plan.runtime_bytes(model, 0) >= taps * memory_plan.POINTER


def test_cli_file_png16_and_orientation(export_dir, tmp_path):
    import imageio.v3 as iio
    import rawpy

    upright, turned = write_photo_dng(tmp_path / "up.dng"), write_photo_dng(tmp_path / "cw.dng", orientation=6)
    for raw in (upright, turned):
        r = run_module("tflite_isp.enhance", raw, "-o", tmp_path / f"{raw.stem}.jpg", "--export_dir", export_dir,
                       "--png16")
        assert r.returncode == 0, r.stderr
    up, cw = iio.imread(tmp_path / "up.jpg"), iio.imread(tmp_path / "cw.jpg")
    assert up.shape == (200, 304, 3) and cw.shape == (304, 200, 3)
    png = (tmp_path / "up.png").read_bytes()
    assert png[12:16] == b"IHDR" and png[24:26] == bytes((16, 2))  # 16 bits per sample, RGB
    assert iio.imread(tmp_path / "up.png").shape == (200, 304, 3)
    # the turn is LibRaw's own: compare with its rendering of the same file, which honours the flag
    with rawpy.imread(str(turned)) as raw:
        ref = raw.postprocess(no_auto_bright=True, use_camera_wb=True).mean(axis=2)
    assert ref.shape == cw.shape[:2]
    ours = [np.rot90(up.mean(axis=2), k) for k in range(4)]
    scores = [abs(np.corrcoef(o.ravel(), ref.ravel())[0, 1]) if o.shape == ref.shape else 0 for o in ours]
    assert np.argmax(scores) == images.ORIENT[6]
    assert np.abs(cw.mean(axis=2) - ours[images.ORIENT[6]]).mean() < 2  # the same image, JPEG-compressed turned


def test_png16_decodes_in_a_real_reader(tmp_path):
    """Our 16-bit RGB PNG read back by Pillow (which keeps the high byte of each 16-bit sample)."""
    import imageio.v3 as iio

    rgb16 = np.random.default_rng(0).integers(0, 65536, (7, 5, 3), dtype=np.uint16)
    (tmp_path / "x.png").write_bytes(images.png16_bytes(rgb16))
    np.testing.assert_array_equal(iio.imread(tmp_path / "x.png"), (rgb16 >> 8).astype(np.uint8))


def test_folder_with_a_bad_file(export_dir, tmp_path):
    folder = tmp_path / "raws"
    folder.mkdir()
    write_photo_dng(folder / "a.dng")
    write_photo_dng(folder / "b.dng", size=(120, 160))
    (folder / "c.dng").write_bytes(b"II*\x00 not a raw file")
    (folder / "notes.txt").write_text("ignored")
    r = run_module("tflite_isp.enhance", folder, "-o", tmp_path / "out", "--export_dir", export_dir)
    assert r.returncode == 1
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg", "b.jpg"]
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "c.dng: rawpy cannot decode this file" in errors[0]


def _linear_dng(path):
    """A linear (demosaicked, 3 samples per pixel) DNG: not a Bayer mosaic."""
    import tifffile

    rgb = np.full((64, 96, 3), 1000, np.uint16)
    tags = [(50706, 1, 4, bytes((1, 4, 0, 0)), True), (50717, 4, 1, 4095, True)]
    tifffile.imwrite(path, rgb, photometric=34892, extratags=tags, metadata=None)
    return path


@pytest.mark.parametrize("case, message", [
    ("garbage", "rawpy cannot decode this file"),
    ("linear", "not a Bayer sensor"),
    ("xtrans", "xtrans.dng: not a 2x2 Bayer or 4x4 Quad Bayer CFA (pattern 6x6, e.g. X-Trans)"),
    ("ratio", "--ratio must be > 0"),
    ("isp_ratio", "--ratio applies to low-light models"),
    ("memory", "--max_memory 1 MiB is too small"),
    ("no_model", "--export_dir EXPORT_DIR is required"),
    ("both_spellings", "give the export folder once, as --export_dir"),
])
def test_bad_input_is_one_line(export_dir, tmp_path, case, message):
    import rawpy

    raw = write_photo_dng(tmp_path / "a.dng")
    if case == "garbage":
        raw = tmp_path / "x.dng"
        raw.write_bytes(b"\x00" * 100)
    if case == "linear":
        raw = _linear_dng(tmp_path / "linear.dng")
    if case == "xtrans":  # LibRaw reads the 6 x 6 filter back as such: the check is rawio's, not the writer's
        raw = write_photo_dng(tmp_path / "xtrans.dng", size=(204, 306), cfa_repeat=dng.XTRANS)
        with rawpy.imread(str(raw)) as r:
            assert np.asarray(r.raw_pattern).shape == (6, 6) and r.raw_type.name == "Flat" and r.num_colors == 3
    extra = {"ratio": ["--ratio", "-3"], "isp_ratio": ["--ratio", "100"], "memory": ["--max_memory", "1"]}
    model = {"no_model": [], "both_spellings": ["--model", export_dir, "--export_dir", export_dir]}.get(
        case, ["--export_dir", export_dir])
    r = run_module("tflite_isp.enhance", raw, "-o", tmp_path / "o.jpg", *model, *extra.get(case, []))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error:") and message in r.stderr
    assert "Traceback" not in r.stderr and len([ln for ln in r.stderr.splitlines() if ln.startswith("error:")]) == 1
    assert not (tmp_path / "o.jpg").exists()


# --- Low-light: --ratio auto through a trained ratio predictor ------------------------------------------------------

@pytest.fixture(scope="module")
def lowlight_exports(tmp_path_factory, lowlight_data):
    """(a small SID U-Net fp32 export, a ratio predictor trained for one epoch on the same set)."""
    from tflite_isp.apps import ratio
    from tflite_isp.export import exporter as ex

    root = tmp_path_factory.mktemp("enhance_lowlight")
    run = make_run(root / "sid_unet", "sid_unet", f"sid:{lowlight_data}", width_multiplier=0.125)
    ex.run(ex.ExportConfig(source=str(run), precisions=("fp32",), size=(32, 48), calibration_images=2,
                           fidelity_images=0, model_none=False, log=False))
    ratio.run(f"sid:{lowlight_data}", root / "ratio", epochs=1, crops_per_image=2, seed=0, verbose=False)
    return run / "export" / "fp32", root / "ratio"


def _dark_dng(path):
    """A short exposure: 14-bit levels (black 512, white 16383), the signal at 0.3 % of the range."""
    return write_photo_dng(path, size=(96, 128), black=512, white=16383, level=0.003)


def test_ratio_auto_uses_the_predictor(lowlight_exports, tmp_path):
    import re

    import imageio.v3 as iio

    from tflite_isp.apps import ratio
    from tflite_isp.raw import rawio

    export, predictor = lowlight_exports
    raw = _dark_dng(tmp_path / "dark.dng")
    frame = rawio.read_raw(raw)
    expected = ratio.predict_ratio(predictor / "model.tflite", frame.mosaic, frame.black, frame.white,
                                   pattern=frame.pattern)
    assert ratio.MIN_RATIO < expected < ratio.MAX_RATIO  # not a clamp: a value only the net gives
    # --model is the old spelling of --export_dir: scripts written for the earlier version keep working
    r = run_module("tflite_isp.enhance", raw, "-o", tmp_path / "auto.jpg", "--model", export, "--ratio", "auto",
                   "--ratio_model", predictor)
    assert r.returncode == 0, r.stderr
    printed = re.search(r"dark\.dng -> .*auto\.jpg \(128x96, .*, ratio ([0-9.e+]+),", r.stderr)
    assert printed, r.stderr
    assert float(printed.group(1)) == pytest.approx(expected, rel=1e-3)  # printed to 4 significant digits
    auto = iio.imread(tmp_path / "auto.jpg")
    assert auto.shape == (96, 128, 3)
    # The library path records the same ratio, and the picture is the one that ratio gives (another ratio differs)
    x = exported.load_export(export)  # (budgets far above this test process's RSS, which other tests grow)
    record = enhance.enhance_file(x, raw, tmp_path / "lib.jpg", ratio="auto", budget_mb=1e6, threads=2,
                                  png16=False, ratio_model=predictor)
    assert record["ratio"] == pytest.approx(expected, rel=1e-6)
    enhance.enhance_file(x, raw, tmp_path / "given.jpg", ratio=expected, budget_mb=1e6, threads=2, png16=False)
    enhance.enhance_file(x, raw, tmp_path / "half.jpg", ratio=expected / 2, budget_mb=1e6, threads=2, png16=False)
    np.testing.assert_array_equal(iio.imread(tmp_path / "given.jpg"), auto)
    assert np.abs(iio.imread(tmp_path / "half.jpg").astype(int) - auto).mean() > 1


@pytest.mark.parametrize("case, message", [
    ("enhancement_export", "manifest.json: not a ratio-predictor manifest"),
    ("missing", "nothere: no such ratio predictor"),
    ("no_ratio_model", "--ratio auto needs --ratio_model"),
    ("folder", "manifest.json: not a ratio-predictor manifest"),  # checked once, before any file of the folder
])
def test_ratio_auto_with_a_bad_ratio_model_is_one_line(lowlight_exports, tmp_path, case, message):
    export, _ = lowlight_exports
    raw, out = _dark_dng(tmp_path / "dark.dng"), tmp_path / "o.jpg"
    if case == "folder":
        raw, out = tmp_path / "raws", tmp_path / "out"
        raw.mkdir()
        for name in ("a.dng", "b.dng"):
            _dark_dng(raw / name)
    given = {"missing": ["--ratio_model", tmp_path / "nothere"], "no_ratio_model": []}.get(case,
                                                                                           ["--ratio_model", export])
    r = run_module("tflite_isp.enhance", raw, "-o", out, "--export_dir", export, "--ratio", "auto", *given)
    assert r.returncode == 2, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in r.stderr, r.stderr
    assert not out.exists()
