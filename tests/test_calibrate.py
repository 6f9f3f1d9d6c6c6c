"""Noise calibration (raw/calibrate.py): known noise in synthetic dark and flat DNGs comes back out.

The frames follow unprocess.lowlight_capture's model (K * Poisson + Gaussian read + Gaussian row, rounded DN) on a
12-bit sensor, black 256; flats carry vignetting and 1 % PRNU (fixed-pattern, same in both frames of a pair).
Measured with seeds 0..3: K within 0.8 %, read sigma within 1.2 % (rounding adds 1/12 DN^2, +1 % at sigma 2),
row sigma within 5.4 %; the asserted tolerances leave about twice that.
"""
import json

import numpy as np
import pytest
import skimage.data
import skimage.filters

from tflite_isp.core.errors import UserError
from tflite_isp.raw import calibrate as cal
from tflite_isp.raw import unprocess
from tflite_isp.raw.dng import write_dng
from tflite_isp.raw.meta import read_meta

BLACK, WHITE, SIZE = 256, 4095, 256
TRUTH = {400: (0.5, 2.0, 0.5), 800: (1.0, 3.0, 0.8), 1600: (2.0, 5.0, 1.3)}  # ISO: (K DN/e-, read, row sigma DN)
LEVELS = (0.05, 0.15, 0.35, 0.6, 0.97)  # fraction of the range; the greens of the last clip and are left out
PLANE_GAIN = (0.5, 1.0, 1.0, 0.7)  # R, Gr, Gb, B signal of a grey flat


def _write(path, mosaic, iso=800, exposure=0.01):
    return write_dng(path, mosaic, pattern="RGGB", black=BLACK, white=WHITE,
                     xyz_to_cam=unprocess.SONY_A7S2_XYZ_TO_CAM, as_shot_neutral=(0.5, 1.0, 0.7), iso=iso,
                     exposure_time=exposure, make="Test", model="Sensor")


