"""The score command: metrics against TensorFlow and scikit-image, the MAI formula on published rows,
seamless tiling, the leaderboard with its LibRaw baseline row, runtime sources and bad input."""
import csv
import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import make_run, run_module

SIZE = (32, 48)  # packed model input; the 96 px test images (48 x 48 packed) need two tiles


# --- Metrics ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def photo_pairs():
    """Real photo crops and degraded versions (blur + noise), float in [0, 1]."""
    from scipy.ndimage import gaussian_filter
    from skimage import data

    rng = np.random.default_rng(0)
    pairs = []
    for img in (data.astronaut()[100:228, 150:310], data.coffee()[50:146, 200:328]):
        ref = img.astype(np.float32) / 255.0
        out = gaussian_filter(ref, sigma=(1, 1, 0)) + rng.normal(0, 0.03, ref.shape)
        pairs.append((out.astype(np.float32), ref))
    return pairs


def test_ssim_and_psnr_match_tensorflow_and_skimage(photo_pairs):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    from tflite_isp.core import metrics
    from tflite_isp.core.tf import tf

    for out, ref in photo_pairs:
        clipped = np.clip(out, 0, 1)
        ours = metrics.image_ssim(out, ref)
        tf_ssim = float(tf.image.ssim(tf.constant(ref), tf.constant(clipped), max_val=1.0))
        sk_ssim = structural_similarity(clipped, ref, data_range=1, channel_axis=-1, gaussian_weights=True,
                                        sigma=1.5, use_sample_covariance=False)
        assert abs(ours - tf_ssim) < 2e-5 and abs(ours - sk_ssim) < 2e-5
        assert 0.3 < ours < 0.95  # a real degradation, not a trivial pair
        tf_psnr = float(tf.image.psnr(tf.constant(ref), tf.constant(clipped), max_val=1.0))
        assert metrics.image_psnr(out, ref) == pytest.approx(tf_psnr, abs=1e-3)
        assert metrics.image_psnr(out, ref) == pytest.approx(peak_signal_noise_ratio(ref, clipped, data_range=1),
                                                             abs=1e-4)
    # the training metrics are the same definitions
    out, ref = photo_pairs[0]
    assert float(metrics.ssim(ref[None], out[None])[0]) == pytest.approx(metrics.image_ssim(out, ref), abs=2e-5)


def test_ssim_averages_the_map_exactly_where_tf_scalar_drifts():
    """tf.image.ssim's scalar reduces its map in float32 along a strided axis: on a 960 x 544 image it is
    off by ~1e-3; ours is the exact mean of the same map (and agrees with scikit-image)."""
    from skimage.metrics import structural_similarity

    from tflite_isp.core import metrics
    from tflite_isp.core.tf import tf

    rng = np.random.default_rng(0)
    ref = rng.random((544, 960, 3)).astype(np.float32)
    out = np.clip(ref + rng.normal(0, 0.05, ref.shape), 0, 1).astype(np.float32)
    ours = metrics.image_ssim(out, ref)
    sk = structural_similarity(out, ref, data_range=1, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                               use_sample_covariance=False)
    assert abs(ours - sk) < 2e-5
    assert abs(float(tf.image.ssim(ref, out, max_val=1.0)) - ours) > 5e-4


def test_mean_and_pooled_psnr_are_different_aggregations(photo_pairs):
    from tflite_isp.core import metrics

    (a, ra), (b, rb) = photo_pairs
    b_bad = np.clip(b + 0.2, 0, 1)  # one much worse image pulls the pooled figure down harder
    per_image = [metrics.image_psnr(a, ra), metrics.image_psnr(b_bad, rb)]
    pooled = metrics.pooled_psnr([metrics.squared_error(a, ra), metrics.squared_error(b_bad, rb)])
    sse = np.sum((np.clip(a, 0, 1) - ra) ** 2) + np.sum((b_bad - rb) ** 2)
    assert pooled == pytest.approx(10 * np.log10((ra.size + rb.size) / sse), abs=1e-6)
    assert metrics.mean_psnr(per_image) == pytest.approx(np.mean(per_image))
    assert metrics.mean_psnr(per_image) - pooled > 1.0


