"""The HTML scoring report: its pure helpers, and the written page opened in a real headless Chromium."""
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from components import missing

from tflite_isp.raw import bayer
from tflite_isp.score import report

REPO = Path(__file__).resolve().parent.parent
BROWSER_TIMEOUT = 60


# ---- pure helpers ----

def test_pareto_front_drops_dominated_points_and_sorts_by_runtime():
    points = [(20.0, 28.0), (5.0, 24.0), (10.0, 23.0), (50.0, 27.5), (10.0, 26.0), (10.0, 25.0)]
    # (10, 23) and (10, 25) lose to (10, 26); (50, 27.5) loses to the faster, better (20, 28)
    assert report.pareto_front(points) == [1, 4, 0]
    assert report.pareto_front([]) == []
    assert report.pareto_front([(3.0, 20.0)]) == [0]


def test_pareto_front_keeps_equal_psnr_only_at_the_lower_runtime():
    assert report.pareto_front([(8.0, 25.0), (4.0, 25.0)]) == [1]


@pytest.mark.parametrize("order", [("B", "Gr", "R", "Gb"), ("R", "Gr", "Gb", "B"), "sid"])
def test_raw_preview_is_twice_the_size_in_range_and_follows_the_channel_order(order):
    names = bayer.check_order(order)
    packed = np.zeros((6, 5, 4), np.float32)
    packed[..., names.index("R")] = 0.3
    preview = report.raw_preview(packed, order)
    assert preview.shape == (12, 10, 3)
    assert preview.min() >= 0 and preview.max() <= 1
    np.testing.assert_allclose(preview[..., 0], 1.0, atol=1e-6)  # the 99th percentile is brightened to 1
    np.testing.assert_array_equal(preview[..., 1:], 0.0)


def test_raw_preview_averages_the_greens_and_upsamples_nearest():
    rng = np.random.default_rng(0)
    packed = rng.uniform(0, 1, (4, 4, 4)).astype(np.float32)
    preview = report.raw_preview(packed, "canonical")  # R, Gr, Gb, B
    assert preview.shape == (8, 8, 3) and preview.min() >= 0 and preview.max() <= 1
    np.testing.assert_array_equal(preview[0::2, 0::2], preview[1::2, 1::2])
    linear = preview[0::2, 0::2] ** 2.2  # undo the gamma; brightening is one common factor
    ratio = linear[..., 1] / ((packed[..., 1] + packed[..., 2]) / 2)
    unclipped = linear.max(axis=-1) < 0.999
    np.testing.assert_allclose(ratio[unclipped], ratio[unclipped].mean(), rtol=1e-3)
    assert report.raw_preview(np.zeros((2, 2, 4)), "mai21").max() == 0  # black stays black, no division by zero


def test_error_map_is_the_mean_absolute_error_over_channels():
    target = np.zeros((3, 4, 3), np.float32)
    output = target.copy()
    output[1, 2] = [0.3, -0.3, 0.0]
    errors = report.error_map(output, target)
    assert errors.shape == (3, 4)
    assert errors[1, 2] == pytest.approx(0.2)
    assert np.count_nonzero(errors) == 1
    with pytest.raises(ValueError):
        report.error_map(output, target[:2])


def test_lint_findings_show_as_a_badge_with_each_rule_on_hover():
    finding = {"severity": "warning", "rule": "npu-resize-slow", "target": "nnapi:30", "message": "slow <resize>"}
    lint = {"errors": 0, "warnings": 2, "findings": [finding, {**finding, "target": "hexagon"}]}
    badge = report.lint_badge(lint)
    assert ">lint: 2 warnings</span>" in badge and 'class="badge below"' in badge
    assert "warning npu-resize-slow (hexagon): slow &lt;resize&gt;" in badge
    error = {**finding, "severity": "error", "rule": "nnapi-int8-transpose-conv"}
    assert 'class="badge fail"' in report.lint_badge({"errors": 1, "warnings": 0, "findings": [error]})
    assert report.lint_badge(None) == report.lint_badge({"errors": 0, "warnings": 0, "findings": []}) == ""


def test_slugs_are_safe_and_unique():
    slugs = report.unique_slugs(["smallnet int8", "smallnet-int8", "../Evil <name>", "LibRaw AHD"])
    assert len(set(slugs.values())) == 4
    assert all(s and all(c.isalnum() or c == "-" for c in s) for s in slugs.values())


# ---- the page in a browser ----

