"""Sensor profiles: built-in ones are the embedded sets, ``data profile`` reads a camera's files, ``data calibrate``
adds measured noise, ``data synth --sensor`` makes data for that camera, and a model trained on it takes the
camera's own DNG in ``enhance``."""
import json

import numpy as np
import pytest
import rawpy
from conftest import run_module

from tflite_isp.core.errors import UserError
from tflite_isp.data import camera_files, photos, synth
from tflite_isp.raw import camera, dng, sensor
from tflite_isp.raw import unprocess as up


def _one_line(proc, *words):
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:"), proc.stderr[-2000:]
    for word in words:
        assert word in err[0], err[0]
    return err[0]


@pytest.fixture(scope="module")
def camera_dir(tmp_path_factory):
    """The example 12-bit GRBG camera's own files: shots, dark and flat frames."""
    return camera_files.make_camera(tmp_path_factory.mktemp("cam") / "cam", profile=sensor.builtin("example-12bit"),
                                    small=True)


def test_builtin_profiles_are_the_embedded_sensors(tmp_path):
    """The embedded sets are made from built-in profiles; a profile's JSON round trip makes the same bytes."""
    for name in sensor.BUILTIN:
        prof = sensor.builtin(name)
        path = sensor.save(prof, tmp_path / f"{name}.json")
        assert sensor.load(path) == prof
    mai = sensor.builtin(synth.ISP_PROFILE)
    assert (mai.pattern, mai.black, mai.white, mai.bit_depth) == ("RGGB", (64.0,) * 4, 1023.0, 10)
    sony = sensor.builtin(synth.LOWLIGHT_PROFILE)
    assert (sony.white, sony.bit_depth) == (16383.0, 14) and sensor.eld_camera(sony) == up.SONY_A7S2
    default = synth.make_isp(tmp_path / "a", small=True, crops_per_photo=1, eval_crops_per_photo=1)
    loaded = synth.make_isp(tmp_path / "b", small=True, crops_per_photo=1, eval_crops_per_photo=1,
                            profile=sensor.load(tmp_path / "mai21-10bit.json"))
    for png in sorted(default.glob("*/*/*.png")):
        assert png.read_bytes() == (loaded / png.relative_to(default)).read_bytes()
    assert json.loads((default / "sensor.json").read_text())["sensor"]["name"] == "mai21-10bit"


def test_profile_reads_the_camera(camera_dir):
    """CFA, per-colour black, white, colour matrix, white-balance spread and NoiseProfile noise, from DNG files."""
    truth = sensor.builtin("example-12bit")
    shots = sorted((camera_dir / "shots").glob("*.dng"))
    prof = camera.profile_files(shots)
    assert (prof.pattern, prof.black, prof.white, prof.bit_depth) == ("GRBG", truth.black, 4095.0, 12)
    np.testing.assert_allclose(prof.xyz_to_cam, truth.xyz_to_cam, atol=1e-4)
    for shot in shots:  # every shot's as-shot white balance lies inside the profile's range
        with rawpy.imread(str(shot)) as raw:
            wb = np.asarray(raw.camera_whitebalance)
        red, blue = wb[0] / wb[1], wb[2] / wb[1]
        assert prof.red_gain[0] <= red <= prof.red_gain[1] and prof.blue_gain[0] <= blue <= prof.blue_gain[1]
    assert prof.noise["source"] == "DNG NoiseProfile"
    for row in prof.noise["per_iso"]:  # NoiseProfile's K is exact up to the rounding of the tag
        assert row["K"] == pytest.approx(sensor.iso_gain(truth, row["iso"]), rel=0.02)
    assert prof.make == "tflite_isp" and prof.size == (96, 128)


def test_single_file_profile_is_labelled_rough(tmp_path):
    """A file without NoiseProfile gets a flat-region estimate, labelled as such."""
    truth = sensor.builtin("example-12bit")
    rng = np.random.default_rng(0)
    clean = up.mosaic(up.unprocess(photos.load_photo("coffee")[:200, :300], truth.rgb_to_cam, (1.2, 2.0, 1.6)),
                      truth.pattern)
    noise = sensor.draw_noise(truth, rng, [400])
    path = dng.write_dng(tmp_path / "plain.dng", sensor.capture(clean, truth, noise, rng), pattern="GRBG",
                         black=list(truth.black), white=4095, xyz_to_cam=truth.xyz_to_cam,
                         as_shot_neutral=[0.5, 1, 0.6], iso=400)
    prof = camera.profile_files([path])
    assert "rough" in prof.noise["source"] and any("rough" in n for n in prof.notes)
    assert 0.5 < prof.noise["per_iso"][0]["K"] / noise["K"] < 2.0


