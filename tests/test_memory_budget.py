"""``enhance --max_memory`` is a promise: the peak RSS of a fresh enhance process (VmHWM, read by the parent with
wait4) stays within the budget, for 14-bit DNGs of 3 and 12 MP through a slim SID U-Net INT8 export; a budget that
cannot be met is one error before the frame is decoded; a tile that takes more than planned makes the rest smaller.

Before the fix (plan = RSS after packing the frame + activations as an 'upper bound', no XNNPACK indirection
buffers, full-frame float temporaries when writing), the same runs peaked at: 3 MP --max_memory 300 and 450: 493
MiB (the whole frame as one tile); 12 MP --max_memory 500: 672 MiB (40 tiles of 512); --max_memory 700: 916 MiB
(6 tiles of 1024).
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, make_run

from tflite_isp.apps import enhance, exported, images
from tflite_isp.raw import dng, rawio

XYZ_TO_CAM = [[0.6722, -0.0635, -0.0963], [-0.4287, 1.2460, 0.2028], [-0.0908, 0.2162, 0.5668]]
FRAMES = {"3mp": (1424, 2128), "12mp": (2848, 4256)}  # RAW rows, columns


def write_frame(path, size, black=512, white=16383, level=0.01):
    """A real photo (scikit-image coffee) resized to ``size`` and sampled into a 14-bit RGGB mosaic: a short
    exposure (the signal at ``level`` of the range) that --ratio 100 brings up."""
    from PIL import Image
    from skimage import data

    h, w = size
    rgb = np.asarray(Image.fromarray(data.coffee()).resize((w // 2, h // 2), Image.BILINEAR), np.float64) / 255
    mosaic = np.empty((h, w), np.uint16)
    for (dy, dx), c in {(0, 0): 0, (0, 1): 1, (1, 0): 1, (1, 1): 2}.items():
        mosaic[dy::2, dx::2] = np.round(black + level * rgb[..., c] * (white - black))
    return dng.write_dng(path, mosaic, pattern="RGGB", black=black, white=white, xyz_to_cam=XYZ_TO_CAM,
                         as_shot_neutral=[0.5, 1.0, 0.6])


@pytest.fixture(scope="module")
def slim_sid(tmp_path_factory, lowlight_data):
    """SID U-Net at width 0.25 (random weights: memory does not depend on them), INT8, exported at 64 x 96."""
    from tflite_isp.export import cli as ex

    run = make_run(tmp_path_factory.mktemp("memory") / "sid", "sid_unet", f"sid:{lowlight_data}",
                   width_multiplier=0.25)
    ex.run(ex.ExportConfig(source=str(run), precisions=("int8",), size=(64, 96), calibration_images=2,
                           fidelity_images=0, model_none=False, log=False))
    return run / "export" / "int8"


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("frames")
    return {name: write_frame(root / f"{name}.dng", size) for name, size in FRAMES.items()}


# Started from a small launcher, not from pytest: Linux counts in a child's ru_maxrss the resident size it had
# before exec, which for a child forked from this process (TensorFlow loaded) is this process's ~1 GB.
_LAUNCH = """
import os, subprocess, sys
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(p.pid, 0)
print(usage.ru_maxrss)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def enhance_peak(*args, timeout=600):
    """``python -m tflite_isp.enhance ARGS`` in a fresh interpreter: (exit status, stderr, its peak RSS in MiB:
    ru_maxrss from wait4, i.e. the process's VmHWM)."""
    proc = subprocess.run([sys.executable, "-c", _LAUNCH, sys.executable, "-m", "tflite_isp.enhance",
                           *map(str, args)], check=False, capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    return proc.returncode, proc.stderr, int(proc.stdout.strip().splitlines()[-1]) / 1024


@pytest.mark.parametrize("frame, budget", [("3mp", 300), ("3mp", 450), ("12mp", 500), ("12mp", 700)])
def test_peak_rss_stays_within_max_memory(slim_sid, frames, tmp_path, frame, budget):
    import imageio.v3 as iio

    out = tmp_path / "out.jpg"
    rc, err, peak = enhance_peak(frames[frame], "-o", out, "--model", slim_sid, "--ratio", "100",
                                 "--max_memory", budget)
    assert rc == 0, err
    done = re.search(r"\(\d+x\d+, (\d+) tile\(s\) of (\d+x\d+) margin \d+, .*peak RSS (\d+) MiB.*\)", err)
    assert done, err
    print(f"{frame} --max_memory {budget}: {done[1]} tiles of {done[2]}, peak RSS {peak:.0f} MiB ({done[0]})")
    assert abs(int(done[3]) - peak) <= 2, (done[0], peak)  # the same VmHWM, as enhance itself reads it
    assert peak <= budget, f"peak RSS {peak:.0f} MiB over --max_memory {budget}: {done[0]}"
    planned = re.search(r"planned (\d+) MiB", done[0])
    assert planned and peak <= int(planned[1]) <= budget, done[0]  # the plan is an upper bound, within the budget
    assert "receptive radius" not in err  # the budget still allows exact tiles: not kept by shrinking to slivers
    assert iio.imread(out).shape == (*FRAMES[frame], 3)


def test_budget_below_the_minimum_is_one_line_before_decoding(slim_sid, frames, tmp_path):
    out = tmp_path / "out.jpg"
    rc, err, peak = enhance_peak(frames["12mp"], "-o", out, "--model", slim_sid, "--ratio", "100",
                                 "--max_memory", 200)
    assert rc == 2, err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert "12mp.dng: --max_memory 200 MiB is too small for this 4256x2848 frame" in errors[0]
    assert re.search(r"even \d+x\d+ tiles need ~\d+ MiB \(this process \d+ MiB", errors[0])
    assert not out.exists() and peak < 200  # the 24 MiB mosaic was never decoded


_OVER_PLAN = """
import json, sys
from pathlib import Path
from tflite_isp.apps import enhance, exported, images, memory_plan
planned = memory_plan.tile_bytes
memory_plan.tile_bytes = lambda export, tile: planned(export, tile) // 4  # a runtime taking 4x what the model says
x = exported.load_export(sys.argv[1])
r = enhance.enhance_file(x, Path(sys.argv[2]), Path(sys.argv[3]), ratio=100.0, budget_mb=float(sys.argv[4]),
                         threads=2, png16=False)
print(json.dumps(r))
"""


def test_a_first_tile_over_plan_makes_the_tiles_smaller(slim_sid, frames, tmp_path):
    args = [slim_sid, frames["3mp"], tmp_path / "o.jpg", 300]
    proc = subprocess.run([sys.executable, "-c", _OVER_PLAN, *map(str, args)], check=False, capture_output=True,
                          text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(r["replans"]) >= 1, r
    first = r["replans"][0]
    assert first["tile"] == [720, 1072] and first["measured_mb"] > 2 * first["planned_mb"]  # the whole frame at once
    assert r["tile"][0] * r["tile"][1] < 720 * 1072 and r["estimated_mb"] <= 300
    assert (tmp_path / "o.jpg").is_file()


# --- The lean buffers give the same values -------------------------------------------------------------------------

def test_model_input_by_bands_equals_the_whole_frame_expression(slim_sid, monkeypatch):
    import dataclasses

    from tflite_isp.data import layouts
    from tflite_isp.raw import bayer

    x = exported.load_export(slim_sid)
    rng = np.random.default_rng(0)
    mosaic = rng.integers(400, 16383, (138, 202)).astype(np.uint16)
    frame = rawio.RawFrame(mosaic, "RGGB", (512.0, 510.0, 514.0, 508.0), 16383.0, (2.0, 1.0, 1.0, 1.6), "f.dng")
    monkeypatch.setattr(images, "CHUNK_BYTES", 101 * 4 * 8 * 4)  # bands of 4 packed rows, the last one short
    black, white = layouts.file_levels(x.spec, frame.black, frame.white, frame.path)
    whole = np.asarray(bayer.model_input(mosaic, "RGGB", x.spec, black, white, 100.0), np.float32)
    np.testing.assert_array_equal(enhance.model_input(x, frame, 100.0), whole)
    in_graph = dataclasses.replace(x, levels={"black": 512, "white": 16383})
    np.testing.assert_array_equal(enhance.model_input(in_graph, frame, 1.0),
                                  bayer.pack(mosaic, "RGGB", x.spec.order).astype(np.float32))


def test_png16_by_bands_is_the_one_shot_stream(tmp_path, monkeypatch):
    import struct
    import zlib

    rgb = np.random.default_rng(1).random((61, 37, 3)).astype(np.float32)
    monkeypatch.setattr(images, "CHUNK_BYTES", 37 * 3 * 4 * 5)  # five rows a band
    data = images.write_png16(tmp_path / "a.png", rgb).read_bytes()
    ref = images.png16_bytes(np.round(rgb * 65535).astype(np.uint16))

    def chunks(b):
        i, out = 8, []
        while i < len(b):
            (n,) = struct.unpack(">I", b[i:i + 4])
            kind, body = b[i + 4:i + 8], b[i + 8:i + 8 + n]
            assert struct.unpack(">I", b[i + 8 + n:i + 12 + n])[0] == zlib.crc32(kind + body)
            out.append((kind, body))
            i += 12 + n
        return out

    ours, one = chunks(data), chunks(ref)
    assert data[:8] == ref[:8] and ours[0] == one[0] and ours[-1] == one[-1] == (b"IEND", b"")
    assert [k for k, _ in ours].count(b"IDAT") > 1
    assert b"".join(v for k, v in ours if k == b"IDAT") == b"".join(v for k, v in one if k == b"IDAT")


def test_to_uint8_by_bands(monkeypatch):
    rgb = np.random.default_rng(2).random((50, 31, 3)).astype(np.float32)
    monkeypatch.setattr(images, "CHUNK_BYTES", 31 * 3 * 4 * 7)
    np.testing.assert_array_equal(images.to_uint8(rgb), np.round(rgb * 255).astype(np.uint8))


def test_quantise_in_place_gives_the_plain_expression():
    from tflite_isp.run.litert import _dequantise, _quantise

    rng = np.random.default_rng(3)
    for scale, zero in ((0.0039215, -128), (0.013, 3), (1 / 255, 0)):
        x = rng.normal(0.5, 0.7, (1, 9, 11, 4)).astype(np.float32)
        detail = {"dtype": np.int8, "quantization": (scale, zero)}
        np.testing.assert_array_equal(_quantise(x, detail),
                                      np.clip(np.round(x / scale + zero), -128, 127).astype(np.int8))
        y = rng.integers(-128, 128, (1, 18, 22, 3)).astype(np.int8)
        np.testing.assert_array_equal(_dequantise(y, detail), ((y.astype(np.float32) - zero) * scale))
