"""Quad Bayer (4 x 4 period) packing, masks, levels and phase-true augmentation, exact like the Bayer tests."""
import numpy as np
import pytest

from tflite_isp.raw import bayer, unprocess

rng = np.random.default_rng(1)


def test_quad_names_layout_and_period():
    assert bayer.check_pattern("Quad-rggb") == "quad-RGGB"
    assert bayer.period("quad-GBRG") == 4 and bayer.period("GBRG") == 2
    assert bayer.layout("quad-RGGB") == ("RRGG", "RRGG", "GGBB", "GGBB")
    assert bayer.layout("quad-GRBG") == ("GGRR", "GGRR", "BBGG", "BBGG")
    for name in bayer.PATTERNS + bayer.QUAD_PATTERNS:
        assert bayer.pattern_from_layout(bayer.layout(name)) == name
    with pytest.raises(ValueError, match="4x4 Quad Bayer"):
        bayer.check_pattern("quad-RGBG")


def test_channel_names_follow_the_order_and_reading_order():
    names = bayer.channel_names("quad-RGGB", "mai21")
    assert names == [f"{c}{s}" for c in ("B", "Gr", "R", "Gb") for s in range(4)]
    m = np.arange(64).reshape(8, 8)
    packed = bayer.pack(m, "quad-RGGB", "mai21")
    # B's block is rows 2-3, cols 2-3 of the 4 x 4 repeat: B0 (2,2), B1 (2,3), B2 (3,2), B3 (3,3)
    np.testing.assert_array_equal(packed[..., :4], np.stack([m[2::4, 2::4], m[2::4, 3::4],
                                                             m[3::4, 2::4], m[3::4, 3::4]], -1))


@pytest.mark.parametrize("pattern", bayer.QUAD_PATTERNS)
@pytest.mark.parametrize("order", sorted(bayer.ORDERS))
def test_quad_pack_unpack_round_trip(pattern, order):
    mosaic = rng.integers(0, 2**14, size=(12, 20), dtype=np.uint16)
    packed = bayer.pack(mosaic, pattern, order)
    assert packed.shape == (3, 5, 16)
    np.testing.assert_array_equal(bayer.unpack(packed, pattern, order), mosaic)


@pytest.mark.parametrize("pattern", bayer.QUAD_PATTERNS)
def test_quad_channels_hold_their_colour(pattern):
    mask = bayer.cfa_colour_mask(pattern, 8, 8)
    letters = np.vectorize(lambda c: c[0])(mask)
    assert tuple("".join(r) for r in letters[:4, :4]) == bayer.layout(pattern)
    for order in bayer.ORDERS.values():
        packed = bayer.pack(mask, pattern, order)
        for ch, name in enumerate(bayer.channel_names(pattern, order)):
            assert set(packed[..., ch].ravel()) == {name[:-1]}


def test_quad_levels_expand_per_colour():
    spec = type("Spec", (), {"order": bayer.ORDERS["mai21"], "clip": False})()
    mosaic = np.full((8, 8), 100.0, np.float32)
    black = [10.0, 20.0, 30.0, 40.0]  # per colour in the model's order (B, Gr, R, Gb)
    x = bayer.model_input(mosaic, "quad-RGGB", spec, black, 1000.0)
    assert x.shape == (2, 2, 16)
    np.testing.assert_allclose(x[0, 0], [(100 - b) / (1000 - b) for b in black for _ in range(4)], rtol=1e-6)


def test_quad_mosaic_of_rgb_takes_one_colour_per_site():
    rgb = rng.random((8, 8, 3)).astype(np.float32)
    m = unprocess.mosaic(rgb, "quad-RGGB")
    np.testing.assert_array_equal(m[0:2, 0:2], rgb[0:2, 0:2, 0])
    np.testing.assert_array_equal(m[0:2, 2:4], rgb[0:2, 2:4, 1])
    np.testing.assert_array_equal(m[2:4, 2:4], rgb[2:4, 2:4, 2])
    np.testing.assert_array_equal(unprocess.mosaic(rgb, "GRBG")[0, 0], rgb[0, 0, 1])


@pytest.mark.parametrize("pattern", bayer.QUAD_PATTERNS)
@pytest.mark.parametrize("k", range(8))
def test_quad_augment_keeps_the_pattern_and_alignment(pattern, k):
    mosaic = rng.integers(0, 1024, size=(16, 16)).astype(np.uint16)
    target = np.repeat(mosaic[..., None], 3, axis=-1)
    packed = bayer.pack(mosaic, pattern, "mai21")
    aug_packed, aug_target = bayer.augment_packed(packed, target, k, pattern, "mai21")
    assert aug_packed.shape == (3, 3, 16) and aug_target.shape == (12, 12, 3)
    np.testing.assert_array_equal(bayer.unpack(aug_packed, pattern, "mai21"), aug_target[..., 0])

    # Brute force: the one crop of the transformed mosaic whose colours are the original pattern's.
    moved_mask = np.vectorize(lambda c: c[0])(bayer.dihedral(bayer.cfa_colour_mask(pattern, 16, 16), k))
    want = np.vectorize(lambda c: c[0])(bayer.cfa_colour_mask(pattern, 12, 12))
    crops = [(dy, dx) for dy in range(4) for dx in range(4) if (moved_mask[dy:dy + 12, dx:dx + 12] == want).all()]
    assert crops == [bayer.phase_offset(pattern, k)]
    dy, dx = crops[0]
    np.testing.assert_array_equal(aug_packed, bayer.pack(bayer.dihedral(mosaic, k)[dy:dy + 12, dx:dx + 12],
                                                         pattern, "mai21"))
    colours = bayer.pack(bayer.dihedral(bayer.cfa_colour_mask(pattern, 16, 16), k)[dy:dy + 12, dx:dx + 12],
                         pattern, "mai21")
    for ch, name in enumerate(bayer.channel_names(pattern, "mai21")):
        assert {c[0] for c in colours[..., ch].ravel()} == {name[0]}


def test_quad_tf_and_numpy_agree():
    from tflite_isp.core.tf import tf

    mosaic = rng.integers(0, 1024, size=(20, 20)).astype(np.float32)
    target = rng.random((20, 20, 3)).astype(np.float32)
    for k in range(8):
        m_np, t_np = bayer.augment_mosaic(mosaic, target, k, "quad-GBRG")
        m_tf, t_tf = bayer.augment_mosaic(tf.constant(mosaic), tf.constant(target), k, "quad-GBRG")
        np.testing.assert_array_equal(m_tf.numpy(), m_np)
        np.testing.assert_array_equal(t_tf.numpy(), t_np)
        np.testing.assert_array_equal(bayer.pack(tf.constant(m_np), "quad-GBRG", "mai21").numpy(),
                                      bayer.pack(m_np, "quad-GBRG", "mai21"))
    spec = type("Spec", (), {"order": bayer.ORDERS["mai21"], "clip": True})()
    black = [64.0, 60.0, 62.0, 66.0]
    np.testing.assert_allclose(
        bayer.model_input(tf.constant(mosaic), "quad-GBRG", spec, tf.constant(black), 1023.0).numpy(),
        bayer.model_input(mosaic, "quad-GBRG", spec, black, 1023.0), rtol=1e-6)
