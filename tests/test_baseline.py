"""The classical-ISP baseline (LibRaw AHD on the same RAW inputs): sizes, quality floors, ratio, WB, errors, timing.

Quality floors were set from measurements on these fixtures (rawpy 0.28.0 / LibRaw 0.22.2):

* ISP (mai21, 3 test crops of 96 px): mean PSNR 17.6 dB, chroma correlation 0.57. Broken on
  purpose: WB inverted 7.5 dB / 0.14, no WB 11.4 dB, linear gamma 9.5 dB, wrong CFA phase
  (BGGR, GRBG, GBRG) 16.2-16.4 dB but chroma correlation -0.43 to -0.10. PSNR alone cannot see
  a phase error here (gray-world rebalances the swapped channels), the hue direction can.
* Low light (sid, 3 pairs at x100/250/300): mean PSNR 22.8 dB. Broken: WB inverted 9.4 dB, no
  WB 13.7 dB, wrong CFA 12.0 dB, no exposure ratio 7.7 dB, linear gamma 14.9 dB.
"""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tflite_isp.core.errors import UserError
from tflite_isp.data import layouts
from tflite_isp.raw import bayer, render
from tflite_isp.score import baseline

ISP_PSNR_FLOOR = 15.0
ISP_CHROMA_FLOOR = 0.3
SID_PSNR_FLOOR = 18.0


def _target(pair) -> np.ndarray:
    """The target as training decodes it (imageio/Pillow would drop 16-bit RGB PNGs to 8 bits)."""
    from tflite_isp.data.pipeline import decode_target

    return decode_target(pair.target).numpy()


def _psnr(a, b) -> float:
    return float(10 * np.log10(1.0 / np.mean((np.clip(a, 0, 1) - b) ** 2)))


def _chroma_correlation(a, b) -> float:
    """Mean Pearson correlation of the (R - G) and (B - G) planes: is each hue pushed the right way?"""
    def planes(x):
        return (x[..., 0] - x[..., 1]).ravel(), (x[..., 2] - x[..., 1]).ravel()

    return float(np.mean([np.corrcoef(u, v)[0, 1] for u, v in zip(planes(a), planes(b))]))


def _bt709_linear(v):
    """Undo LibRaw's default BT.709 curve (2.222, 4.5)."""
    return np.where(v < 0.081, v / 4.5, ((v + 0.099) / 1.099) ** (1 / 0.45))


@pytest.fixture(scope="module")
def isp_split(isp_data):
    return layouts.open_split("mai21", isp_data, "test")


@pytest.fixture(scope="module")
def sid_split(lowlight_data):
    return layouts.open_split("sid", lowlight_data, "test")


def test_isp_baseline_sizes_and_quality(isp_split):
    psnrs, chroma = [], []
    for pair in isp_split.pairs:
        out, target = baseline.render(pair, isp_split), _target(pair)
        assert out.dtype == np.float32 and out.shape == target.shape == (*pair.shape, 3)
        assert 0.0 <= out.min() and out.max() <= 1.0
        psnrs.append(_psnr(out, target))
        chroma.append(_chroma_correlation(out, target))
    assert np.mean(psnrs) > ISP_PSNR_FLOOR, psnrs
    assert np.mean(chroma) > ISP_CHROMA_FLOOR, chroma


def test_lowlight_baseline_sizes_and_quality(sid_split):
    psnrs = []
    for pair in sid_split.pairs:
        out, target = baseline.render(pair, sid_split), _target(pair)
        assert out.shape == target.shape == (*pair.shape, 3)
        psnrs.append(_psnr(out, target))
    assert np.mean(psnrs) > SID_PSNR_FLOOR, psnrs


def test_exposure_ratio_multiplies_linear_brightness(sid_split):
    for pair in sid_split.pairs:
        bright = _bt709_linear(baseline.render(pair, sid_split)).mean()
        dark = _bt709_linear(baseline.render(replace(pair, ratio=1.0), sid_split)).mean()
        assert bright / dark == pytest.approx(pair.ratio, rel=0.1)  # measured within 2 % (a few pixels clip)