def test_calibrate_adds_measured_noise(camera_dir, tmp_path):
    """``data calibrate`` measures K, read and row noise per ISO and ELD's lines; they match the camera's truth."""
    truth = sensor.builtin("example-12bit")
    out = tmp_path / "sensor.json"
    run_module("tflite_isp.data", "profile", *sorted((camera_dir / "shots").glob("*.dng")), "--out", out, check=True)
    proc = run_module("tflite_isp.data", "calibrate", "--dark", camera_dir / "dark", "--flat", camera_dir / "flat",
                      "--profile", out, check=True)
    assert "calibrated from 6 dark and 30 flat frames" in proc.stdout
    noise = sensor.load(out).noise
    assert [row["iso"] for row in noise["per_iso"]] == [100.0, 400.0, 1600.0]
    for row in noise["per_iso"]:
        assert row["K"] == pytest.approx(sensor.iso_gain(truth, row["iso"]), rel=0.05)
    assert noise["g_scale"][0] == pytest.approx(truth.noise["g_scale"][0], abs=0.05)
    assert noise["g_scale"][1] == pytest.approx(truth.noise["g_scale"][1], abs=0.1)
    assert noise["r_scale"][0] == pytest.approx(truth.noise["r_scale"][0], abs=0.15)


def test_synth_for_the_camera(tmp_path, camera_dir):
    """``--sensor`` sets CFA, levels and colour of the data; ``--iso`` the noise; ``--photos`` the scenes."""
    folder = tmp_path / "mine"
    folder.mkdir()
    for i in range(12):
        img = np.round(photos.load_photo("coffee")[i * 20:i * 20 + 80, :80] * 255).astype(np.uint8)
        synth._write_png(folder / f"p{i:02d}.png", img)
    out = tmp_path / "low"
    run_module("tflite_isp.data", "synth", "--task", "lowlight", "--sensor", "example-12bit", "--photos", folder,
               "--iso", "400", "--ratios", "50,200", "--size", "64", "--crops", "1", "--out", out, check=True)
    manifest = json.loads((out / "MANIFEST.json").read_text())
    assert manifest["ratios"] == {"0.2s": 50.0, "0.05s": 200.0}
    assert {s["iso"] for s in manifest["scenes"]} == {400}
    assert sum(len(v) for v in manifest["photos"].values()) == 12
    with rawpy.imread(str(next((out / "Sony" / "short").glob("*.dng")))) as raw:
        # rawpy's order is R, G (Gr), B, G2 (Gb)
        assert raw.white_level == 4095 and list(raw.black_level_per_channel) == [256, 254, 257, 255]


def test_bad_input_is_one_line(tmp_path, camera_dir):
    """Two cameras, a non-raw file, an X-Trans file, a broken profile, Brooks noise for low light: one line each,
    nothing half-written."""
    other = sensor.from_dict({**sensor.BUILTIN["example-12bit"], "model": "another body"})
    stranger = camera_files.write_shot(tmp_path / "other.dng", photos.load_photo("coffee")[:64, :64], other,
                                       np.random.default_rng(0))
    shot = sorted((camera_dir / "shots").glob("*.dng"))[0]
    out = tmp_path / "s.json"
    _one_line(run_module("tflite_isp.data", "profile", shot, stranger, "--out", out), "other.dng", "another camera")
    png = tmp_path / "x.png"
    synth._write_png(png, np.zeros((8, 8, 3), np.uint8))
    _one_line(run_module("tflite_isp.data", "profile", png, "--out", out), "x.png", "rawpy cannot decode")
    xtrans = dng.write_dng(tmp_path / "xt.dng", np.full((204, 306), 300, np.uint16), pattern="RGGB", black=256,
                           white=4095, xyz_to_cam=np.eye(3), as_shot_neutral=[0.5, 1, 0.6], cfa_repeat=dng.XTRANS)
    _one_line(run_module("tflite_isp.data", "profile", xtrans, "--out", out), "xt.dng", "CFA")
    assert not out.exists()
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**sensor.BUILTIN["example-12bit"], "white": 100}))
    _one_line(run_module("tflite_isp.data", "synth", "--task", "isp", "--sensor", broken, "--out", tmp_path / "d"),
              "broken.json", "levels")
    _one_line(run_module("tflite_isp.data", "synth", "--task", "lowlight", "--sensor", "mai21-10bit", "--small",
                         "--out", tmp_path / "d"), "calibrated noise")
    _one_line(run_module("tflite_isp.data", "synth", "--task", "isp", "--sensor", "mai21-10bit", "--iso", "400",
                         "--small", "--out", tmp_path / "d"), "--iso needs calibrated noise")
    _one_line(run_module("tflite_isp.data", "synth", "--task", "isp", "--photos", tmp_path / "none",
                         "--out", tmp_path / "d"), "none", "no such folder")
    assert not (tmp_path / "d").exists() and not list(tmp_path.glob(".d.partial-*"))
    with pytest.raises(UserError, match="calibrated noise"):
        camera_files.make_camera(tmp_path / "c", profile=sensor.builtin("mai21-10bit"))


