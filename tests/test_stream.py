"""python -m tflite_isp.stream: a real H.264 video of scikit-image photos through tiny colourisation exports (FP32,
INT8, dynamic), PNG and DNG folders, the FPS report, bad input as one line, and the same loop on a board over ssh."""
import json
import sys

import numpy as np
import pytest
from conftest import REPO, run_module

from tflite_isp.core import colour
from tflite_isp.core.errors import UserError

FRAME_HW = (96, 128)
SIDE = 64  # the fixed files' input size: frames are resized to it and the ab upsampled back


def _photos(hw, per_photo):
    from skimage import data
    from skimage.transform import resize

    frames = []
    for name in ("astronaut", "coffee", "chelsea"):
        rgb = resize(getattr(data, name)(), hw, anti_aliasing=True)
        for i in range(per_photo):  # a slow pan: each frame shifted a few pixels
            frames.append((np.roll(rgb, 3 * i, axis=1) * 255 + 0.5).astype(np.uint8))
    return frames


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """12 frames of 128x96 H.264 (yuv420p) written by imageio_ffmpeg's own ffmpeg, and the frames written."""
    import imageio_ffmpeg

    path = tmp_path_factory.mktemp("video") / "photos.mp4"
    frames = _photos(FRAME_HW, 4)
    gen = imageio_ffmpeg.write_frames(str(path), FRAME_HW[::-1], fps=10, macro_block_size=1, ffmpeg_log_level="error")
    gen.send(None)
    for f in frames:
        gen.send(f)
    gen.close()
    return path


def _decode(path):
    """(frame count, (w, h), frames) of a video, read back with ffmpeg."""
    import imageio_ffmpeg

    gen = imageio_ffmpeg.read_frames(str(path))
    w, h = next(gen)["size"]
    frames = [np.frombuffer(b, np.uint8).reshape(h, w, 3) for b in gen]
    return len(frames), (w, h), frames


