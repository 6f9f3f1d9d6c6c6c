"""The amplification-ratio predictor: view, training beats the constant guess, export, predict_ratio, errors."""
import json
import shutil

import numpy as np
import pytest
from conftest import run_module

from tflite_isp.raw import bayer

BLACK, WHITE = 512.0, 16383.0


def _mosaic(rng, h=200, w=300, level=0.01):
    signal = rng.uniform(0.2, 1.8, (h, w)) * level * (WHITE - BLACK)
    return np.round(BLACK + signal).astype(np.float32)


def test_view_shape_and_brightness_preserved():
    from tflite_isp.apps import ratio

    rng = np.random.default_rng(0)
    m = _mosaic(rng)
    v = ratio.view(m, BLACK, WHITE, "RGGB")
    assert v.shape == (64, 64, 3) and v.dtype == np.float32
    brighter = BLACK + 2.0 * (m - BLACK)
    v2 = ratio.view(brighter, BLACK, WHITE, "RGGB")
    assert np.mean(v2) / np.mean(v) == pytest.approx(2.0, rel=1e-4)
    np.testing.assert_allclose(v2, 2 * v, rtol=1e-4, atol=1e-7)
    assert np.mean(v) == pytest.approx(0.01, rel=0.05)  # not amplified, not normalised per image
    # A packed input in any order gives the same view; a mosaic smaller than the view still fits.
    packed = bayer.pack(m, "GRBG", "sid")
    np.testing.assert_allclose(ratio.view(packed, BLACK, WHITE, order="sid"), ratio.view(m, BLACK, WHITE, "GRBG"),
                               rtol=1e-6)
    assert ratio.view(m[:40, :60], BLACK, WHITE).shape == (64, 64, 3)
    rgb = ratio.full_rgb(m, BLACK, WHITE)
    small = ratio.shrink(rgb, 64)
    assert small.shape == (43, 64, 3) and np.mean(small) == pytest.approx(np.mean(rgb), rel=1e-3)
    # Per-colour black levels (R, Gr, Gb, B) are subtracted per channel.
    flat = np.full((8, 8), 600.0, np.float32)
    v = ratio.view(flat, (600, 600, 600, 600), WHITE, size=4)
    assert np.allclose(v, 0.0)
    # The log encoding turns a 2x brighter view into a constant shift of the net's input.
    d = ratio.encode(v2, "log") - ratio.encode(ratio.view(m, BLACK, WHITE), "log")
    assert np.allclose(d, 1.0 / ratio.LOG_SCALE, atol=1e-4)


@pytest.fixture(scope="module")
def varied_lowlight(tmp_path_factory):
    """A SID-layout set with 3 scenes per photo: every split holds each scene at x100, x250 and x300."""
    from tflite_isp.data import synth

    return synth.make_lowlight(tmp_path_factory.mktemp("data") / "lowlight3", scenes_per_photo=3,
                               eval_scenes_per_photo=3, size=128, seed=1)


@pytest.fixture(scope="module")
def trained(varied_lowlight, tmp_path_factory):
    from tflite_isp.apps import ratio

    out = tmp_path_factory.mktemp("ratio") / "run"
    metrics = ratio.run(f"sid:{varied_lowlight}", out, epochs=8, crops_per_image=6, seed=0, verbose=False)
    return out, metrics


def test_training_beats_the_constant_guess(trained):
    out, metrics = trained
    test = metrics["test"]["keras"]
    assert len(metrics["data"]["test"]["ratios"]) == 3  # held-out ratios vary, so the check means something
    assert test["images"] == metrics["data"]["test"]["pairs"] >= 9
    assert test["mean_abs_log2_error"] < test["constant_mean_abs_log2_error"]
    assert test["mean_abs_log2_error"] < 0.6 * test["constant_mean_abs_log2_error"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test"]["keras"]["mean_abs_log2_error"] == pytest.approx(test["mean_abs_log2_error"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["input"]["shape"] == [1, 64, 64, 3] and manifest["files"]["fp32"] == "model.tflite"


def test_tflite_matches_keras(trained):
    _, metrics = trained
    keras_rows = metrics["test"]["keras"]["per_image"]
    tflite_rows = metrics["test"]["tflite_fp32"]["per_image"]
    for k, t in zip(keras_rows, tflite_rows):
        assert t["predicted"] == pytest.approx(k["predicted"], rel=1e-3)


def test_predictions_are_clamped_to_sids_ratio_range():
    from tflite_isp.apps import ratio

    np.testing.assert_allclose(ratio.to_ratio([-3.0, 0.0, 6.0, 9.0, 40.0]), [1.0, 1.0, 64.0, 300.0, 300.0])


def test_predict_ratio_on_a_dng(trained):
    from tflite_isp.apps import ratio
    from tflite_isp.data import layouts
    from tflite_isp.raw import rawio
    from tflite_isp.run.litert import Runner

    out, metrics = trained
    split = layouts.open_split("sid", metrics["data"]["test"]["root"], "test")
    rows = {r["image"]: r for r in metrics["test"]["tflite_fp32"]["per_image"]}
    pair = split.pairs[0]
    frame = rawio.read_raw(pair.raw)
    got = ratio.predict_ratio(out / "model.tflite", frame.mosaic, frame.black, frame.white, pattern=frame.pattern)
    assert got == pytest.approx(rows[frame.path.split("/")[-1]]["predicted"], rel=1e-4)
    runner = Runner(out / "model.tflite")
    packed = bayer.pack(frame.mosaic.astype(np.float32), frame.pattern, "sid")
    again = ratio.predict_ratio(runner, packed, frame.black, frame.white, order="sid")
    assert again == pytest.approx(got, rel=1e-4)


def test_bad_input_is_one_line(varied_lowlight, tmp_path):
    from tflite_isp.apps import ratio
    from tflite_isp.core.errors import UserError
    from tflite_isp.data import layouts

    split = layouts.Split("sid", "x", "train", "RGGB", "rawpy", (layouts.Pair("a.dng", "b.png", 0.0),))
    with pytest.raises(UserError, match="ratio 0 must be > 0"):
        ratio.load_split(split)
    with pytest.raises(UserError, match="no manifest.json"):
        ratio.predict_ratio(tmp_path / "model.tflite", np.zeros((8, 8)), 0, 1)
    with pytest.raises(UserError, match="packed H x W x 4"):
        ratio.view(np.zeros((8, 8, 3)), 0, 1)
    with pytest.raises(UserError, match="white level"):
        ratio.view(np.zeros((8, 8)), 600, 500)

    data = tmp_path / "sid"
    shutil.copytree(varied_lowlight, data)
    (data / "Sony_test_list.txt").write_text("")
    proc = run_module("tflite_isp.ratio", f"--data=sid:{data}", f"--out={tmp_path / 'out'}", "--ratio_epochs=1")
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "empty split" in last and "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "model.tflite").exists()