# --- MAI 2021 score ---------------------------------------------------------------------------

@pytest.mark.parametrize("team, psnr, runtime_ms, published", [
    ("dh_isp", 23.2, 61, 25.98),  # arXiv:2105.07809 Table 1, 1st place
    ("EdS", 23.23, 1861, 22.40),  # Table 1, over the 200 ms budget: alpha 0.5
])
def test_mai_score_reproduces_published_rows(team, psnr, runtime_ms, published):
    from tflite_isp.score.leaderboard import mai_score

    assert round(mai_score(psnr, runtime_ms / 1000), 2) == pytest.approx(published)


def test_mai_score_clips_runtime_and_switches_alpha_at_the_budget():
    from tflite_isp.score.leaderboard import mai_score

    assert mai_score(20.0, 0.010) == pytest.approx(20.0 + 20 * (0.2 - 0.03))  # faster than 30 ms gains nothing
    assert mai_score(20.0, 0.030) == mai_score(20.0, 0.001)
    assert mai_score(20.0, 0.2) == pytest.approx(20.0)
    assert mai_score(20.0, 0.201) == pytest.approx(20.0 + 0.5 * (0.2 - 0.201))
    assert mai_score(20.0, 60.0) == pytest.approx(20.0 + 0.5 * (0.2 - 5.0))  # slower than 5 s: clipped
    for bad in (-0.1, float("nan"), None):
        with pytest.raises(ValueError):
            mai_score(20.0, bad)


# --- Tiling -----------------------------------------------------------------------------------

@pytest.mark.parametrize("length, size, margin, multiple", [(100, 32, 8, 1), (544, 96, 32, 16), (97, 97, 8, 1),
                                                           (1424, 544, 32, 16), (50, 16, 32, 2)])