def _manifest(folder, precision):
    manifest = {"format": 1, "recipe": {"name": "tiny-colorize", "task": "colorize"}, "precision": precision,
                "input": {"layout": "L (1, H, W, 1) in NHWC", "values": "CIE L* / l_scale", "l_scale": 100.0,
                          "task": "colorize"},
                "output": {"layout": "ab (1, H, W, 2) in NHWC", "values": "(a*, b*) / ab_scale", "ab_scale": 110.0,
                           "range": [-1.0, 1.0]}}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def make_colorize_export(folder, *, int8=False, dynamic=False):
    """A colourisation export folder: L (1, 64, 64, 1) -> strided Conv2D, UpSampling2D, Conv2D(2, 3, tanh) -> ab;
    ``model.tflite`` (FP32, or full INT8 with int8 IO) and, with ``dynamic``, ``model_none.tflite`` (1, None, None,
    1) beside it."""
    from tflite_isp.core.tf import keras, tf

    folder.mkdir(parents=True)
    keras.utils.set_random_seed(0)

    def build(side):  # one stride-2 conv: a dynamic file's sides must be multiples of 2
        inp = keras.Input(shape=(side, side, 1), batch_size=1)
        x = keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(inp)
        x = keras.layers.UpSampling2D(2)(x)
        return keras.Model(inp, keras.layers.Conv2D(2, 3, padding="same", activation="tanh")(x))

    net = build(SIDE)
    conv = tf.lite.TFLiteConverter.from_keras_model(net)
    if int8:
        rng = np.random.default_rng(0)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([rng.random((1, SIDE, SIDE, 1), np.float32)] for _ in range(8))
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = conv.inference_output_type = tf.int8
    (folder / "model.tflite").write_bytes(conv.convert())
    if dynamic:
        none = build(None)
        none.set_weights(net.get_weights())
        (folder / "model_none.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(none).convert())
    _manifest(folder, "int8" if int8 else "fp32")
    return folder


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    root = tmp_path_factory.mktemp("colorize")
    return {"fp32": make_colorize_export(root / "fp32", dynamic=True), "int8": make_colorize_export(root / "int8",
                                                                                                    int8=True)}


def _stream(*args):
    return run_module("tflite_isp.stream", *args, timeout=300)


# --- Colourisation --------------------------------------------------------------------------------------------------

def test_colourise_a_video_end_to_end(exports, video, tmp_path):
    out, report = tmp_path / "out" / "colour.mp4", tmp_path / "report.json"
    r = _stream(exports["fp32"], "--input", video, "--output", out, "--json", report, "--threads", 1)
    assert r.returncode == 0, r.stderr[-2000:]
    count, size, frames = _decode(out)
    assert count == 12 and size == FRAME_HW[::-1]
    # the output keeps each frame's own full-resolution L*: only the chroma came from the 64x64 model
    _, _, inputs = _decode(video)
    l_out = colour.rgb_to_lab(frames[0] / 255.0)[..., 0]
    l_in = colour.rgb_to_lab(inputs[0] / 255.0)[..., 0]
    assert np.abs(l_out - l_in).mean() < 3.0
    rep = json.loads(report.read_text())
    assert rep["frames"] == 12 and rep["frame_size"] == [128, 96] and rep["model_input"] == [SIDE, SIDE]
    assert rep["task"] == "colorize" and rep["threads"] == 1 and rep["fps"] > 0
    lat = rep["inference_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p95"] <= lat["max"] and lat["mean"] > 0
    assert set(rep["share"]) == {"decode", "colour", "inference", "encode", "other"}
    assert 0.98 < sum(rep["share"].values()) < 1.02
    assert rep["machine"]["cpu_model"] and rep["machine"]["logical_cores"] >= 1
    assert "12 frames of 128x96" in r.stderr and "FPS end to end" in r.stderr and "inference" in r.stderr
    assert "note: 128x96 frames ran at 64x64 (the file's fixed input; its ab was upsampled back" in r.stderr
    assert not list(out.parent.glob(".tmp*"))


def test_side_by_side_int8(exports, video, tmp_path):
    out = tmp_path / "panels.mp4"
    r = _stream(exports["int8"], "--input", video, "--output", out, "--side_by_side", "--max_frames", 3)
    assert r.returncode == 0, r.stderr[-2000:]
    count, size, frames = _decode(out)
    assert count == 3 and size == (4 * FRAME_HW[1], FRAME_HW[0])
    grey = frames[0][:, FRAME_HW[1]:2 * FRAME_HW[1]].astype(float)
    assert np.abs(grey[..., 0] - grey[..., 2]).mean() < 4  # the grey panel has no chroma (after yuv420p)


def test_folder_of_odd_sized_pngs_through_a_dynamic_file(exports, tmp_path):
    """A dynamic file runs on the frame padded to its multiple (2): 65x49 -> 66x50, cropped back; the video is
    padded to 66x50 too (yuv420p)."""
    import imageio.v3 as iio

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(_photos((49, 65), 2)):
        iio.imwrite(folder / f"{i:03d}.png", f)
    out, report = tmp_path / "odd.mp4", tmp_path / "r.json"
    r = _stream(exports["fp32"] / "model_none.tflite", "--input", folder, "--output", out, "--json", report)
    assert r.returncode == 0, r.stderr[-2000:]
    count, size, _ = _decode(out)
    assert count == 6 and size == (66, 50)
    rep = json.loads(report.read_text())
    assert rep["source"] == "images" and rep["model_input"] == [50, 66] and rep["model_size"] == "dynamic (multiple 2)"
    assert rep["output_size"] == [65, 49] and "padded to a multiple of 2, the ab cropped back" in r.stderr


def test_an_interrupted_stream_leaves_no_file(exports, video, tmp_path):
    from tflite_isp.apps import stream
    from tflite_isp.apps import video as video_mod

    def frames():
        yield from _photos(FRAME_HW, 1)[:2]
        raise KeyboardInterrupt

    source = video_mod.Source("video", str(video), 10.0, frames=frames())
    out = tmp_path / "cut.mp4"
    with pytest.raises(KeyboardInterrupt):
        stream.stream_local(stream.load_model(exports["fp32"]), source, output=out)
    assert list(tmp_path.iterdir()) == []


def test_uint8_colour_follows_core_colour():
    """The loop's table-driven conversion gives colour.model_input's L and colour.render's sRGB within a level."""
    from tflite_isp.run.stream_loop import l_of_uint8, render_uint8

    rng = np.random.default_rng(0)
    rgb8 = np.concatenate([_photos((48, 64), 1)[0], rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)])
    l_in = l_of_uint8(rgb8, 100.0)
    np.testing.assert_allclose(l_in, colour.model_input(rgb8 / 255.0, 100.0), atol=1e-5)
    ab = rng.uniform(-1, 1, rgb8.shape[:2] + (2,)).astype(np.float32)  # out-of-gamut colours too: clipped alike
    want = (np.clip(colour.render(l_in.astype(np.float64), ab, 100.0, 110.0), 0, 1) * 255 + 0.5).astype(int)
    assert np.abs(render_uint8(l_in, ab, 100.0, 110.0).astype(int) - want).max() <= 1


