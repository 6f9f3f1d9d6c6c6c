"""python -m tflite_isp.enhance: DNGs the project writes -> JPEG; tiled equals whole-frame; folders; bad input."""
import numpy as np
import pytest
from conftest import make_run, run_module

from tflite_isp import dng, enhance, tflite_file

XYZ_TO_CAM = [[0.6722, -0.0635, -0.0963], [-0.4287, 1.2460, 0.2028], [-0.0908, 0.2162, 0.5668]]


def write_photo_dng(path, size=(200, 304), orientation=1):
    """A real photo (scikit-image astronaut) sampled into a 10-bit RGGB mosaic (black 64, white 1023)."""
    from skimage import data
    from skimage.transform import resize

    rgb = resize(data.astronaut(), size, anti_aliasing=True)
    mosaic = np.empty(size, np.float64)
    mosaic[0::2, 0::2], mosaic[0::2, 1::2] = rgb[0::2, 0::2, 0], rgb[0::2, 1::2, 1]
    mosaic[1::2, 0::2], mosaic[1::2, 1::2] = rgb[1::2, 0::2, 1], rgb[1::2, 1::2, 2]
    raw = np.round(64 + mosaic * (1023 - 64)).astype(np.uint16)
    return dng.write_dng(path, raw, pattern="RGGB", black=64, white=1023, xyz_to_cam=XYZ_TO_CAM,
                         as_shot_neutral=[0.5, 1.0, 0.6], orientation=orientation)


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory, isp_data):
    from tflite_isp import export as ex

    root = tmp_path_factory.mktemp("enhance")
    run = make_run(root / "smallnet", "smallnet", f"mai21:{isp_data}")
    ex.run(ex.ExportConfig(source=str(run), precisions=("int8",), size=(32, 48), calibration_images=4,
                           fidelity_images=0, model_none=False, log=False))
    return run / "export" / "int8"


def test_tiled_equals_whole_frame(export_dir, tmp_path):
    x = enhance.load_export(export_dir)
    assert (x.tile, x.multiple, x.radius) == ((32, 48), 1, 3.0)
    frame, _ = enhance.read_frame(write_photo_dng(tmp_path / "a.dng"))
    packed = enhance.model_input(x, frame, 1.0)
    whole = enhance.enhance_frame(x, packed, packed.shape[:2], 0)
    tiled = enhance.enhance_frame(x, packed, (32, 48), enhance.margin_for(x, (32, 48)))
    assert whole.shape == tiled.shape == (200, 304, 3)
    np.testing.assert_array_equal(tiled, whole)


def test_refit_keeps_ops_and_weights(export_dir):
    data = (export_dir / "model.tflite").read_bytes()
    assert tflite_file.refit(data, 32, 48) == data
    big = tflite_file.parse(tflite_file.refit(data, 64, 96))
    small = tflite_file.parse(data)
    assert big.inputs[0].shape == (1, 64, 96, 4) and big.outputs[0].shape == (1, 128, 192, 3)
    assert [o.name for o in big.ops] == [o.name for o in small.ops]


def test_memory_plan_picks_the_largest_tile_that_fits(export_dir):
    x = enhance.load_export(export_dir)
    frame_mb = enhance.frame_bytes((600, 800)) / enhance.MB
    roomy = enhance.plan(x, (600, 800), budget_mb=10_000, base_mb=0)
    assert roomy[0] == (600, 800) and roomy[3]  # the whole frame at once
    tight_budget = frame_mb + enhance.tile_bytes(x, (128, 128)) / enhance.MB + 0.01
    tile, margin, estimate, exact = enhance.plan(x, (600, 800), budget_mb=tight_budget, base_mb=0)
    assert tile == (128, 128) and margin == 3 and exact and estimate <= tight_budget
    with pytest.raises(Exception, match="too small for this frame"):
        enhance.plan(x, (600, 800), budget_mb=frame_mb, base_mb=0)


def test_cli_file_png16_and_orientation(export_dir, tmp_path):
    import imageio.v3 as iio
    import rawpy

    upright, turned = write_photo_dng(tmp_path / "up.dng"), write_photo_dng(tmp_path / "cw.dng", orientation=6)
    for raw in (upright, turned):
        r = run_module("tflite_isp.enhance", raw, "-o", tmp_path / f"{raw.stem}.jpg", "--model", export_dir,
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
    assert np.argmax(scores) == enhance.ORIENT[6]
    assert np.abs(cw.mean(axis=2) - ours[enhance.ORIENT[6]]).mean() < 2  # the same image, JPEG-compressed turned


def test_png16_decodes_in_a_real_reader(tmp_path):
    """Our 16-bit RGB PNG read back by Pillow (which keeps the high byte of each 16-bit sample)."""
    import imageio.v3 as iio

    rgb16 = np.random.default_rng(0).integers(0, 65536, (7, 5, 3), dtype=np.uint16)
    (tmp_path / "x.png").write_bytes(enhance.png16_bytes(rgb16))
    np.testing.assert_array_equal(iio.imread(tmp_path / "x.png"), (rgb16 >> 8).astype(np.uint8))


def test_folder_with_a_bad_file(export_dir, tmp_path):
    folder = tmp_path / "raws"
    folder.mkdir()
    write_photo_dng(folder / "a.dng")
    write_photo_dng(folder / "b.dng", size=(120, 160))
    (folder / "c.dng").write_bytes(b"II*\x00 not a raw file")
    (folder / "notes.txt").write_text("ignored")
    r = run_module("tflite_isp.enhance", folder, "-o", tmp_path / "out", "--model", export_dir)
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
    ("ratio", "--ratio must be > 0"),
    ("isp_ratio", "--ratio applies to low-light models"),
    ("memory", "--max_memory 1 MiB is too small"),
    ("no_model", "--model EXPORT_DIR is required"),
])
def test_bad_input_is_one_line(export_dir, tmp_path, case, message):
    raw = write_photo_dng(tmp_path / "a.dng")
    if case == "garbage":
        raw = tmp_path / "x.dng"
        raw.write_bytes(b"\x00" * 100)
    if case == "linear":
        raw = _linear_dng(tmp_path / "linear.dng")
    extra = {"ratio": ["--ratio", "-3"], "isp_ratio": ["--ratio", "100"], "memory": ["--max_memory", "1"]}
    model = [] if case == "no_model" else ["--model", export_dir]
    r = run_module("tflite_isp.enhance", raw, "-o", tmp_path / "o.jpg", *model, *extra.get(case, []))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error:") and message in r.stderr
    assert not (tmp_path / "o.jpg").exists()