def test_rewritten_dng_renders_like_the_file(lowlight_data, sid_split):
    """The DNG the baseline writes carries the file's levels, WB and colour matrix: ratio 1 = the GT recipe."""
    long = sorted((Path(lowlight_data) / "Sony" / "long").glob("1*.dng"))[0]
    ours = baseline.render(layouts.Pair(str(long), "", 1.0), sid_split)
    assert _psnr(ours, render.render_srgb(long)) > 60.0  # measured 82-122 dB (AHD flips a few edge pixels)


@pytest.mark.parametrize("pattern", bayer.PATTERNS)
def test_gray_world_recovers_known_gains(pattern):
    rng = np.random.default_rng(0)
    gray = np.kron(rng.uniform(50, 800, (16, 24)), np.ones((2, 2)))  # one gray level per 2x2 CFA tile
    response = {"R": 1 / 2.1, "Gr": 1.0, "Gb": 1.0, "B": 1 / 1.7}  # camera sees a gray as (0.48, 1, 0.59)
    black = (60.0, 64.0, 62.0, 66.0)
    mosaic = np.zeros(gray.shape)
    for colour, (dy, dx) in bayer.colour_positions(pattern).items():
        level = black[bayer.COLOURS.index(colour)]
        mosaic[dy::2, dx::2] = level + gray[dy::2, dx::2] * response[colour]
    neutral = baseline.gray_world_neutral(np.round(mosaic).astype(np.uint16), pattern, black)
    assert neutral == pytest.approx((1 / 2.1, 1.0, 1 / 1.7), rel=2e-3)


def test_levels_guessed_without_sensor_json(isp_copy):
    assert baseline.guess_white(np.array([[1000]])) == 1023 and baseline.guess_white(np.array([[1024]])) == 2047
    (isp_copy / "sensor.json").unlink()
    split = layouts.open_split("mai21", isp_copy, "test")
    text = baseline.Baseline().describe(split)
    assert "sRGB primaries" in text and "guessed" in text and "gray-world WB" in text
    pair = split.pairs[0]
    out = baseline.render(pair, split)
    assert out.shape == (*pair.shape, 3) and _psnr(out, _target(pair)) > 12.0  # measured 15.2 dB mean


def test_png_mosaic_read_as_training_reads_it(isp_split):
    from tflite_isp.data import pipeline

    pair = isp_split.pairs[0]
    mosaic, _ = pipeline.read_pair(isp_split, pair)
    np.testing.assert_array_equal(baseline.read_bayer_png(pair.raw), mosaic)


def test_describe_says_what_was_used(isp_split, sid_split):
    isp = baseline.Baseline().describe(isp_split)
    sid = baseline.Baseline().describe(sid_split)
    assert isp.startswith(f"LibRaw {baseline.libraw_version()} AHD") and "gray-world WB" in isp and "sRGB gamma" in isp
    assert "sensor.json" in isp
    assert "camera WB" in sid and "BT.709" in sid and "ratio" in sid


def test_unreadable_files_name_the_path(isp_split, sid_split, tmp_path):
    bad_png = tmp_path / "0.png"
    bad_png.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    for path, split in [(bad_png, isp_split), (tmp_path / "missing.png", isp_split)]:
        with pytest.raises(UserError, match=str(path)):
            baseline.render(replace(split.pairs[0], raw=str(path)), split)
    bad_dng = tmp_path / "short.dng"
    bad_dng.write_bytes(Path(sid_split.pairs[0].raw).read_bytes()[:300])
    with pytest.raises(UserError, match=str(bad_dng)):
        baseline.render(replace(sid_split.pairs[0], raw=str(bad_dng)), sid_split)


def test_tiling_keeps_the_cfa_phase():
    mosaic = np.zeros((6, 10), np.uint16)
    for value, (dy, dx) in enumerate(bayer.colour_positions("GRBG").values(), start=1):
        mosaic[dy::2, dx::2] = value
    big = baseline.tile_to(mosaic, (1088, 1920))
    assert big.shape == (1088, 1920)
    np.testing.assert_array_equal(big, np.tile(mosaic[:2, :2], (544, 960)))


def test_time_full_hd(isp_split, sid_split):
    for split in (isp_split, sid_split):
        timing = baseline.time_full_hd(split.pairs[0], split, repeats=2)
        assert timing["size"] == [1088, 1920] and timing["repeats"] == 2
        assert 0 < timing["median_ms"] <= timing["p95_ms"] and "LibRaw" in timing["note"]