def test_own_camera_end_to_end(tmp_path, camera_dir):
    """profile -> calibrate -> synth -> train (--levels file) -> export INT8 -> enhance the camera's own DNG."""
    prof = tmp_path / "sensor.json"
    shots = sorted((camera_dir / "shots").glob("*.dng"))
    run_module("tflite_isp.data", "profile", *shots, "--out", prof, check=True)
    run_module("tflite_isp.data", "calibrate", "--dark", camera_dir / "dark", "--flat", camera_dir / "flat",
               "--profile", prof, check=True)
    data = tmp_path / "data"
    run_module("tflite_isp.data", "synth", "--task", "isp", "--sensor", prof, "--small", "--out", data, check=True)
    run = tmp_path / "run"
    run_module("tflite_isp.train", "--model", "smallnet", "--data", f"mai21:{data}", "--levels", "file",
               "--epochs", "1", "--steps_per_epoch", "3", "--patch", "32", "--batch", "2", "--out", run, check=True)
    assert json.loads((run / "recipe.json").read_text())["input"]["white"] == "file"
    run_module("tflite_isp.export", run, "--int8", check=True)
    export = run / "export" / "int8"
    jpg = tmp_path / "shot.jpg"
    run_module("tflite_isp.enhance", shots[0], "-o", jpg, "--export_dir", export, check=True)
    assert jpg.stat().st_size > 0
    # the embedded-set model's fixed levels refuse this camera's 12-bit file in one line
    fixed = tmp_path / "fixed"
    run_module("tflite_isp.train", "--model", "smallnet", "--data", f"mai21:{data}", "--epochs", "1",
               "--steps_per_epoch", "1", "--patch", "32", "--batch", "2", "--out", fixed)
    assert not (fixed / "model.keras").exists()


def test_quad_bayer_camera_profile_and_calibration(tmp_path):
    """A Quad Bayer camera: the profile keeps its 4 x 4 CFA; calibration measures each colour's own sites."""
    from tflite_isp.raw import calibrate

    truth = sensor.from_dict({**sensor.BUILTIN["example-12bit"], "name": "quad", "pattern": "quad-GRBG"})
    cam = camera_files.make_camera(tmp_path / "cam", profile=truth, small=True, isos=[400])
    prof = camera.profile_files(sorted((cam / "shots").glob("*.dng")))
    assert (prof.pattern, prof.black) == ("quad-GRBG", truth.black)
    result = calibrate.calibrate_dirs(cam / "dark", cam / "flat")
    (row,) = result["isos"]
    assert row["K"] == pytest.approx(sensor.iso_gain(truth, 400), rel=0.05)
    assert row["read_sigma"] == pytest.approx(sensor.draw_noise(truth, np.random.default_rng(0), [400])["read_sigma"],
                                              rel=0.05)


def test_quad_synth_and_remosaic_commands(tmp_path):
    """``data synth --sensor`` with a Quad Bayer profile writes a quad set; ``data remosaic`` turns it into Bayer."""
    quad = sensor.save(sensor.from_dict({**sensor.BUILTIN["example-12bit"], "name": "q", "pattern": "quad-GRBG"}),
                       tmp_path / "quad.json")
    data, bayer_set = tmp_path / "quad", tmp_path / "bayer"
    proc = run_module("tflite_isp.data", "synth", "--task", "isp", "--sensor", quad, "--small", "--out", data,
                      check=True)
    assert "quad-GRBG 12-bit" in proc.stdout
    proc = run_module("tflite_isp.data", "remosaic", data, "--out", bayer_set, check=True)
    assert "; GRBG 12-bit" in proc.stdout
    _one_line(run_module("tflite_isp.data", "remosaic", bayer_set, "--out", tmp_path / "again"), "already Bayer")
    assert not (tmp_path / "again").exists()