class PageParser(HTMLParser):
    """Collects the body's data attributes, <img> sources and the leaderboard rows of a dumped DOM."""

    def __init__(self):
        super().__init__()
        self.body, self.images, self.rows, self.in_table = {}, [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "body":
            self.body = attrs
        elif tag == "img":
            self.images.append(attrs.get("src"))
        elif tag == "table" and attrs.get("id") == "leaderboard":
            self.in_table = True
        elif tag == "tr" and self.in_table and "data-status" in attrs:
            self.rows.append(attrs)

    def handle_endtag(self, tag):
        if tag == "table":
            self.in_table = False


def make_board() -> dict:
    """A board with a learned model below the baseline, the baseline, and a failed model."""
    per_image = [{"name": "0.png", "psnr": 21.0, "ssim": 0.81}]
    return {
        "format": "tflite_isp.score/1", "created": "2026-11-22T10:00:00+0000",
        "data": {"layout": "mai21", "root": "/data/mai21", "split": "test", "images": 2},
        "headline": "PSNR = mean of per-image PSNR (dB); MAI score = the MAI 2021 formula <with runtime>.",
        "runtime": "local (LiteRT XNNPACK, 2 threads, Full HD input)",
        "rows": [
            {"name": "tiny & net int8", "model": "tinynet", "precision": "int8", "framework": "TFLite (LiteRT)",
             "path": "runs/x/export/int8", "status": "ok", "error": None, "baseline": False, "size_kb": 8.5,
             "macs_g": 9.7, "psnr": 21.0, "psnr_pooled": 20.8, "ssim": 0.81, "runtime_ms": 11.8,
             "runtime_source": "local", "score": 12.3, "per_image": per_image},
            {"name": "LibRaw AHD", "model": "libraw", "precision": "-", "framework": "LibRaw 0.22 (rawpy)",
             "path": None, "status": "ok", "error": None, "baseline": True, "size_kb": None, "macs_g": None,
             "psnr": 22.5, "psnr_pooled": 22.1, "ssim": 0.84, "runtime_ms": 45.0, "runtime_source": "local",
             "score": None, "per_image": per_image},
            {"name": "broken int8", "model": "broken", "precision": "int8", "framework": "TFLite (LiteRT)",
             "path": "x.tflite", "status": "failed", "baseline": False,
             "error": "x.tflite: input shape (1, 256, 256, 3) is not 4-channel packed RAW", "size_kb": None,
             "macs_g": None, "psnr": None, "psnr_pooled": None, "ssim": None, "runtime_ms": None, "score": None},
        ]}


def make_samples(size: int = 64) -> list:
    """Two synthetic samples: a smooth target, a blurred and a noisy output, a RAW preview from a packed RAW."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[0:size, 0:size] / size
    samples = []
    for i in range(2):
        target = np.stack([x, y, 0.5 + 0.5 * np.sin(6 * (x + y + i))], axis=-1).astype(np.float32)
        packed = rng.uniform(0, 0.2, (size // 2, size // 2, 4)).astype(np.float32)
        outputs = {"tiny & net int8": np.clip(target + rng.normal(0, 0.05, target.shape), 0, 1).astype(np.float32),
                   "LibRaw AHD": np.clip(target * 0.8 + 0.05, 0, 1).astype(np.float32)}
        samples.append({"name": f"{i}.png", "raw": report.raw_preview(packed, "mai21"), "target": target,
                        "outputs": outputs})
    return samples


def chromium() -> str:
    """The headless browser binary; fails in CI, skips elsewhere, when it is not installed."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary:
        return binary
    reason = "the report test needs Debian's chromium (apt-get install chromium; ./run.sh test installs it as root)"
    missing(reason)


def run_browser(binary: str, profile: Path, *args) -> subprocess.CompletedProcess:
    """Run headless Chromium (no sandbox: CI runs as root) with a throwaway profile."""
    cmd = [binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=BROWSER_TIMEOUT)
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}):\n{proc.stderr[-3000:]}"
    return proc


def test_report_renders_in_headless_chromium(tmp_path):
    binary = chromium()
    board = make_board()
    page = report.write_report(tmp_path / "score", board, make_samples())
    assert page == tmp_path / "score" / "report.html" and page.is_file()
    assert (tmp_path / "score" / "report" / "pareto.png").is_file()
    assert not list((tmp_path / "score").rglob(".tmp*")), "temporary files left behind"

    dom = run_browser(binary, tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    parsed = PageParser()
    parsed.feed(dom)
    # 1 plot + 1 colour bar + per sample: raw, target, and an output and an error map per model
    assert len(parsed.images) == 2 + 2 * (2 + 2 * 2)
    assert parsed.body.get("data-images-total") == str(len(parsed.images)), dom[-2000:]
    assert parsed.body.get("data-images-loaded") == str(len(parsed.images)), "some images did not load"

    assert [r["data-name"] for r in parsed.rows] == [r["name"] for r in board["rows"]]
    status = {r["data-name"]: r["data-status"] for r in parsed.rows}
    assert status == {"tiny & net int8": "ok", "LibRaw AHD": "ok", "broken int8": "failed"}
    classes = {r["data-name"]: r.get("class", "").split() for r in parsed.rows}
    assert "baseline" in classes["LibRaw AHD"]
    assert "below-baseline" in classes["tiny & net int8"]
    assert "is not 4-channel packed RAW" in dom
    assert "&lt;with runtime&gt;" in dom  # text is escaped, not parsed as markup

    shot = tmp_path / "report.png"
    run_browser(binary, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    artifacts = Path(os.environ.get("TFLITE_ISP_ARTIFACTS") or REPO / "test-artifacts")
    artifacts.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shot, artifacts / "report.png")

    import imageio.v3 as iio

    pixels = iio.imread(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels[..., :3].std() > 10, "the screenshot is (nearly) blank"
