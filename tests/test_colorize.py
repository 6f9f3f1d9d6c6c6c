"""The colourisation task: Lab convention, the reproduced autoencoder and its half-size variant, the images layout,
training, export (BN folded, fidelity in RGB, QAT) and scoring with dE2000, colourfulness and the grey baseline."""
import json
import warnings

import numpy as np
import pytest
from conftest import fit_steps, make_run, run_module


@pytest.fixture(scope="session")
def colour_data(tmp_path_factory):
    """A small embedded-style colourisation set: sRGB crops of the bundled photos per split."""
    from tflite_isp.data import synth

    return synth.make_colorize(tmp_path_factory.mktemp("data") / "colorize", crops_per_photo=3,
                               eval_crops_per_photo=2, size=96, seed=1)


def _photo():
    from tflite_isp.data import photos

    return np.asarray(photos.load_photo("coffee"), np.float64)

# --- The colour convention -------------------------------------------------------------------


def test_lab_matches_scikit_image_and_round_trips_in_numpy_and_tensorflow():
    from skimage.color import lab2rgb, rgb2lab

    from tflite_isp.core import colour
    from tflite_isp.core.tf import tf

    rgb = _photo()
    lab = colour.rgb_to_lab(rgb)
    assert np.abs(lab - rgb2lab(rgb)).max() < 1e-4
    assert np.abs(colour.lab_to_rgb(lab) - rgb).max() < 1e-5
    wild = np.random.default_rng(0).uniform([0, -100, -100], [100, 100, 100], (32, 32, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # scikit-image says it clipped negative Z, as we do
        reference = np.clip(lab2rgb(wild), 0, 1)
    assert np.abs(colour.lab_to_rgb(wild) - reference).max() < 1e-5  # out of gamut: clipped
    tnp = tf.experimental.numpy
    in_graph = colour.rgb_to_lab(tf.constant(rgb, tf.float32), tnp).numpy()
    assert np.abs(in_graph - lab).max() < 1e-3
    l_in, ab = colour.model_input(rgb, 100.0), colour.model_target(rgb, 110.0)
    assert l_in.shape[-1] == 1 and ab.shape[-1] == 2 and np.abs(ab).max() < 1
    assert 0 <= l_in.min() and l_in.max() <= 1 + 1e-6
    assert np.abs(colour.render(l_in, ab, 100.0, 110.0) - rgb).max() < 1e-5


def test_colour_metrics_see_grey_and_identity():
    from tflite_isp.core import colour

    rgb = _photo()
    grey = colour.grey(rgb)
    assert colour.colourfulness(grey) < 0.1 < 20 < colour.colourfulness(rgb)
    assert colour.delta_e2000(rgb, rgb) < 1e-6 < 5 < colour.delta_e2000(rgb, grey)
    assert np.abs(colour.rgb_to_lab(grey)[..., 0] - colour.rgb_to_lab(rgb)[..., 0]).max() < 1e-3  # L kept

# --- The networks -------------------------------------------------------------------------------


def test_autoencoder_reproduces_the_published_parameter_count_and_the_variant_halves_it():
    from tflite_isp.core.tf import keras
    from tflite_isp.nets import architectures, recipes
    from tflite_isp.nets.stats import count_params

    ae = architectures.build(recipes.load_recipe("colorize_ae").model, height=256, width=256, batch=1)
    assert count_params(ae) == 298_302  # Witte & Konkol's total
    encoder = sum(layer.count_params() for layer in ae.layers if layer.name.startswith("enc"))
    assert abs(encoder - 148_000) < 1_000 and abs(count_params(ae) - encoder - 150_000) < 1_000  # ~148 K / ~150 K
    assert ae.input_shape == (1, 256, 256, 1) and ae.output_shape == (1, 256, 256, 2)
    assert ae.layers[-1].activation is keras.activations.tanh
    assert not any(isinstance(layer, keras.layers.Lambda) for layer in ae.layers)
    half = architectures.build(recipes.load_recipe("colorize_unet").model)
    assert count_params(half) <= count_params(ae) / 2 and half.output_shape == (None, None, None, 2)
    assert sum(isinstance(layer, keras.layers.Add) for layer in half.layers) == 3
    assert not any(isinstance(layer, keras.layers.Conv2DTranspose) for layer in half.layers)


def test_a_skip_that_cannot_add_is_a_one_line_error():
    from tflite_isp.nets import architectures

    with pytest.raises(ValueError, match=r"decoder\[:3\] must be \[115, 100, 75\]"):
        architectures.build({"architecture": "colorize_ae", "skips": True})


@pytest.mark.parametrize("name", ["colorize_ae", "colorize_unet"])
def test_deploy_form_folds_every_batch_norm_exactly(name):
    from tflite_isp.core.tf import keras
    from tflite_isp.nets import architectures, recipes

    section = recipes.load_recipe(name).model
    trained = architectures.build(section)
    rng = np.random.default_rng(0)
    for layer in trained.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(0.5, 2, n), rng.normal(0, 0.3, n), rng.normal(0, 0.3, n),
                               rng.uniform(0.5, 2, n)])
    deployed = architectures.fuse_weights(trained, architectures.build(architectures.deploy_form(section)))
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in deployed.layers)
    x = rng.uniform(0, 1, (2, 64, 48, 1)).astype(np.float32)
    assert np.abs(trained(x, training=False).numpy() - deployed(x).numpy()).max() < 1e-5