def test_resize_bilinear_matches_tensorflow():
    from tflite_isp.core.tf import tf
    from tflite_isp.run.stream_loop import resize_bilinear

    x = np.random.default_rng(0).random((13, 17, 2)).astype(np.float32)
    for hw in ((64, 64), (5, 30), (13, 17)):
        want = tf.image.resize(x, hw, method="bilinear", antialias=False).numpy()
        np.testing.assert_allclose(resize_bilinear(x, hw), want, atol=1e-5)


# --- ISP --------------------------------------------------------------------------------------------------------------

def test_isp_export_over_a_folder_of_dngs(tmp_path):
    from test_enhance import write_photo_dng

    folder = tmp_path / "raw"
    folder.mkdir()
    for i in range(3):
        write_photo_dng(folder / f"f{i}.dng", size=(64, 96))
    out, report = tmp_path / "isp.mp4", tmp_path / "r.json"
    r = _stream(REPO / "tests/fixtures/run_v0/export/int8", "--input", folder, "--output", out, "--json", report)
    assert r.returncode == 0, r.stderr[-2000:]
    count, size, _ = _decode(out)
    assert count == 3 and size == (96, 64)
    rep = json.loads(report.read_text())
    assert rep["task"] == "isp" and rep["source"] == "raw" and rep["frames"] == 3 and rep["fps"] > 0


# --- Bad input --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("case, message", [
    ("garbage", "garbage.mp4: ffmpeg cannot decode it"),
    ("truncated", "truncated.mp4: "),
    ("camera", "/dev/video99: no such camera"),
    ("raw_to_colorize", "holds RAW frames; "),
    ("video_to_isp", "takes packed RAW (1, H, W, 4): give a folder of RAW frames"),
    ("empty", "empty: no frames here"),
    ("sizes", "out.mp4: frame size 64x48 differs from the first frame's 128x96"),
    ("runtime", "--runtime must be local or jetson:HOST, not 'tpu'"),
])
def test_bad_input_is_one_line(exports, video, tmp_path, case, message):
    model, src, extra = exports["fp32"], tmp_path / f"{case}.mp4", []
    if case == "garbage":
        src.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(2000))
    elif case == "truncated":
        src.write_bytes(video.read_bytes()[:600])
    elif case == "camera":
        src = "camera:99"
    elif case in ("raw_to_colorize", "empty"):
        src = tmp_path / case
        src.mkdir()
        if case == "raw_to_colorize":
            (src / "a.dng").write_bytes(b"II*\x00")
    elif case == "sizes":
        import imageio.v3 as iio

        src = tmp_path / "sizes"
        src.mkdir()
        iio.imwrite(src / "a.png", _photos(FRAME_HW, 1)[0])
        iio.imwrite(src / "b.png", _photos((48, 64), 1)[0])
    elif case == "video_to_isp":
        model, src = REPO / "tests/fixtures/run_v0/export/int8", video
    else:
        src, extra = video, ["--runtime", "tpu"]
    out = tmp_path / "out.mp4"
    r = _stream(model, "--input", src, "--output", out, *extra)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip() and "XNNPACK" not in ln]
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.stderr
    assert not out.exists() and not list(tmp_path.glob(".tmp*"))


