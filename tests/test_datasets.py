"""Dataset layouts, the tf.data pipeline, and every bad-input path of the data layer."""
import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from tflite_isp.core.errors import UserError
from tflite_isp.core.tf import tf
from tflite_isp.data import layouts, pipeline
from tflite_isp.nets import recipes
from tflite_isp.raw import bayer
from tflite_isp.raw import render as render_mod

SMALLNET = recipes.load_recipe("smallnet")
SID = recipes.load_recipe("sid_unet")


def test_mai21_split_and_batches(isp_data):
    split = layouts.open_split("mai21", isp_data, "train")
    assert split.pattern == "RGGB" and split.raw_format == "png" and len(split.pairs) > 10
    x, y = next(iter(pipeline.training_dataset(split, SMALLNET.input, patch=64, batch=3, seed=0)))
    assert x.shape == (3, 32, 32, 4) and y.shape == (3, 64, 64, 3)
    x = x.numpy()
    # MAI convention: x / 1020 with no black level; the simulated sensor's pedestal is 64 DN
    # (read noise takes a few dark photosites below it, as on a real sensor).
    assert 0 <= x.min() and np.median(x) > 64 / 1020 and x.max() <= 1023 / 1020 + 1e-6
    assert 0.0 <= y.numpy().min() and y.numpy().max() <= 1.0


def test_zurich_layout(isp_data, tmp_path):
    root = tmp_path / "zrr"
    for split in ("train", "val"):
        (root / split / "huawei_raw").mkdir(parents=True)
        (root / split / "canon").mkdir(parents=True)
        for i in range(3):
            shutil.copy(isp_data / split / "mediatek_raw" / f"{i}.png", root / split / "huawei_raw" / f"{i}.png")
            rgb = iio.imread(isp_data / split / "fujifilm" / f"{i}.png")
            iio.imwrite(root / split / "canon" / f"{i}.jpg", rgb, quality=95)
    split = layouts.open_split("zurich", root, "val")
    assert len(split.pairs) == 3 and split.pairs[0].target.endswith(".jpg")
    assert layouts.validation_split("zurich", root) == "val"
    x, y = next(iter(pipeline.eval_dataset(split, SMALLNET.input)))
    assert x.shape[-1] == 4 and y.shape[1:3] == (2 * x.shape[1], 2 * x.shape[2])
    (root / "val").rename(root / "test")  # ZRR itself ships train and test only
    assert layouts.validation_split("zurich", root) == "test"


def test_sid_lists_ratios_and_cached_ground_truth(lowlight_data, isolated_cache):
    split = layouts.open_split("sid", lowlight_data, "train")
    assert split.raw_format == "rawpy" and split.pattern == "RGGB"
    assert sorted({p.ratio for p in split.pairs}) == [100.0, 250.0, 300.0]
    assert all(p.black == (512.0,) * 4 and p.white == 16383.0 for p in split.pairs)
    gts = sorted((isolated_cache / "sid_gt").glob("*.png"))
    assert gts and all(p.target in map(str, gts) for p in split.pairs)
    stamp = gts[0].stat().st_mtime_ns
    layouts.open_split("sid", lowlight_data, "train")  # computed once, then reused
    assert gts[0].stat().st_mtime_ns == stamp
    x, y = next(iter(pipeline.training_dataset(split, SID.input, patch=32, batch=2, seed=0)))
    assert x.shape == (2, 16, 16, 4) and 0.0 <= x.numpy().min() and x.numpy().max() <= 1.0


def test_sid_ground_truth_cache_key_follows_the_render_settings(lowlight_data, monkeypatch):
    """Other render settings or another LibRaw render anew; the same ones reuse the cached file."""
    import rawpy

    long = min((lowlight_data / "Sony" / "long").glob("*.dng"))
    default = layouts.sid_ground_truth(long)
    with monkeypatch.context() as m:
        m.setattr(rawpy, "libraw_version", (0, 0, 1))
        assert layouts.sid_ground_truth(long) != default
    assert layouts.sid_ground_truth(long, demosaic="AHD", gamma=(2.222, 4.5)) == default
    linear = layouts.sid_ground_truth(long, gamma=(1.0, 1.0))
    assert linear != default and linear.is_file()
    assert iio.imread(linear).mean() < iio.imread(default).mean()  # a linear rendering is darker than BT.709


def test_sid_ground_truth_of_another_size_is_one_error_naming_the_pair(lowlight_data, tmp_path, monkeypatch):
    """A rendering that does not cover its mosaic (LibRaw cropping two columns) fails when the split opens."""

    root = tmp_path / "sid"
    shutil.copytree(lowlight_data, root)  # other paths: nothing cached yet
    render = render_mod.render_srgb
    monkeypatch.setattr(render_mod, "render_srgb", lambda path, **kw: render(path, **kw)[:, :-2])
    with pytest.raises(UserError) as err:
        layouts.open_split("sid", root, "val")
    short, long = (root / "Sony_val_list.txt").read_text().split()[:2]
    text = str(err.value)
    assert "\n" not in text and Path(short).name in text and Path(long).name in text
    assert "ground truth" in text and "is 126x64 but this mosaic is 128x64" in text


def test_amplified_short_exposure_matches_long_brightness(lowlight_data):
    split = layouts.open_split("sid", lowlight_data, "val")
    from tflite_isp.raw import rawio

    unclipped = recipes.InputSpec(SID.input.order, "file", "file", clip=False)  # clipping at 0 biases the mean
    for pair in split.pairs:
        short = rawio.read_raw(pair.raw)
        long_ = rawio.read_raw(pair.raw.replace("/short/", "/long/").rsplit("_", 1)[0] + "_10s.dng")
        x = pipeline.model_input(short.mosaic.astype(np.float32), short.pattern, unclipped,
                                 np.full(4, 512.0), 16383.0, pair.ratio)
        ref = pipeline.model_input(long_.mosaic.astype(np.float32), long_.pattern, unclipped,
                                   np.full(4, 512.0), 16383.0, 1.0)
        assert abs(x.mean() / ref.mean() - 1) < 0.1