def test_a_few_steps_lower_the_loss_and_the_chroma_term_punishes_grey():
    from tflite_isp.core import colour
    from tflite_isp.core.tf import tf
    from tflite_isp.nets import architectures, recipes
    from tflite_isp.train import losses

    rgb = np.stack([_photo()[:64, :64], _photo()[64:128, 64:128]]).astype(np.float32)
    x, y = colour.model_input(rgb, 100.0).astype(np.float32), colour.model_target(rgb, 110.0).astype(np.float32)
    model = architectures.build(recipes.load_recipe("colorize_unet").model)
    mse = losses.make_loss(losses.parse_loss("mse"))
    history = fit_steps(lambda: mse(y, model(x, training=True)), model.trainable_variables, steps=15, lr=3e-3)
    assert history[-1] < history[0]
    chroma = losses.make_loss([("chroma", 1.0)])
    grey, half = tf.zeros_like(y), y * 0.5
    assert float(chroma(y, y)) < 1e-6 < float(chroma(y, half)) < float(chroma(y, grey))

# --- Data ---------------------------------------------------------------------------------------


def test_images_layout_splits_by_folder_or_by_file_name(colour_data, tmp_path):
    from PIL import Image

    from tflite_isp.data import layouts

    counts = {s: len(layouts.open_split("images", colour_data, s).pairs) for s in ("train", "val", "test")}
    assert counts == {"train": 21, "val": 2, "test": 2}
    flat = tmp_path / "flat"
    flat.mkdir()
    for i in range(40):
        Image.fromarray(np.full((32, 40, 3), i * 5, np.uint8)).save(flat / f"img{i:03d}.png")
    splits = {s: [p.raw for p in layouts.open_split("images", flat, s).pairs] for s in ("train", "val", "test")}
    assert sum(map(len, splits.values())) == 40 and all(splits.values())
    assert not set(splits["train"]) & set(splits["test"])
    split = layouts.open_split("images", flat, "train")
    assert split.task == "colorize" and split.pairs[0].shape == (32, 40)


def test_a_broken_image_is_named_in_one_line(colour_data, tmp_path):
    import shutil

    from tflite_isp.core.errors import UserError
    from tflite_isp.data import layouts

    root = tmp_path / "broken"
    shutil.copytree(colour_data, root)
    bad = root / "train" / "3.png"
    bad.write_bytes(bad.read_bytes()[:200])
    with pytest.raises(UserError, match=r"3\.png.*truncated PNG"):
        layouts.open_split("images", root, "train")
    assert len(layouts.open_split("images", root, "train", on_bad="skip").pairs) == 20


