"""Synthetic RAW data: unprocessing and noise physics, DNG round trips, the embedded datasets."""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

from tflite_isp.core.errors import UserError
from tflite_isp.data import cli as data
from tflite_isp.data import photos, synth
from tflite_isp.raw import bayer, rawio, render
from tflite_isp.raw import unprocess as up
from tflite_isp.raw.dng import write_dng

NEUTRAL = (0.5, 1.0, 0.7)


def _digest(root: Path) -> dict:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@functools.lru_cache(maxsize=None)
def _isp_small(tmp: Path, seed: int) -> Path:
    return synth.make_isp(tmp / f"isp-{seed}", seed=seed, small=True)


@pytest.fixture(scope="module")
def shared_tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("synth")


@pytest.fixture(scope="module")
def lowlight_small(shared_tmp):
    return synth.make_lowlight(shared_tmp / "lowlight", seed=0, small=True)


# --- (a) DNG writing ------------------------------------------------------------------------

@pytest.mark.parametrize("pattern", bayer.PATTERNS)
def test_write_dng_reads_back_exactly(tmp_path, pattern):
    rng = np.random.default_rng(1)
    mosaic = rng.integers(0, 16384, (64, 96)).astype(np.uint16)
    black = (510, 512, 514, 516)  # R, Gr, Gb, B: all different, so a position/colour mix-up shows
    path = write_dng(tmp_path / "x.dng", mosaic, pattern=pattern, black=black, white=16383,
                     xyz_to_cam=up.SONY_A7S2_XYZ_TO_CAM, as_shot_neutral=NEUTRAL)
    frame = rawio.read_raw(path)
    assert frame.pattern == pattern
    np.testing.assert_array_equal(frame.mosaic, mosaic)
    assert frame.black == black
    assert frame.white == 16383
    np.testing.assert_allclose(frame.wb, (2.0, 1.0, 1.0, 1 / 0.7), rtol=1e-5)
    assert not list(tmp_path.glob(".*tmp*")), "temporary file left behind"


def test_write_dng_scalar_black_and_bad_paths(tmp_path):
    mosaic = np.full((32, 32), 700, np.uint16)
    kwargs = dict(pattern="RGGB", black=512, white=16383, xyz_to_cam=np.eye(3), as_shot_neutral=NEUTRAL)
    frame = rawio.read_raw(write_dng(tmp_path / "a.dng", mosaic, **kwargs))
    assert frame.black == (512.0,) * 4
    with pytest.raises(UserError, match=str(tmp_path)):
        write_dng(tmp_path, mosaic, **kwargs)
    with pytest.raises(UserError, match="no such folder"):
        write_dng(tmp_path / "missing" / "a.dng", mosaic, **kwargs)
    with pytest.raises(ValueError):
        write_dng(tmp_path / "b.dng", mosaic.astype(np.float32), **kwargs)


# --- (b) a real round trip through LibRaw ----------------------------------------------------

def test_unprocessed_astronaut_renders_back(tmp_path):
    photo = photos.load_photo("astronaut")
    gains = (1.0, 2.1, 1.7)
    linear = up.unprocess(photo, up.rgb_to_cam(up.SONY_A7S2_XYZ_TO_CAM), gains)
    raw = up.to_dn(up.mosaic(linear, "RGGB"), 512, 16383)
    path = write_dng(tmp_path / "astronaut.dng", raw, pattern="RGGB", black=512, white=16383,
                     xyz_to_cam=up.SONY_A7S2_XYZ_TO_CAM, as_shot_neutral=(1 / gains[1], 1.0, 1 / gains[2]))
    # LibRaw applies WB, demosaics, undoes the camera matrix and a pure 2.2 gamma; the tone
    # curve is the only step it does not know about.
    rendered = up.smoothstep(render.render_srgb(path, gamma=(2.2, 0.0)))
    assert peak_signal_noise_ratio(photo, rendered.astype(np.float32), data_range=1.0) > 30


# --- (c) the isp set ------------------------------------------------------------------------

