"""Quad Bayer end to end: a small quad MAI-layout set, smallnet trained a few steps, INT8 export (16-channel input,
4x output), enhance on a Quad Bayer DNG, and the one-line refusals (Bayer vs quad, X-Trans)."""
import json

import numpy as np
import pytest
from conftest import make_run, run_module
from PIL import Image

from tflite_isp.core.errors import UserError
from tflite_isp.raw import bayer, dng, rawio, render
from tflite_isp.raw import unprocess as up

XYZ_TO_CAM = up.SONY_A7S2_XYZ_TO_CAM
SENSOR = {"black": 64, "white": 1023, "bit_depth": 10}


def _photo_crops(n, size, seed):
    from skimage import data

    rng = np.random.default_rng(seed)
    photos = [data.astronaut(), data.coffee(), data.chelsea()]
    for i in range(n):
        img = photos[i % len(photos)]
        y, x = rng.integers(0, img.shape[0] - size), rng.integers(0, img.shape[1] - size)
        yield img[y:y + size, x:x + size].astype(np.float32) / 255.0


def _raw_of(srgb, pattern):
    """A 10-bit mosaic of an sRGB photo crop, unprocessed (Brooks) with fixed gains."""
    linear = up.unprocess(srgb, up.rgb_to_cam(XYZ_TO_CAM), (1.0, 2.0, 1.7))
    return up.to_dn(up.mosaic(linear, pattern), SENSOR["black"], SENSOR["white"])


def make_mai(root, pattern, *, train=6, val=2, size=64, seed=0):
    """{split}/mediatek_raw/<i>.png (uint16 mosaic) + {split}/fujifilm/<i>.png (sRGB) + sensor.json."""
    for split, n in (("train", train), ("val", val)):
        (root / split / "mediatek_raw").mkdir(parents=True)
        (root / split / "fujifilm").mkdir(parents=True)
        for i, srgb in enumerate(_photo_crops(n, size, seed + (split == "val"))):
            Image.fromarray(_raw_of(srgb, pattern)).save(root / split / "mediatek_raw" / f"{i}.png")
            Image.fromarray(np.round(srgb * 255).astype(np.uint8)).save(root / split / "fujifilm" / f"{i}.png")
    (root / "sensor.json").write_text(json.dumps({"pattern": pattern, **SENSOR}))
    return root


def write_quad_dng(path, pattern="quad-RGGB", size=64):
    srgb = next(_photo_crops(1, size, 5))
    return dng.write_dng(path, _raw_of(srgb, pattern), pattern=pattern, black=SENSOR["black"],
                         white=SENSOR["white"], xyz_to_cam=XYZ_TO_CAM, as_shot_neutral=[0.5, 1.0, 0.6])


@pytest.fixture(scope="module")
def quad_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("quad")
    data = make_mai(root / "data", "quad-RGGB")
    run = root / "run"  # the built-in smallnet: train takes input.cfa = "quad" from the data
    run_module("tflite_isp.train", "--model", "smallnet", "--levels", "file", "--data", f"mai21:{data}",
               "--epochs", "1", "--steps_per_epoch", "4", "--batch", "2", "--patch", "32", "--out", run, check=True)
    run_module("tflite_isp.export", run, "--int8", "--size", "8x8", "--calibration_images", "4",
               "--fidelity_images", "2", "--nomodel_none", check=True)
    return root, data, run


def test_quad_train_export_and_enhance(quad_run, tmp_path):
    from tflite_isp.run import flatbuffer

    root, _, run = quad_run
    assert json.loads((run / "recipe.json").read_text())["input"]["cfa"] == "quad"
    assert np.isfinite(json.loads((run / "metrics.json").read_text())["epochs"][-1]["val_psnr"])
    path = run / "export" / "int8" / "model.tflite"
    model = flatbuffer.parse(path.read_bytes(), str(path))
    assert tuple(model.inputs[0].shape) == (1, 8, 8, 16)
    assert tuple(model.outputs[0].shape) == (1, 32, 32, 3)

    raw = write_quad_dng(tmp_path / "quad.dng", size=96)
    r = run_module("tflite_isp.enhance", raw, "-o", tmp_path / "quad.jpg", "--export_dir", run / "export" / "int8")
    assert r.returncode == 0, r.stderr[-2000:]
    with Image.open(tmp_path / "quad.jpg") as im:
        assert im.size == (96, 96)

    bayer_dng = write_quad_dng(tmp_path / "bayer.dng", pattern="RGGB")
    r = run_module("tflite_isp.enhance", bayer_dng, "-o", tmp_path / "b.jpg", "--export_dir", run / "export" / "int8")
    assert r.returncode != 0
    assert f"bayer.dng: is RGGB RAW but {run / 'export' / 'int8'} takes quad RAW" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_quad_data_into_a_bayer_model_is_one_line(quad_run, tmp_path):
    from tflite_isp.export import exporter as ex

    root, data, _ = quad_run
    bayer_run = make_run(tmp_path / "bayer_run", "smallnet", f"mai21:{data}")
    with pytest.raises(UserError, match=r"takes bayer RAW \(input.cfa = \"bayer\"\) but mai21:.* is quad-RGGB"):
        ex.Exporter(ex.ExportConfig(source=str(bayer_run), precisions=("int8",), size=(8, 8), calibration_images=2,
                                    fidelity_images=0, model_none=False, log=False))
    # a Bayer model's weights cannot start a Quad Bayer run (the data's CFA is adopted only by a fresh network)
    r = run_module("tflite_isp.train", "--init_from", bayer_run, "--data", f"mai21:{data}", "--epochs", "1",
                   "--steps_per_epoch", "1", "--patch", "32", "--out", tmp_path / "r")
    assert r.returncode != 0 and "takes bayer RAW" in r.stderr, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1