def _flat_scene(level, size=SIZE):
    yy, xx = np.mgrid[0:size, 0:size] / size
    vignette = 1.0 - 0.2 * ((yy - 0.5) ** 2 + (xx - 0.5) ** 2)
    prnu = 1.0 + 0.01 * np.random.default_rng(99).standard_normal((size, size))
    gain = np.tile(np.reshape(PLANE_GAIN, (2, 2)), (size // 2, size // 2))
    return level * (WHITE - BLACK) * vignette * prnu * gain


def _shot(clean, rng, k=1.0, read=3.0, row=0.8):
    noise = {"K": k, "read_sigma": read, "row_sigma": row}
    return unprocess.lowlight_capture(clean, 1, rng, noise=noise, black=BLACK, white=WHITE)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("calib")
    (root / "dark").mkdir()
    (root / "flat").mkdir()
    rng = np.random.default_rng(0)
    for iso, (k, read, row) in TRUTH.items():
        for i in range(2):
            _write(root / "dark" / f"dark_{iso}_{i}.dng", _shot(np.zeros((SIZE, SIZE)), rng, k, read, row), iso)
        for j, level in enumerate(LEVELS):
            for i in range(2):
                _write(root / "flat" / f"flat_{iso}_{j}_{i}.DNG", _shot(_flat_scene(level), rng, k, read, row), iso,
                       exposure=0.001 * (j + 1))
    (root / "flat" / "notes.txt").write_text("not a RAW file")
    return root


def test_calibration_recovers_the_known_noise(folders, capsys):
    result = cal.calibrate_dirs(folders / "dark", folders / "flat")
    assert result["source"] == "calibrated from 6 dark and 30 flat frames"
    assert result["camera"] == "Test Sensor"
    assert len(capsys.readouterr().err.strip().splitlines()) == 36  # one progress line per frame
    json.dumps(result)
    assert [e["iso"] for e in result["isos"]] == [400, 800, 1600]
    for entry in result["isos"]:
        k, read, row = TRUTH[entry["iso"]]
        assert entry["K"] == pytest.approx(k, rel=0.02)
        assert entry["read_sigma"] == pytest.approx(read, rel=0.03)
        assert entry["row_sigma"] == pytest.approx(row, rel=0.1)
        assert entry["black"] == pytest.approx([BLACK] * 4, abs=0.3)
        assert entry["ptc"]["r2"] > 0.99 and entry["ptc"]["levels"] == 5
        assert entry["ptc"]["excluded_points"] == 2  # Gr and Gb of the 97 % level clip
        assert entry["white"] == WHITE and entry["dark_frames"] == 2 and entry["flat_pairs"] == 5
    lines, truth = result["lines"], [TRUTH[iso] for iso in sorted(TRUTH)]
    assert lines["k_min"] == pytest.approx(0.5, rel=0.02) and lines["k_max"] == pytest.approx(2.0, rel=0.02)
    true_read = cal.fit_log_line([t[0] for t in truth], [t[1] for t in truth])
    true_row = cal.fit_log_line([t[0] for t in truth], [t[2] for t in truth])
    assert lines["g_scale"][:2] == pytest.approx(true_read[:2], abs=0.05)
    assert lines["r_scale"][:2] == pytest.approx(true_row[:2], abs=0.1)
    camera = cal.eld_camera(result)
    noise = unprocess.sample_eld_noise(np.random.default_rng(1), camera)
    assert camera.k_min <= noise["K"] <= camera.k_max


def test_eld_log_lines():
    k = np.array([0.25, 0.5, 1.0, 2.0, 4.0])
    assert cal.fit_log_line(k, np.exp(0.7 * np.log(k) + 1.1)) == pytest.approx([0.7, 1.1, 0.0], abs=1e-9)
    slope, bias, sigma = cal.fit_log_line(k, np.exp(0.5 * np.log(k) + 0.2 * np.array([1, -1, 1, -1, 1])))
    assert slope == pytest.approx(0.5, abs=0.05) and bias == pytest.approx(0.04, abs=0.05) and 0.1 < sigma < 0.3
    assert cal.fit_log_line([2.0], [3.0]) == pytest.approx([0.0, np.log(3.0), 0.0])  # one ISO: slope 0
    lines = cal.eld_lines([{"iso": 800, "K": 1.0, "read_sigma": 3.0, "row_sigma": None}])
    assert lines["note"] == "one ISO: the lines have slope 0" and lines["r_scale"] is None
    camera = cal.eld_camera({"lines": lines})
    assert camera.g_scale == pytest.approx((0.0, np.log(3.0), 0.0)) and camera.k_min == camera.k_max == 1.0


def test_noise_profile_round_trip(tmp_path):
    k, read = 1.5, 4.0
    scale = WHITE - BLACK
    pairs = (k / scale, (read / scale) ** 2)
    path = write_dng(tmp_path / "np.dng", np.full((64, 64), BLACK, np.uint16), pattern="RGGB", black=BLACK,
                     white=WHITE, xyz_to_cam=unprocess.SONY_A7S2_XYZ_TO_CAM, as_shot_neutral=(1, 1, 1), iso=800,
                     noise_profile=pairs)
    meta = read_meta(path)
    result = cal.from_noise_profile(meta.noise_profile, BLACK, WHITE, iso=meta.iso)
    entry = result["isos"][0]
    assert result["source"] == "DNG NoiseProfile" and entry["iso"] == 800
    assert entry["K"] == pytest.approx(k, rel=1e-6) and entry["read_sigma"] == pytest.approx(read, rel=1e-6)
    assert result["lines"]["g_scale"] == pytest.approx([0.0, np.log(read), 0.0])
    per_plane = cal.from_noise_profile(pairs * 3, [BLACK] * 4, WHITE)["isos"][0]
    assert per_plane["per_plane"]["K"] == pytest.approx([k] * 3) and per_plane["iso"] == "unknown"
    json.dumps(result)


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
def test_single_file_estimate_is_rough_but_close(name):
    """Measured (block 16, seed 0) on astronaut, chelsea, coffee, rocket at K 0.5..8: K 0.90..1.23 x the truth;
    read sigma is unreliable (0..3.7 x) where shot noise dominates, so it is not asserted. The photo is blurred
    first: its own noise and 8-bit steps would otherwise count as sensor noise (astronaut at K 0.5: 2 x)."""
    photo = skimage.filters.gaussian(getattr(skimage.data, name)() / 255.0, sigma=1.5, channel_axis=-1)
    linear = unprocess.unprocess(photo, unprocess.rgb_to_cam(unprocess.SONY_A7S2_XYZ_TO_CAM), (1.0, 2.0, 1.7))
    h, w = linear.shape[0] // 2 * 2, linear.shape[1] // 2 * 2
    clean = unprocess.mosaic(linear[:h, :w], "RGGB") * (WHITE - BLACK)
    rng = np.random.default_rng(0)
    for k in (1.0, 2.0):
        result = cal.estimate_single(_shot(clean, rng, k=k, read=3.0, row=0.5), "RGGB", BLACK, WHITE)
        assert result["source"] == "single-file estimate from flat regions (rough)"
        assert k / 1.5 < result["isos"][0]["K"] < k * 1.5


def _bad(tmp_path, darks, flats):
    """Folders of 64 x 64 frames: ``darks`` and ``flats`` list (name, mosaic, iso, exposure)."""
    for folder, frames in (("dark", darks), ("flat", flats)):
        (tmp_path / folder).mkdir(parents=True)
        for name, mosaic, iso, exposure in frames:
            _write(tmp_path / folder / name, mosaic, iso, exposure)
    with pytest.raises(UserError) as err:
        cal.calibrate_dirs(tmp_path / "dark", tmp_path / "flat")
    assert "\n" not in str(err.value)
    return str(err.value)


def _frame(level, rng, size=64):
    return _shot(_flat_scene(level, size), rng)


def test_bad_inputs_are_one_line_errors_naming_the_file(tmp_path):
    rng = np.random.default_rng(0)
    dark = [("d.dng", _frame(0.0, rng), 800, 0.01)]
    two_levels = [(f"f{j}{i}.dng", _frame(level, rng), 800, 0.01 * (j + 1)) for j, level in enumerate((0.1, 0.3))
                  for i in range(2)]
    msg = _bad(tmp_path / "a", dark, two_levels + [("f12.dng", _frame(0.3, rng), 800, 0.02)])
    assert "f12.dng: flat frame has no partner at ISO 800, exposure 0.02 s" in msg
    msg = _bad(tmp_path / "b", dark + [("z_big.dng", _frame(0.0, rng, size=128), 800, 0.01)], two_levels)
    assert "z_big.dng: is 128x128, but d.dng is 64x64" in msg
    full = np.full((64, 64), WHITE, np.uint16)
    msg = _bad(tmp_path / "c", dark, two_levels + [("s0.dng", full, 800, 0.5), ("s1.dng", full, 800, 0.5)])
    assert "s0.dng: flat frame is saturated (100 % of pixels at the white level)" in msg
    msg = _bad(tmp_path / "d", dark, two_levels[:2])
    assert "f00.dng: ISO 800: flat pairs at 1 exposure level(s) below saturation" in msg
    msg = _bad(tmp_path / "e", [], two_levels)
    assert msg.endswith("dark: no RAW files (.dng, .arw, .nef, .nrw, ...) in this folder")
    msg = _bad(tmp_path / "f", dark, two_levels[:2] + [("g0.dng", _frame(0.1, rng), 800, 0.05),
                                                       ("g1.dng", _frame(0.3, rng), 800, 0.05)])
    assert "g1.dng: flat frame's mean" in msg and "differs from its partner g0.dng's" in msg


def test_files_without_iso_are_one_unknown_group(tmp_path):
    rng = np.random.default_rng(3)
    darks = [_write(tmp_path / f"d{i}.dng", _frame(0.0, rng, size=128), iso=None) for i in range(2)]
    flats = [_write(tmp_path / f"f{j}{i}.dng", _frame(level, rng, size=128), iso=None, exposure=0.01 * (j + 1))
             for j, level in enumerate((0.1, 0.3, 0.5)) for i in range(2)]
    result = cal.calibrate(darks, flats)
    (entry,) = result["isos"]
    assert entry["iso"] == "unknown" and entry["K"] == pytest.approx(1.0, rel=0.05)
    assert result["lines"]["note"] == "one ISO: the lines have slope 0" and result["lines"]["g_scale"][0] == 0.0