def test_a_busy_camera_is_one_line(monkeypatch):
    from tflite_isp.apps import video as video_mod

    def busy(source, input_params=None):
        raise video_mod.StreamError(source, "ffmpeg cannot decode it (/dev/video0: Device or resource busy)")

    monkeypatch.setattr(video_mod.os.path, "exists", lambda p: True)
    monkeypatch.setattr(video_mod, "read_video", busy)
    with pytest.raises(UserError, match=r"^/dev/video0: the camera is busy \(another program has it open\)$"):
        video_mod.open_source("camera:0", (".dng",))


def test_a_run_directory_means_its_int8_export():
    from tflite_isp.apps.stream_model import load_model

    model = load_model(REPO / "tests/fixtures/run_v0")
    assert model.task == "isp" and model.file == REPO / "tests/fixtures/run_v0/export/int8/model.tflite"
    with pytest.raises(UserError, match="streams its fixed-shape model.tflite"):
        load_model(REPO / "tests/fixtures/run_v0/export/int8/model_none.tflite")


def test_load_model_refuses_a_packed_file_as_colorize(tmp_path):
    from tflite_isp.apps.stream_model import load_model

    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "model.tflite").write_bytes((REPO / "tests/fixtures/run_v0/export/int8/model.tflite").read_bytes())
    _manifest(folder, "int8")
    with pytest.raises(UserError, match="is not a colourisation model's L"):
        load_model(folder)


# --- On a board over ssh ----------------------------------------------------------------------------------------------

def test_the_same_loop_on_a_board(sshd, exports, video, tmp_path):
    report = tmp_path / "board.json"
    r = _stream(exports["int8"], "--input", video, "--runtime", "jetson:board", "--ssh_config", sshd["config"],
                "--board_python", sys.executable, "--max_frames", 5, "--json", report)
    assert r.returncode == 0, r.stderr[-2000:]
    rep = json.loads(report.read_text())
    assert rep["frames"] == 5 and rep["fps"] > 0 and rep["runtime"] == "jetson:board"
    assert rep["frame_size"] == [128, 96] and rep["model_input"] == [SIDE, SIDE]
    assert rep["board"]["host"] == "board" and rep["machine"]["cpu_model"] and rep["peak_rss_mb"] > 0
    assert set(rep["share"]) == {"decode", "colour", "inference", "encode", "other"}
    assert len(rep["uploaded"]) == 4 and "5 frames of 128x96 on board" in r.stderr
    cached = {p.name.split("-")[0] for p in sshd["cache"].iterdir()}
    assert {"video", "loop", "colour"} <= cached
    assert rep["tegrastats"] is None
    # the board-tegra alias: the same board (same cache: nothing copied again) with a fake tegrastats on its PATH
    again = _stream(exports["int8"], "--input", video, "--runtime", "jetson:board-tegra", "--ssh_config",
                    sshd["config"], "--board_python", sys.executable, "--max_frames", 2, "--json", report)
    assert again.returncode == 0, again.stderr[-2000:]
    rep = json.loads(report.read_text())
    assert rep["uploaded"] == [] and rep["frames"] == 2 and isinstance(rep["tegrastats"], dict)


def test_a_board_refuses_output_and_isp(sshd, exports, video, tmp_path):
    r = _stream(exports["fp32"], "--input", video, "--runtime", "jetson:board", "--output", tmp_path / "o.mp4")
    assert r.returncode == 2 and "the board's video stays on the board" in r.stderr


def test_show_without_a_display_is_one_line(exports, video):
    r = run_module("tflite_isp.stream", exports["fp32"], "--input", video, "--show",
                   env={"DISPLAY": "", "WAYLAND_DISPLAY": ""})
    assert r.returncode == 2 and "error: --show needs a display" in r.stderr