def test_tiles_cover_every_pixel_once_away_from_tile_edges(length, size, margin, multiple):
    from tflite_isp.run.tiling import axis_spans

    spans = axis_spans(length, size, margin, multiple)
    assert spans[0].keep_from == 0 and spans[-1].keep_to == length
    for a, b in zip(spans, spans[1:]):
        assert a.keep_to == b.keep_from  # contiguous, no gaps, no double cover
    inner = min(margin, size // 4)
    for k, s in enumerate(spans):
        assert 0 <= s.start and s.start + size <= length and s.start % multiple == 0
        if k:
            assert s.keep_from - s.start >= inner
        if k < len(spans) - 1:
            assert s.start + size - s.keep_to >= inner


def _local_net(x):
    """A 3x3 neighbourhood function then a 2x upsample: exact under tiling with margin >= 1."""
    from scipy.ndimage import uniform_filter

    y = uniform_filter(x[0], size=(3, 3, 1), mode="constant")[..., :3]
    return np.repeat(np.repeat(y, 2, axis=0), 2, axis=1)[None]


def test_tiled_equals_untiled_for_a_local_operator():
    from tflite_isp.run.tiling import run_tiled

    x = np.random.default_rng(1).random((70, 90, 4)).astype(np.float32)
    whole = run_tiled(_local_net, x)
    tiled = run_tiled(_local_net, x, (32, 48), margin=4)
    padded = run_tiled(_local_net, x[:20, :30], (32, 48), margin=4)  # smaller than the tile: padded
    assert tiled.shape == whole.shape == (140, 180, 3) and padded.shape == (40, 60, 3)
    np.testing.assert_array_equal(tiled, whole)
    np.testing.assert_allclose(padded[:-2, :-2], run_tiled(_local_net, x[:20, :30])[:-2, :-2], atol=1e-6)


@pytest.mark.parametrize("shape, tile, margin, radius, multiple, label", [
    ((32, 48), (32, 48), 8, 20.0, 16, "whole image"),  # exactly one tile
    ((20, 30), (32, 48), 8, 20.0, 1, "fixed canvas"),  # mirror-padded into one tile
    ((32, 64), (32, 48), 8, 20.0, 16, "tiled, inexact by 4 px"),  # 64 = 48 + 16: the cut keeps 16 px each side
    ((32, 64), (32, 48), 8, 16.0, 16, "tiled, exact"),
    ((1416, 2120), (544, 960), 136, 122.0, 16, "tiled, exact"),  # a SID frame, margin = radius
    ((70, 90), (32, 48), 8, float("inf"), 1, "tiled, inexact (global receptive field)"),
    ((20, 90), (32, 48), 12, 10.0, 1, "tiled on a mirror-padded canvas, cuts exact"),
])
def test_describe_says_how_a_fixed_file_sees_an_image(shape, tile, margin, radius, multiple, label):
    from tflite_isp.run.tiling import describe

    assert describe(shape, tile, margin=margin, radius=radius, multiple=multiple) == label


# --- Exports shared by the command tests -------------------------------------------------------

CANVAS = (64, 96)  # a fixed file twice the 32 x 64 packed SID test images: each is mirror-padded into it


def _lively(run_dir):
    """Kernels x1.5 and the head's bias at 0.3: an untrained U-Net whose output is mid-grey, not clipped to black,
    and depends on its context (at Glorot scale it is nearly constant, so no protocol could change its PSNR)."""
    from tflite_isp.nets import architectures

    model = architectures.load(run_dir / "model.keras")
    layers = [layer for layer in model.layers if layer.weights]
    for layer in layers:
        weights = layer.get_weights()
        layer.set_weights([weights[0] * 1.5, *weights[1:]])
    weights = layers[-1].get_weights()
    layers[-1].set_weights([weights[0], np.full_like(weights[1], 0.3)])
    model.save(str(run_dir / "model.keras"))
    return run_dir


@pytest.fixture(scope="module")
def exports(tmp_path_factory, isp_data, lowlight_data):
    from tflite_isp.export import exporter as ex

    root = tmp_path_factory.mktemp("score")
    settings = {"size": SIZE, "calibration_images": 6, "fidelity_images": 0, "log": False}
    small = make_run(root / "smallnet", "smallnet", f"mai21:{isp_data}")
    ex.run(ex.ExportConfig(source=str(small), precisions=("fp32", "int8"), **settings))
    sid = make_run(root / "sid_unet", "sid_unet", f"sid:{lowlight_data}", width_multiplier=0.125)
    ex.run(ex.ExportConfig(source=str(sid), precisions=("fp32",), model_none=False, **settings))  # an older export
    whole = _lively(make_run(root / "sid_whole", "sid_unet", f"sid:{lowlight_data}", width_multiplier=0.125))
    ex.run(ex.ExportConfig(source=str(whole), precisions=("fp32",), **{**settings, "size": CANVAS}))  # + model_none
    return {"smallnet": small / "export", "sid_unet": sid / "export", "sid_whole": whole / "export", "root": root}


def test_tiled_file_matches_the_dynamic_file_on_a_whole_image(exports, isp_data):
    """model.tflite (fixed 32 x 48, tiled) against model_none.tflite (the whole image at once)."""
    from tflite_isp.data import layouts, pipeline
    from tflite_isp.nets import recipes
    from tflite_isp.run import tiling
    from tflite_isp.run.litert import Runner

    split = layouts.open_split("mai21", isp_data, "test")
    spec = recipes.load_recipe("smallnet").input
    mosaic = np.concatenate([pipeline.read_pair(split, p)[0] for p in split.pairs[:2]], axis=1)  # 96 x 192 RAW
    x = pipeline.model_input(mosaic, split.pattern, spec, np.zeros(4, np.float32), 1020.0)
    for precision, tolerance in (("fp32", 1e-5), ("int8", None)):
        folder = exports["smallnet"] / precision
        tiled = tiling.run_tiled(Runner(folder / "model.tflite"), x, SIZE)
        whole = tiling.run_tiled(Runner(folder / "model_none.tflite"), x, None)
        assert tiled.shape == whole.shape == (96, 192, 3)
        diff = np.abs(tiled - whole)
        if tolerance:
            assert diff.max() < tolerance
        else:  # int8: the same quantised arithmetic; XNNPACK may round a few values differently
            step = json.loads((folder / "manifest.json").read_text())["file"]["outputs"][0]["quantization"]["scale"][0]
            assert diff.max() <= 2 * step + 1e-6 and np.mean(diff > 1e-6) < 0.01


# --- The command ---------------------------------------------------------------------------------

def _board(out):
    return json.loads((out / "leaderboard.json").read_text())


def test_score_writes_a_sorted_leaderboard_with_the_libraw_baseline(exports, isp_data, tmp_path):
    out = tmp_path / "scores"
    proc = run_module("tflite_isp.score", exports["smallnet"], "--data", f"mai21:{isp_data}", "--runs", 3,
                      "--warmup", 1, "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = _board(out)
    names = [r["name"] for r in board["rows"]]
    assert set(names) == {"smallnet fp32", "smallnet int8", "LibRaw AHD (classical ISP)"}
    assert board["data"]["images"] == 3 and board["data"]["split"] == "test"
    scores = [r["score"] for r in board["rows"]]
    assert scores == sorted(scores, reverse=True)
    for row in board["rows"]:
        assert row["status"] == "ok" and len(row["per_image"]) == 3
        assert row["psnr"] == pytest.approx(np.mean([p["psnr"] for p in row["per_image"]]), abs=1e-3)
        assert row["runtime_ms"] > 0 and row["ssim"] > 0
        assert row["score"] == pytest.approx(row["psnr"] + (20 if row["runtime_ms"] <= 200 else 0.5)
                                             * (0.2 - min(max(row["runtime_ms"] / 1000, 0.03), 5)), abs=1e-3)
    base = next(r for r in board["rows"] if r["baseline"])
    assert base["framework"].startswith("LibRaw") and 10 < base["psnr"] < 60
    learned = next(r for r in board["rows"] if r["name"] == "smallnet int8")
    assert learned["size_kb"] > 0 and learned["macs_g"] > 0 and learned["runtime"]["runs"] == 3
    assert learned["details"]["tile"] == list(SIZE)
    assert learned["details"]["receptive_radius"] == 3.0 and learned["details"]["exact_stitch"] is True
    with open(out / "leaderboard.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == names
    md = (out / "leaderboard.md").read_text()
    assert "*LibRaw AHD (classical ISP) (baseline)*" in md and "Data: mai21:" in md
    html = (out / "report.html").read_text()
    assert "smallnet int8" in html and (out / "report" / "pareto.png").is_file()


def _three_channel_tflite(path):
    from tflite_isp.core.tf import keras, tf

    inp = keras.Input((32, 48, 3), batch_size=1)
    model = keras.Model(inp, keras.layers.Conv2D(3, 3, padding="same")(inp))
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    return path


def test_a_bad_model_fails_alone_and_is_listed(exports, isp_data, tmp_path):
    bad = _three_channel_tflite(tmp_path / "rgb.tflite")
    out = tmp_path / "scores"
    proc = run_module("tflite_isp.score", exports["smallnet"] / "int8", bad, exports["sid_unet"] / "fp32",
                      tmp_path / "missing", "--data", f"mai21:{isp_data}", "--runs", 2, "--warmup", 0,
                      "--nobaseline", "--out", out)
    assert proc.returncode == 1
    board = _board(out)
    by_status = {r["name"]: r for r in board["rows"]}
    assert by_status["smallnet int8"]["status"] == "ok"
    assert board["rows"][0]["name"] == "smallnet int8"  # failed rows sort last
    errors = {r["name"]: r["error"] for r in board["rows"] if r["status"] == "failed"}
    assert len(errors) == 3
    assert any("(1, 32, 48, 3) is neither packed RAW (1, H, W, 4 or 16) nor an L plane" in e for e in errors.values())
    assert "lowlight model cannot score on mai21 isp data" in errors["sid_unet fp32"]
    assert any("no such model file or folder" in e for e in errors.values())
    assert "FAILED" in proc.stderr and "Traceback" not in proc.stderr
    assert "FAILED" in (out / "leaderboard.md").read_text()


def test_runtime_json_supplies_times_and_bad_entries_fail_their_model(exports, isp_data, tmp_path):
    int8, fp32 = exports["smallnet"] / "int8", exports["smallnet"] / "fp32"
    sha = hashlib.sha256((fp32 / "model.tflite").read_bytes()).hexdigest()
    good = tmp_path / "times.json"
    good.write_text(json.dumps({"source": "AI Benchmark (by hand)", "models": {
        "smallnet int8": {"ms": 61.0, "p95_ms": 70}, sha: {"ms": 1861}}}))
    out = tmp_path / "a"
    proc = run_module("tflite_isp.score", int8, fp32, "--data", f"mai21:{isp_data}", "--runtime-json", good,
                      "--nobaseline", "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["name"]: r for r in _board(out)["rows"]}
    assert rows["smallnet int8"]["runtime_ms"] == 61.0 and rows["smallnet fp32"]["runtime_ms"] == 1861
    assert rows["smallnet int8"]["runtime_source"] == "AI Benchmark (by hand)"
    assert rows["smallnet int8"]["score"] == pytest.approx(rows["smallnet int8"]["psnr"] + 20 * (0.2 - 0.061),
                                                           abs=1e-3)

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"models": {"smallnet int8": {"p95_ms": 3}, "smallnet fp32": {"ms": -5}}}))
    out = tmp_path / "b"
    proc = run_module("tflite_isp.score", int8, fp32, "--data", f"mai21:{isp_data}", "--runtime_json", bad,
                      "--nobaseline", "--out", out)
    assert proc.returncode == 1
    errors = {r["name"]: r["error"] for r in _board(out)["rows"]}
    assert "missing field 'ms'" in errors["smallnet int8"] and str(bad) in errors["smallnet int8"]
    assert "ms must be > 0, not -5" in errors["smallnet fp32"]


@pytest.mark.parametrize("args, message", [
    (["--runtime", "adb"], "pass --benchmark_binary PATH"),
    (["--runtime", "adb::dsp", "--benchmark_binary", "bm"], "DELEGATE must be one of cpu, gpu, nnapi, hexagon"),
    (["--runtime", "jetson:"], "--runtime jetson needs a host"),
    (["--runtime", "phone"], "--runtime must be local"),
    (["--split", "train2"], "split folder not found"),
])
def test_bad_flags_are_one_line_errors(exports, isp_data, tmp_path, args, message):
    proc = run_module("tflite_isp.score", exports["smallnet"] / "int8", "--data", f"mai21:{isp_data}", *args,
                      "--out", tmp_path / "s")
    assert proc.returncode == 2 and message in proc.stderr
    assert proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


def test_lowlight_dng_scoring_has_the_libraw_row(exports, lowlight_data, tmp_path):
    out = tmp_path / "s"
    proc = run_module("tflite_isp.score", exports["sid_unet"], "--runs", 2, "--warmup", 0, "--out", out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = _board(out)
    assert board["data"]["layout"] == "sid"  # taken from the run the export came from
    base = next(r for r in board["rows"] if r["baseline"])
    assert base["status"] == "ok" and base["psnr"] > 10 and "camera WB" in base["details"]["describe"]
    model = next(r for r in board["rows"] if not r["baseline"])
    assert model["details"]["tile"] == list(SIZE) and np.isfinite(model["psnr"])


def _keras_whole_image_psnr(run_dir, data_root):
    """Mean per-image PSNR of the run's model.keras on each whole test image (no padding, no tiles)."""
    from tflite_isp.core import metrics
    from tflite_isp.data import layouts, pipeline
    from tflite_isp.nets import architectures, recipes

    recipe = recipes.load_recipe(run_dir / "recipe.json")
    model = architectures.load(run_dir / "model.keras")
    split = layouts.open_split("sid", data_root, "test")
    blacks, whites = layouts.input_levels(split, recipe.input)
    multiple = architectures.input_multiple(recipe.model)
    psnrs = []
    for i, pair in enumerate(split.pairs):
        mosaic, target = pipeline.read_pair(split, pair)
        x = np.asarray(pipeline.model_input(mosaic, split.pattern, recipe.input, blacks[i], whites[i], pair.ratio))
        assert x.shape[0] % multiple == 0 and x.shape[1] % multiple == 0  # the net takes it as it is
        out = np.clip(model(x[None], training=False).numpy()[0], 0.0, 1.0)
        psnrs.append(metrics.image_psnr(out, target))
    return metrics.mean_psnr(psnrs), len(psnrs)


def test_sid_unet_quality_is_the_whole_image_keras_quality(exports, lowlight_data, tmp_path):
    """The MAI protocol: the export's model_none.tflite on each whole image gives the Keras model's own PSNR. The
    fixed 64 x 96 file, each 32 x 64 packed test image mirror-padded into it (the old protocol), does not; an
    export without model_none.tflite falls back to its fixed file (32 x 48: two tiles, the margin capped at a
    quarter tile, far below the U-Net's receptive radius) and says so."""
    from tflite_isp.score import scorer as score

    keras_psnr, images = _keras_whole_image_psnr(exports["sid_whole"].parent, lowlight_data)

    def row(folder, name, **settings):
        cfg = score.ScoreConfig(models=(str(folder),), runs=1, warmup=0, baseline=False, report_images=0, log=False,
                                out=str(tmp_path / name), **settings)
        board = score.run(cfg)
        assert board["data"]["images"] == images
        (r,) = board["rows"]
        assert r["status"] == "ok", r["error"]
        return r

    whole = row(exports["sid_whole"] / "fp32", "whole")
    assert whole["quality"] == "whole image" and whole["details"]["quality_files"] == ["model_none.tflite"]
    assert all(p["quality"] == "whole image" for p in whole["per_image"])
    assert abs(whole["psnr"] - keras_psnr) <= 0.01
    assert whole["details"]["tile"] == list(CANVAS)  # the timed file is still the fixed one
    assert whole["path"].endswith("model.tflite")  # ... and so is its runtime

    fixed = row(exports["sid_whole"] / "fp32", "fixed", whole_image_mb=0)  # every image over budget: fixed file
    assert fixed["quality"] == "fixed canvas" and fixed["details"]["quality_files"] == ["model.tflite"]
    assert abs(fixed["psnr"] - keras_psnr) > 0.01

    old = row(exports["sid_unet"] / "fp32", "old")  # exported without model_none.tflite
    assert old["quality"].startswith("tiled, inexact by ") and old["quality"].endswith(" (no dynamic model)")
    assert old["details"]["no_dynamic_file"] == "exported without model_none.tflite"
    md = (tmp_path / "old" / "leaderboard.md").read_text()
    assert "quality from" in md and "(no dynamic model)" in md
    assert "(no dynamic model)" in (tmp_path / "old" / "report.html").read_text()


def test_default_job_trains_exports_and_scores(isp_data, tmp_path):
    """``python -m tflite_isp`` (the README's main command), shortened: train, export FP32 + INT8, score."""
    run_dir = tmp_path / "run"
    proc = run_module("tflite_isp", "--data", f"mai21:{isp_data}", "--epochs", 1, "--steps_per_epoch", 5,
                      "--patch", 64, "--batch", 2, "--out", run_dir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    board = _board(run_dir / "score")
    assert {r["name"] for r in board["rows"]} == {"smallnet fp32", "smallnet int8", "LibRaw AHD (classical ISP)"}
    assert all(r["status"] == "ok" for r in board["rows"])
    assert (run_dir / "score" / "report.html").is_file()
    assert "leaderboard: " in proc.stderr


def test_bit_depth_mismatch_damaged_files_and_an_empty_split(exports, isp_copy, tmp_path):
    sensor = json.loads((isp_copy / "sensor.json").read_text())
    (isp_copy / "sensor.json").write_text(json.dumps({**sensor, "white": 16383, "bit_depth": 14}))
    out = tmp_path / "s"
    proc = run_module("tflite_isp.score", exports["smallnet"] / "int8", "--data", f"mai21:{isp_copy}", "--runs", 1,
                      "--warmup", 0, "--out", out)
    assert proc.returncode == 1
    row = next(r for r in _board(out)["rows"] if not r["baseline"])
    assert row["status"] == "failed" and "divides by 1020" in row["error"] and "16383" in row["error"]

    (isp_copy / "sensor.json").write_text(json.dumps(sensor))
    damaged = isp_copy / "test" / "mediatek_raw" / "1.png"
    damaged.write_bytes(damaged.read_bytes()[:200])
    proc = run_module("tflite_isp.score", exports["smallnet"] / "int8", "--data", f"mai21:{isp_copy}",
                      "--out", tmp_path / "bad")
    assert proc.returncode == 2 and f"{damaged}: truncated PNG" in proc.stderr and not (tmp_path / "bad").exists()
    proc = run_module("tflite_isp.score", exports["smallnet"] / "int8", "--data", f"mai21:{isp_copy}", "--runs", 1,
                      "--warmup", 0, "--bad_files", "skip", "--nobaseline", "--out", tmp_path / "skip")
    assert proc.returncode == 0, proc.stderr[-2000:]
    board = _board(tmp_path / "skip")
    assert board["data"]["images"] == 2 and board["data"]["skipped"][0][0] == str(damaged)

    for f in (isp_copy / "test" / "mediatek_raw").iterdir():
        f.unlink()
    proc = run_module("tflite_isp.score", exports["smallnet"] / "int8", "--data", f"mai21:{isp_copy}",
                      "--out", tmp_path / "empty")
    assert proc.returncode == 2 and "empty split" in proc.stderr and not (tmp_path / "empty").exists()


def test_zoo_trains_exports_and_scores_once(isp_data, tmp_path):
    """--zoo on one model with a few steps: a table in one call; a second call reuses the run and exports."""
    from tflite_isp.score import scorer as score
    from tflite_isp.score import zoo

    cfg = score.ScoreConfig(models=(), data=f"mai21:{isp_data}", runs=1, warmup=0, report_images=1, log=False)
    board = zoo.run(cfg, score.run, models=("smallnet",), steps=3, root=tmp_path / "zoo", patch=64, batch=2)
    assert {r["name"] for r in board["rows"]} == {"smallnet fp16", "smallnet int8", "LibRaw AHD (classical ISP)"}
    assert all(r["status"] == "ok" and r["score"] is not None for r in board["rows"])
    assert board["protocol"]["name"] == "mai21"
    model = tmp_path / "zoo" / "smallnet" / "model.keras"
    manifest = tmp_path / "zoo" / "smallnet" / "export" / "int8" / "manifest.json"
    stamps = model.stat().st_mtime_ns, manifest.stat().st_mtime_ns
    # The MAI 2022 protocol on the same exports: only the FP16 file, PSNR and runtime, no score formula.
    board = zoo.run(replace(cfg, protocol="mai22"), score.run, models=("smallnet",), steps=3, root=tmp_path / "zoo",
                    patch=64, batch=2)
    assert (model.stat().st_mtime_ns, manifest.stat().st_mtime_ns) == stamps
    assert {r["name"] for r in board["rows"]} == {"smallnet fp16", "LibRaw AHD (classical ISP)"}
    assert all(r["status"] == "ok" and r["score"] is None and r["psnr"] > 0 for r in board["rows"])
    fp16 = next(r for r in board["rows"] if r["name"] == "smallnet fp16")
    assert "not the mobile GPU" in fp16["runtime_source"] and fp16["runtime_ms"] > 0
    assert "mai22" in board["headline"] and "not implemented" in board["headline"]
    assert (tmp_path / "zoo" / "score" / "leaderboard.md").is_file()


def test_zoo_fraction_out_of_range_is_one_line_before_anything_trains(tmp_path):
    proc = run_module("tflite_isp.score", "--zoo", "--zoo_fraction", "1.5", "--out", tmp_path / "s")
    assert proc.returncode == 2 and "error: --zoo_fraction must be in (0, 1], not 1.5" in proc.stderr
    assert "zoo: training" not in proc.stderr and not (tmp_path / "s").exists()


def test_mai22_protocol_times_on_the_phone_gpu_and_takes_only_fp16(exports, tmp_path):
    """adb:SERIAL becomes adb:SERIAL:gpu, another delegate is refused; an INT8 file is not a mai22 submission."""
    from tflite_isp.core.errors import UserError
    from tflite_isp.score import protocols

    mai21, mai22 = protocols.get("mai21"), protocols.get("mai22")
    assert protocols.runtime_spec(mai22, "adb:R5C") == "adb:R5C:gpu"
    assert protocols.runtime_spec(mai22, "adb") == "adb::gpu"
    assert protocols.runtime_spec(mai22, "local") == "local"
    assert protocols.runtime_spec(mai21, "adb:R5C:nnapi") == "adb:R5C:nnapi"
    with pytest.raises(UserError, match="mai22 times the file with the phone's gpu delegate"):
        protocols.runtime_spec(mai22, "adb:R5C:nnapi")
    with pytest.raises(UserError, match="--protocol must be one of mai21, mai22"):
        protocols.get("mai23")
    proc = run_module("tflite_isp.score", exports["smallnet"] / "int8" / "model.tflite", "--protocol", "mai22",
                      "--out", tmp_path / "s", "--runs", 1, "--warmup", 0, "--nobaseline")
    assert proc.returncode == 1
    assert "--protocol mai22 scores the FP16 file; this file is int8 (export it with --fp16)" in proc.stderr


def test_a_bare_tflite_needs_recipe_and_its_precision_is_read_off_the_file(exports, isp_data, tmp_path):
    import shutil

    for precision in ("fp32", "int8"):
        shutil.copy(exports["smallnet"] / precision / "model.tflite", tmp_path / f"{precision}.tflite")
    out = tmp_path / "s"
    args = (tmp_path / "fp32.tflite", tmp_path / "int8.tflite", "--data", f"mai21:{isp_data}", "--runs", 1,
            "--warmup", 0, "--nobaseline", "--out", out)
    proc = run_module("tflite_isp.score", *args)
    assert proc.returncode == 1
    assert all("pass --recipe" in r["error"] for r in _board(out)["rows"])
    proc = run_module("tflite_isp.score", *args, "--recipe", "smallnet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {r["name"]: r for r in _board(out)["rows"]}
    assert set(rows) == {"smallnet fp32", "smallnet int8"}
    assert rows["smallnet int8"]["quality"] == "tiled, exact (no dynamic model)"  # no manifest: no model_none
    # the same file scores the same with or without its manifest (--whole_image_mb 0: the fixed file only)
    proc = run_module("tflite_isp.score", exports["smallnet"] / "int8", "--data", f"mai21:{isp_data}", "--runs", 1,
                      "--warmup", 0, "--nobaseline", "--whole_image_mb", 0, "--out", tmp_path / "m")
    row = _board(tmp_path / "m")["rows"][0]
    assert row["psnr"] == rows["smallnet int8"]["psnr"] and row["quality"] == "tiled, exact"