def test_quad_dng_reads_back_and_other_cfas_are_one_line(tmp_path):
    raw = write_quad_dng(tmp_path / "q.dng", pattern="quad-GBRG")
    frame = rawio.read_raw(raw)
    assert frame.pattern == "quad-GBRG" and frame.mosaic.shape == (64, 64) and frame.black == (64.0,) * 4
    m = np.full((64, 64), 100, np.uint16)
    black = dng.write_dng(tmp_path / "b.dng", m, pattern="quad-RGGB", black=[60, 62, 64, 66], white=1023,
                          xyz_to_cam=XYZ_TO_CAM, as_shot_neutral=[0.5, 1.0, 0.6])
    assert rawio.read_raw(black).black == (60.0, 62.0, 64.0, 66.0)
    # LibRaw has no 4x4 demosaic: a quad file renders as its pixel-swap Bayer remosaic with the same tags
    swapped, pattern = bayer.remosaic_quad(frame.mosaic, frame.pattern)
    twin = dng.write_dng(tmp_path / "twin.dng", swapped, pattern=pattern, black=64, white=SENSOR["white"],
                         xyz_to_cam=XYZ_TO_CAM, as_shot_neutral=[0.5, 1.0, 0.6])
    np.testing.assert_array_equal(render.render_srgb(raw), render.render_srgb(twin))
    xtrans = dng.write_dng(tmp_path / "x.dng", m[:60], pattern="RGGB", black=64, white=1023, xyz_to_cam=XYZ_TO_CAM,
                           as_shot_neutral=[0.5, 1.0, 0.6], cfa_repeat=dng.XTRANS)
    with pytest.raises(UserError, match=r"x.dng: not a 2x2 Bayer or 4x4 Quad Bayer CFA \(pattern 6x6"):
        rawio.read_raw(xtrans)


def test_quad_model_builds_16_in_4x_out():
    from tflite_isp.nets import architectures

    section = {"architecture": "smallnet"}
    model = architectures.build(section, height=8, width=12, batch=1, cfa="quad",
                                normalise={"black": [64.0] * 4, "white": 1023.0, "clip": True})
    assert model.input_shape == (1, 8, 12, 16) and model.output_shape == (1, 32, 48, 3)
    assert len(model.get_layer("normalise").black) == 16
    assert {"quad_up_conv", "quad_up"} <= {layer.name for layer in model.layers}
    assert architectures.build(section, cfa="quad").output_shape == (None, None, None, 3)


def test_score_a_quad_export_with_the_remosaic_baseline(quad_run, tmp_path):
    _, data, run = quad_run
    out = tmp_path / "scores"
    r = run_module("tflite_isp.score", run / "export", "--data", f"mai21:{data}", "--split", "val", "--runs", 1,
                   "--warmup", 0, "--max_images", 2, "--out", out)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = {row["name"]: row for row in json.loads((out / "leaderboard.json").read_text())["rows"]}
    base = "LibRaw AHD on the pixel-swap Bayer remosaic (classical ISP)"
    assert set(rows) == {"smallnet int8", base}
    for row in rows.values():
        assert row["status"] == "ok" and len(row["per_image"]) == 2 and np.isfinite(row["psnr"]) and row["ssim"] > 0
        assert row["runtime_ms"] > 0
    assert 10 < rows[base]["psnr"] < 60 and "remosaiced to RGGB" in rows[base]["details"]["describe"]
    learned = rows["smallnet int8"]
    # MACs per Full HD RAW frame: the 8 x 8 x 16 file's count times the 272 x 480 packed frame's tiles
    assert 0 < learned["macs_g"] < 50
    html = (out / "report.html").read_text()
    assert "smallnet int8" in html and base in html