def test_training_batches_are_l_in_ab_out(colour_data):
    from tflite_isp.data import layouts, pipeline
    from tflite_isp.nets import recipes

    spec = recipes.load_recipe("colorize_ae").input
    split = layouts.open_split("images", colour_data, "train")
    x, y = next(iter(pipeline.training_dataset(split, spec, patch=64, batch=3)))
    assert x.shape == (3, 64, 64, 1) and y.shape == (3, 64, 64, 2)
    assert 0 <= float(np.min(x)) and float(np.max(x)) <= 1 and float(np.max(np.abs(y))) < 1
    x, y = next(iter(pipeline.eval_dataset(layouts.open_split("images", colour_data, "val"), spec, multiple=16)))
    assert x.shape == (1, 96, 96, 1) and y.shape == (1, 96, 96, 3)  # validation scores the RGB

def test_an_image_smaller_than_the_input_multiple_is_named(tmp_path):
    from PIL import Image

    from tflite_isp.core.errors import UserError
    from tflite_isp.data import layouts, pipeline
    from tflite_isp.nets import recipes

    for split, side in (("train", 64), ("val", 8), ("test", 64)):
        (tmp_path / split).mkdir()
        Image.fromarray(np.full((side, side, 3), 90, np.uint8)).save(tmp_path / split / "a.png")
    spec = recipes.load_recipe("colorize_ae").input
    with pytest.raises(UserError, match=r"val/a\.png: 8x8 is smaller than the model's input multiple 16"):
        pipeline.eval_dataset(layouts.open_split("images", tmp_path, "val"), spec, multiple=16)

# --- Export and score ---------------------------------------------------------------------------


def test_export_int8_records_the_convention_and_scores_beside_the_grey_baseline(colour_data, tmp_path):
    from tflite_isp.export import exporter as ex
    from tflite_isp.score import scorer

    run = make_run(tmp_path / "run", "colorize_unet", f"images:{colour_data}")
    cfg = ex.ExportConfig(source=str(run), out=str(run / "export"), precisions=("int8",), size=(64, 64),
                          calibration_images=4, fidelity_images=2, targets=("gpu", "nnapi:30"), log=False)
    manifest = ex.run(cfg)["int8"]
    assert manifest["input"]["l_scale"] == 100.0 and manifest["output"]["ab_scale"] == 110.0
    assert manifest["input"]["layout"].startswith("L (1, H, W, 1)") and manifest["recipe"]["task"] == "colorize"
    assert manifest["fidelity"]["images"] == 2 and abs(manifest["fidelity"]["psnr_drop"]) < 1.0  # RGB PSNRs
    assert manifest["model_none"]["file"] == "model_none.tflite"
    ops = {op["name"] for op in manifest["file"]["ops"]}
    assert "DEPTH_TO_SPACE" in ops and "TRANSPOSE_CONV" not in ops
    assert set(manifest["compatibility"]) >= {"gpu", "nnapi:30"}
    board = scorer.run(scorer.ScoreConfig(models=(str(run / "export" / "int8"),), data=f"images:{colour_data}",
                                          runs=1, warmup=0, report_images=1, log=False, out=str(tmp_path / "s")))
    model, grey = board["rows"][0] if not board["rows"][0]["baseline"] else board["rows"][1], \
        next(r for r in board["rows"] if r["baseline"])
    assert model["status"] == "ok" and model["runtime_ms"] > 0 and model["score"] is None
    assert grey["name"].startswith("grey") and grey["colourfulness"] < 0.5 and grey["delta_e"] > 1
    for row in (model, grey):
        assert len(row["per_image"]) == 2 and 0 < row["ssim"] <= 1 and row["delta_e"] >= 0
    md = (tmp_path / "s" / "leaderboard.md").read_text()
    assert "ΔE2000" in md and "colourfulness" in md and "MAI score" not in md
    assert "ΔE2000" in (tmp_path / "s" / "report.html").read_text()
    _stream_the_export(run / "export" / "int8", tmp_path)


