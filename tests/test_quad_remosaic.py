"""The pixel-swap remosaic of Quad Bayer to Bayer (bayer.remosaic_quad), the remosaiced dataset copy, and the
places that render a Quad Bayer mosaic through it (the ratio view)."""
import itertools
import json

import numpy as np
import pytest
from PIL import Image

from tflite_isp.raw import bayer

rng = np.random.default_rng(3)


@pytest.mark.parametrize("pattern", bayer.QUAD_PATTERNS)
def test_remosaic_is_a_same_colour_permutation_moving_at_most_one_pixel(pattern):
    h, w = 8, 12
    index = np.arange(h * w).reshape(h, w)
    out, bayer_pattern = bayer.remosaic_quad(index, pattern)
    assert bayer_pattern == bayer.base_pattern(pattern) and out.shape == (h, w)
    np.testing.assert_array_equal(np.sort(out.ravel()), index.ravel())  # a permutation: nothing made up or lost
    colours_in, colours_out = bayer.cfa_colour_mask(pattern, h, w), bayer.cfa_colour_mask(bayer_pattern, h, w)
    src_y, src_x = np.divmod(out, w)
    dst_y, dst_x = np.indices((h, w))
    np.testing.assert_array_equal(colours_in[src_y, src_x], colours_out)  # Gr and Gb kept apart too
    moved = np.maximum(abs(src_y - dst_y), abs(src_x - dst_x))
    assert moved.max() == 1 and (moved == 0).sum() == h * w // 4
    assert ((src_y != dst_y) & (src_x != dst_x)).sum() == h * w // 4  # the diagonal moves
    assert ((src_y // 4 == dst_y // 4) & (src_x // 4 == dst_x // 4)).all()  # within its own 4 x 4 tile


@pytest.mark.parametrize("pattern", bayer.QUAD_PATTERNS)
def test_remosaic_is_the_nearest_assignment_per_colour(pattern):
    """Brute force: no other same-colour permutation of a tile moves the samples less (sum of squared moves)."""
    out, _ = bayer.remosaic_quad(np.arange(16).reshape(4, 4), pattern)
    quad, target = bayer.cfa_colour_mask(pattern, 4, 4).ravel(), bayer.cfa_colour_mask(
        bayer.base_pattern(pattern), 4, 4).ravel()

    def cost(sources, sites):
        return sum((s // 4 - d // 4) ** 2 + (s % 4 - d % 4) ** 2 for s, d in zip(sources, sites))
    for colour in bayer.COLOURS:
        sites = np.flatnonzero(target == colour)
        best = min(cost(p, sites) for p in itertools.permutations(np.flatnonzero(quad == colour)))
        assert cost(out.ravel()[sites], sites) == best == 4


def test_flat_colour_field_remosaics_exactly():
    rgb = np.array([0.2, 0.5, 0.8], np.float32)
    from tflite_isp.raw import unprocess

    field = np.broadcast_to(rgb, (16, 16, 3))
    for pattern in bayer.QUAD_PATTERNS:
        out, bayer_pattern = bayer.remosaic_quad(unprocess.mosaic(field, pattern), pattern)
        np.testing.assert_array_equal(out, unprocess.mosaic(field, bayer_pattern))
    with pytest.raises(ValueError, match="multiples of 4"):
        bayer.remosaic_quad(np.zeros((6, 8)), "quad-RGGB")
    with pytest.raises(ValueError, match="takes a Quad Bayer mosaic"):
        bayer.remosaic_quad(np.zeros((8, 8)), "RGGB")


def test_remosaic_dataset_copies_a_quad_set_as_bayer(tmp_path):
    from tflite_isp.core.errors import UserError
    from tflite_isp.data import layouts, remosaic

    src = tmp_path / "quad"
    (src / "val" / "mediatek_raw").mkdir(parents=True)
    (src / "val" / "fujifilm").mkdir(parents=True)
    raw = rng.integers(0, 4096, (16, 24)).astype(np.uint16)
    Image.fromarray(raw).save(src / "val" / "mediatek_raw" / "0.png")
    Image.fromarray(np.zeros((16, 24, 3), np.uint8)).save(src / "val" / "fujifilm" / "0.png")
    (src / "sensor.json").write_text(json.dumps({"pattern": "quad-GRBG", "black": [256, 254, 255, 257],
                                                 "white": 4095}))
    out = remosaic.remosaic_dataset(src, tmp_path / "bayer")
    split = layouts.open_split("mai21", out, "val")
    assert split.pattern == "GRBG" and split.pairs[0].black == (256.0, 254.0, 255.0, 257.0)
    with Image.open(out / "val" / "mediatek_raw" / "0.png") as im:
        np.testing.assert_array_equal(np.asarray(im).astype(np.uint16), bayer.remosaic_quad(raw, "quad-GRBG")[0])
    assert (out / "val" / "fujifilm" / "0.png").read_bytes() == (src / "val" / "fujifilm" / "0.png").read_bytes()
    with pytest.raises(UserError, match="already Bayer"):
        remosaic.remosaic_dataset(out, tmp_path / "again")


def test_ratio_view_of_a_quad_mosaic_is_its_remosaic_view():
    from tflite_isp.apps import ratio

    quad = rng.integers(64, 1023, (32, 48)).astype(np.uint16)
    want = ratio.full_rgb(bayer.remosaic_quad(quad, "quad-RGGB")[0], 64, 1023, "RGGB")
    np.testing.assert_allclose(ratio.full_rgb(quad, 64, 1023, "quad-RGGB"), want)
    assert ratio.view(quad, 64, 1023, "quad-RGGB", size=8).shape == (8, 8, 3)