def test_make_isp_layout_and_content(shared_tmp):
    root = _isp_small(shared_tmp, 0)
    manifest = json.loads((root / "MANIFEST.json").read_text())
    sensor = json.loads((root / "sensor.json").read_text())
    assert sensor["pattern"] == "RGGB" and sensor["black"] == 64 and sensor["white"] == 1023
    np.testing.assert_allclose(np.sum(sensor["rgb_to_cam"], axis=1), 1.0, atol=1e-5)
    for split in photos.SPLITS:
        raws = sorted((root / split / "mediatek_raw").iterdir())
        targets = sorted((root / split / "fujifilm").iterdir())
        n = manifest["counts"][split]
        assert n > 0
        assert {p.name for p in raws} == {p.name for p in targets} == {f"{i}.png" for i in range(n)}
        for raw_path, target_path in zip(raws, targets):
            raw, target = iio.imread(raw_path), iio.imread(target_path)
            assert raw.dtype == np.uint16 and raw.ndim == 2
            assert target.dtype == np.uint8 and target.shape == raw.shape + (3,)
            assert raw.max() <= 1023
    train = np.stack([iio.imread(p) for p in (root / "train" / "mediatek_raw").iterdir()])
    assert np.percentile(train, 1) >= 50, "black pedestal (64) should hold up the darkest pixels"
    assert train.min() < 64, "noise should dip below black instead of being clipped at it"
    by_split = manifest["photos"]
    all_photos = sum(by_split.values(), [])
    assert len(all_photos) == len(set(all_photos)) == len(photos.PHOTOS)
    assert by_split["val"] == ["chelsea"] and by_split["test"] == ["astronaut"]
    assert {"motorcycle_left", "motorcycle_right"} <= set(by_split["train"])


def test_make_isp_is_deterministic(shared_tmp, tmp_path):
    first = _digest(_isp_small(shared_tmp, 0))
    again = _digest(synth.make_isp(tmp_path / "again", seed=0, small=True))
    other = _digest(_isp_small(shared_tmp, 1))
    assert first == again
    assert first.keys() == other.keys()
    assert first["train/mediatek_raw/0.png"] != other["train/mediatek_raw/0.png"]
    assert first["train/fujifilm/0.png"] != other["train/fujifilm/0.png"]


def test_make_isp_refuses_bad_output(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(UserError, match=str(afile)):
        synth.make_isp(afile, small=True)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="not empty"):
        synth.make_isp(full, small=True)
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    assert not list(tmp_path.glob(".*partial*"))


# --- (d) the lowlight set -------------------------------------------------------------------

def _pairs(root: Path):
    for split in photos.SPLITS:
        for line in (root / f"Sony_{split}_list.txt").read_text().splitlines():
            short, long, iso, fnum = line.split()
            yield split, short, long, iso, fnum


def test_make_lowlight_lists_and_files(lowlight_small):
    root = lowlight_small
    pairs = list(_pairs(root))
    assert {p[0] for p in pairs} == set(photos.SPLITS)
    digits = {"train": "0", "test": "1", "val": "2"}
    for split, short, long, iso, fnum in pairs:
        assert short.startswith("./Sony/short/") and long.startswith("./Sony/long/")
        assert Path(long).name[0] == digits[split] and Path(long).name.endswith("_00_10s.dng")
        assert Path(short).name[:5] == Path(long).name[:5]
        assert iso.startswith("ISO") and int(iso[3:]) >= 100 and fnum.startswith("F")
        assert (root / short).is_file() and (root / long).is_file()
    frame = rawio.read_raw(root / pairs[0][2])
    assert frame.pattern == "RGGB" and frame.black == (512.0,) * 4 and frame.white == 16383
    assert frame.wb[0] > 1.5 and frame.wb[3] > 1.3  # red and blue gains from AsShotNeutral
    assert data.lowlight_counts(root)["train"]["missing"] == 0