def _stream_the_export(export, tmp_path):
    """The exported file through the stream runner: a real H.264 video of the photos in, a decoded video out."""
    import imageio_ffmpeg

    video, frames = tmp_path / "in.mp4", [(_photo()[:96, 16 * i:16 * i + 160] * 255).astype(np.uint8)
                                          for i in range(6)]
    gen = imageio_ffmpeg.write_frames(str(video), (160, 96), fps=10, macro_block_size=1, ffmpeg_log_level="error")
    gen.send(None)
    for f in frames:
        gen.send(f)
    gen.close()
    proc = run_module("tflite_isp.stream", export, "--input", video, "--output", tmp_path / "out.mp4", "--json",
                      tmp_path / "r.json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["frames"] == 6 and report["fps"] > 0 and report["task"] == "colorize"
    out = imageio_ffmpeg.read_frames(str(tmp_path / "out.mp4"))
    assert next(out)["size"] == (160, 96) and sum(1 for _ in out) == 6


def test_qat_trains_the_folded_net(colour_data, tmp_path):
    from tflite_isp.export import exporter as ex

    run = make_run(tmp_path / "run", "colorize_ae", f"images:{colour_data}", encoder=[8, 8, 8, 8],
                   decoder=[8, 8, 8, 8])
    cfg = ex.ExportConfig(source=str(run), out=str(run / "export"), precisions=("int8_qat",), size=(64, 64),
                          calibration_images=2, fidelity_images=1, qat_steps=3, model_none=False, log=False)
    manifest = ex.run(cfg)["int8_qat"]
    assert manifest["qat"]["steps"] == 3 and manifest["precision"]["io_type"] == "int8"

def test_train_command_validates_in_rgb_and_keeps_the_last_weights(colour_data, tmp_path):
    """PSNR prefers grey outputs, so a colourisation run ships its last epoch, not its best by PSNR."""
    out = tmp_path / "run"
    run_module("tflite_isp.train", "--model", "colorize_unet", "--data", f"images:{colour_data}", "--epochs", "2",
               "--steps_per_epoch", "3", "--batch", "2", "--patch", "64", "--out", out, check=True)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["kept"] == "last" and metrics["finished"] and len(metrics["epochs"]) == 2
    assert all(10 < e["val_psnr"] < 60 for e in metrics["epochs"])  # RGB PSNR of L + predicted ab
    assert json.loads((out / "recipe.json").read_text())["task"] == "colorize"

# --- Bad input ----------------------------------------------------------------------------------


def test_mismatched_tasks_and_settings_are_one_line_errors(colour_data, isp_data, tmp_path):
    proc = run_module("tflite_isp.train", "--model", "smallnet", "--data", f"images:{colour_data}", "--epochs", "1",
                      "--steps_per_epoch", "1", "--out", tmp_path / "a")
    assert proc.returncode == 2 and "images is colorize data but smallnet is a isp model" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run_module("tflite_isp.train", "--model", "smallnet", "--loss", "l1,chroma:0.1", "--epochs", "1",
                      "--data", f"mai21:{isp_data}", "--steps_per_epoch", "1", "--out", tmp_path / "b")
    assert proc.returncode == 2 and "chroma loss term is for colourisation models" in proc.stderr
    run = make_run(tmp_path / "run", "colorize_unet", f"images:{colour_data}")
    proc = run_module("tflite_isp.export", run, "--raw_input")
    assert proc.returncode == 2 and "colourisation model takes L" in proc.stderr
    assert not (run / "export").exists()
    manifest = json.loads((run / "recipe.json").read_text())
    assert manifest["input"] == {"colour": "lab", "l_scale": 100.0, "ab_scale": 110.0}