def test_sid_exposure_parsing():
    assert layouts.sid_exposure("10019_00_0.033s.ARW") == 0.033
    assert layouts.sid_ratio("./Sony/short/00001_00_0.04s.ARW", "./Sony/long/00001_00_10s.ARW") == 250
    assert layouts.sid_ratio("00001_00_0.01s.dng", "00001_00_10s.dng") == 300  # capped
    with pytest.raises(ValueError, match="exposure"):
        layouts.sid_exposure("00001_00.dng")


@pytest.mark.parametrize("cache_bytes", [0, pipeline.DEFAULT_CACHE_BYTES], ids=["streamed", "in-memory"])
def test_pipeline_augmentation_keeps_input_and_target_aligned(tmp_path, cache_bytes):
    """Target pixel = its own RAW value: after crops and all 8 transforms, unpacked input == target."""
    root = tmp_path / "probe"
    rng = np.random.default_rng(3)
    for split in ("train",):
        (root / split / "mediatek_raw").mkdir(parents=True)
        (root / split / "fujifilm").mkdir(parents=True)
        for i in range(4):
            raw = rng.integers(0, 65536, size=(40, 40), dtype=np.uint16)
            iio.imwrite(root / split / "mediatek_raw" / f"{i}.png", raw)
            rgb16 = tf.io.encode_png(np.repeat(raw[..., None], 3, -1)).numpy()  # PIL cannot write 48-bit PNG
            (root / split / "fujifilm" / f"{i}.png").write_bytes(rgb16)
    (root / "sensor.json").write_text(json.dumps({"pattern": "GBRG", "black": 0, "white": 65535}))
    spec = recipes.InputSpec(bayer.ORDERS["mai21"], "file", "file", True)
    split = layouts.open_split("mai21", root, "train")
    assert split.decoded_bytes() == 4 * 40 * 40 * (2 + 6)  # 16-bit targets
    ds = pipeline.training_dataset(split, spec, patch=16, batch=1, augment=True, seed=5, cache_bytes=cache_bytes)
    for x, y in ds.take(24):
        mosaic = bayer.unpack(x.numpy()[0], "GBRG", spec.order)
        np.testing.assert_allclose(mosaic, y.numpy()[0, ..., 0], atol=1e-6)


# --- Bad input: one line naming the file and the problem --------------------------------

def _error(fn, *args, **kwargs) -> str:
    with pytest.raises(UserError) as info:
        fn(*args, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_missing_root_and_empty_split(tmp_path):
    assert "dataset root not found" in _error(layouts.open_split, "mai21", tmp_path / "nope", "train")
    (tmp_path / "train" / "mediatek_raw").mkdir(parents=True)
    assert "empty split" in _error(layouts.open_split, "mai21", tmp_path, "train")
    assert "split folder not found" in _error(layouts.open_split, "mai21", tmp_path, "val")
    assert "unknown dataset layout" in _error(layouts.open_split, "nikon", tmp_path, "train")


def test_wrong_bit_depth_odd_size_and_size_mismatch(isp_copy):
    raw_dir, rgb_dir = isp_copy / "train" / "mediatek_raw", isp_copy / "train" / "fujifilm"
    iio.imwrite(raw_dir / "0.png", np.zeros((96, 96), np.uint8))
    msg = _error(layouts.open_split, "mai21", isp_copy, "train")
    assert str(raw_dir / "0.png") in msg and "16-bit" in msg and "8-bit" in msg
    iio.imwrite(raw_dir / "0.png", np.zeros((96, 95), np.uint16))
    assert "odd" in _error(layouts.open_split, "mai21", isp_copy, "train")
    iio.imwrite(raw_dir / "0.png", np.zeros((96, 96), np.uint16))
    iio.imwrite(rgb_dir / "0.png", np.zeros((90, 96, 3), np.uint8))
    msg = _error(layouts.open_split, "mai21", isp_copy, "train")
    assert str(rgb_dir / "0.png") in msg and "96x90" in msg


def test_corrupt_file_fails_or_is_skipped_and_counted(isp_copy):
    victim = isp_copy / "train" / "mediatek_raw" / "2.png"
    victim.write_bytes(victim.read_bytes()[:500])  # truncated download
    msg = _error(layouts.open_split, "mai21", isp_copy, "train")
    assert str(victim) in msg and "truncated" in msg
    split = layouts.open_split("mai21", isp_copy, "train", on_bad="skip")
    assert [s[0] for s in split.skipped] == [str(victim)]
    assert all(p.raw != str(victim) for p in split.pairs)
    assert split.report()["skipped"][0]["reason"].startswith("truncated")


def test_undecodable_raw(lowlight_data, tmp_path):
    root = tmp_path / "sid"
    shutil.copytree(lowlight_data, root)
    first = (root / "Sony_train_list.txt").read_text().split()[0]
    victim = (root / first).resolve()
    victim.write_bytes(b"II*\x00" + b"\x00" * 64)
    msg = _error(layouts.open_split, "sid", root, "train")
    assert str(victim) in msg and "rawpy cannot decode" in msg
    assert "no SID list" in _error(layouts.open_split, "sid", root, "nosuchsplit")


def test_normalisation_mismatch_is_named(lowlight_data):
    split = layouts.open_split("sid", lowlight_data, "val")
    msg = _error(layouts.input_levels, split, SMALLNET.input)
    assert "divides by 1020" in msg and "16383" in msg