def test_lowlight_shorts_match_long_in_expectation(lowlight_small):
    root = lowlight_small
    sums = {}
    longs = {}
    for _, short, long, _, _ in _pairs(root):
        exposure = float(Path(short).name.split("_")[-1][:-5])
        ratio = min(10.0 / exposure, 300.0)
        longs.setdefault(long, rawio.read_raw(root / long).mosaic.astype(np.float64) - 512)
        amplified = (rawio.read_raw(root / short).mosaic.astype(np.float64) - 512) * ratio
        s, lo, v = sums.get(ratio, (0.0, 0.0, []))
        sums[ratio] = (s + amplified.sum(), lo + longs[long].sum(), v + [np.var(amplified - longs[long])])
    assert sorted(sums) == [100.0, 250.0, 300.0]
    for ratio, (s, lo, _) in sums.items():
        assert s / lo == pytest.approx(1.0, abs=0.04), ratio
    # More amplification, more noise, scene by scene.
    for a, b in zip(sums[100.0][2], sums[300.0][2]):
        assert b > 1.5 * a


def test_lowlight_short_noise_exceeds_long_on_a_flat_field():
    rng = np.random.default_rng(3)
    long, shorts, meta = synth.lowlight_scene(np.full((64, 96, 3), 0.5, np.float32), rng)
    for exposure, ratio in synth.SHORT_EXPOSURES:
        for colour in bayer.COLOURS:
            dy, dx = bayer.colour_positions("RGGB")[colour]
            l_var = long[dy::2, dx::2].astype(np.float64).var()
            s_var = (shorts[exposure][dy::2, dx::2].astype(np.float64) * ratio).var()
            assert s_var > 10 * l_var, (exposure, colour)


# --- (e) unprocessing steps ---------------------------------------------------------------

def test_tone_and_gamma_invert():
    x = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(up.smoothstep(up.inverse_smoothstep(x)), x, atol=1e-9)
    np.testing.assert_allclose(up.inverse_smoothstep(up.smoothstep(x)), x, atol=1e-6)
    np.testing.assert_allclose(up.gamma_compression(up.gamma_expansion(x[1:])), x[1:], rtol=1e-9)


def test_ccm_gains_and_mosaic():
    rng = np.random.default_rng(0)
    ccm = up.random_ccm(rng)
    np.testing.assert_allclose(ccm.sum(axis=1), 1.0)
    np.testing.assert_allclose(ccm, up.random_ccm(np.random.default_rng(0)))
    img = rng.uniform(0, 1, (8, 10, 3))
    np.testing.assert_allclose(up.apply_ccm(up.apply_ccm(img, ccm), np.linalg.inv(ccm)), img, atol=1e-9)
    rgb_gain, red, blue = up.random_gains(rng)
    grey = np.full((2, 2, 3), 0.2)
    np.testing.assert_allclose(up.safe_invert_gains(grey, rgb_gain, red, blue)[0, 0],
                               np.array([0.2 / red, 0.2, 0.2 / blue]) / rgb_gain)
    white = np.ones((2, 2, 3))
    np.testing.assert_allclose(up.safe_invert_gains(white, rgb_gain, red, blue), 1.0)
    colour = {"R": 0, "Gr": 1, "Gb": 1, "B": 2}
    for pattern in bayer.PATTERNS:
        m = up.mosaic(img, pattern)
        for c, (dy, dx) in bayer.colour_positions(pattern).items():
            np.testing.assert_array_equal(m[dy::2, dx::2], img[dy::2, dx::2, colour[c]])


# --- (f) noise statistics -----------------------------------------------------------------

@pytest.mark.parametrize("level", [0.05, 0.3, 0.9])
def test_heteroscedastic_noise_std(level):
    rng = np.random.default_rng(7)
    shot, read = 1e-2, 1e-4
    x = np.full((400, 500), level, np.float32)
    noise = up.add_heteroscedastic_noise(x, shot, read, rng) - x
    assert abs(noise.mean()) < 3 * np.sqrt(shot * level + read) / np.sqrt(x.size)
    assert noise.std() == pytest.approx(np.sqrt(shot * level + read), rel=0.01)


def test_brooks_noise_levels_follow_the_line():
    rng = np.random.default_rng(0)
    shot, read = np.array([up.brooks_noise_levels(rng) for _ in range(4000)]).T
    # log-uniform over Brooks et al.'s [1e-4, 1.2e-2]: the quartiles of log(shot) sit a quarter of the way apart
    lo, hi = np.log(1e-4), np.log(1.2e-2)
    np.testing.assert_allclose(np.percentile(np.log(shot), [25, 50, 75]), lo + (hi - lo) * np.array([.25, .5, .75]),
                               atol=0.06 * (hi - lo))
    residual = np.log(read) - (2.18 * np.log(shot) + 1.20)
    assert residual.mean() == pytest.approx(0.0, abs=0.02)
    assert residual.std() == pytest.approx(0.26, rel=0.05)


def test_lowlight_capture_mean_and_variance():
    rng = np.random.default_rng(5)
    noise = {"K": 2.0, "read_sigma": 4.0, "row_sigma": 1.0}
    clean = np.full((1000, 400), 3000.0)
    ratio = 100
    shot = up.lowlight_capture(clean, ratio, rng, noise=noise).astype(np.float64) - 512
    y = 3000.0 / ratio
    assert shot.mean() == pytest.approx(y, rel=0.01)
    expected = noise["K"] * y + noise["read_sigma"] ** 2 + noise["row_sigma"] ** 2 + 1 / 12
    assert shot.var() == pytest.approx(expected, rel=0.05)
    row_means = shot.mean(axis=1)  # row noise: rows differ by more than pixel noise averages out
    assert row_means.var() == pytest.approx(noise["row_sigma"] ** 2 + (expected - 1) / 400, rel=0.15)


def test_eld_parameters_stay_in_the_calibrated_range():
    rng = np.random.default_rng(0)
    ks = np.log([up.sample_eld_noise(rng)["K"] for _ in range(2000)])
    lo, hi = np.log(up.SONY_A7S2.k_min), np.log(up.SONY_A7S2.k_max)
    assert lo <= ks.min() < lo + 0.01 * (hi - lo) and hi - 0.01 * (hi - lo) < ks.max() <= hi  # the whole range
    assert np.median(ks) == pytest.approx((lo + hi) / 2, abs=0.05 * (hi - lo))  # log-uniform, not uniform in K
    assert up.iso_for_gain(up.SONY_A7S2.k_min) == 100 and up.iso_for_gain(up.SONY_A7S2.k_max) == 6400


# --- cache and command line ---------------------------------------------------------------

def test_ensure_embedded_generates_once(tmp_path, monkeypatch):
    monkeypatch.setenv("TFLITE_ISP_CACHE", str(tmp_path / "cache"))
    calls = []

    def small_isp(out, *, seed):
        calls.append(out)
        return synth.make_isp(out, seed=seed, small=True)

    monkeypatch.setitem(synth.MAKERS, "isp", small_isp)
    root = synth.ensure_embedded("isp")
    assert root == tmp_path / "cache" / "embedded-v1" / "isp"
    assert (root / "MANIFEST.json").is_file()
    assert synth.ensure_embedded("isp") == root and len(calls) == 1
    assert sorted(p.name for p in root.parent.iterdir()) == ["isp"]  # no partial folders left
    with pytest.raises(UserError):
        synth.embedded_root("nope")


def test_cli_synth_and_info(tmp_path, capsys):
    assert data.main(["synth", "--out", str(tmp_path / "d"), "--task", "isp", "--small", "--seed", "2"]) == 0
    assert json.loads((tmp_path / "d" / "MANIFEST.json").read_text())["seed"] == 2
    capsys.readouterr()
    assert data.main(["info", str(tmp_path / "d")]) == 0
    assert "train 14 pairs, val 2 pairs, test 2 pairs" in capsys.readouterr().out
    afile = tmp_path / "afile"
    afile.write_text("x")
    from tflite_isp.core.errors import run_cli

    assert run_cli(data.main, ["synth", "--out", str(afile), "--small"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(afile) in err and err.count("\n") == 1
    assert run_cli(data.main, ["info", str(tmp_path)]) == 2
