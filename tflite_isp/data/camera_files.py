"""A camera's own files, synthesised from a sensor profile: shots, dark frames and flat fields as DNGs.

What a user brings to ``data profile`` and ``data calibrate``; here it stands in for a real camera (no camera RAW
ships in any package the registries carry), and for the README's walk-through.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from tflite_isp.core.errors import UserError
from tflite_isp.data.photos import bundled, random_crop
from tflite_isp.data.synth import VERSION, _progress, _rng, _write_json, _write_png, staging
from tflite_isp.raw import sensor
from tflite_isp.raw import unprocess as up
from tflite_isp.raw.dng import write_dng


def write_shot(path, srgb, profile: sensor.SensorProfile, rng: np.random.Generator, *, iso=None,
               exposure_time: float = 0.01) -> Path:
    """One photo as the profiled camera would record it, as a DNG (its NoiseProfile, ISO and as-shot white balance
    in the tags): what a user's own camera file looks like when no real one is at hand."""
    gains = sensor.draw_gains(profile, rng)
    clean = up.mosaic(up.unprocess(np.asarray(srgb, np.float32), profile.rgb_to_cam, gains), profile.pattern)
    noise = sensor.draw_noise(profile, rng, [iso] if iso else None)
    mosaic = sensor.capture(clean, profile, noise, rng)
    if "K" in noise:
        iso = int(noise.get("iso") or sensor.gain_iso(profile, noise["K"]))
    return write_dng(path, mosaic, pattern=profile.pattern, black=profile.black_level, white=int(profile.white),
                     xyz_to_cam=profile.xyz_to_cam, as_shot_neutral=[1.0 / gains[1], 1.0, 1.0 / gains[2]],
                     make=profile.make, model=profile.model, iso=iso, exposure_time=exposure_time,
                     orientation=profile.orientation, noise_profile=sensor.noise_profile_tag(profile, noise))


def calibration_isos(profile: sensor.SensorProfile, isos=None) -> list:
    """The ISOs to shoot at: ``isos``, else the profile's calibrated ones, else its K range's two ends."""
    if isos:
        return [float(i) for i in isos]
    table = [float(row["iso"]) for row in profile.noise.get("per_iso", ()) if row.get("iso")]
    if table:
        return table
    camera = sensor.eld_camera(profile)
    return [float(sensor.gain_iso(profile, camera.k_min)), float(sensor.gain_iso(profile, camera.k_max))]


def flat_level_frame(profile, shape, level: float, noise: dict, rng) -> np.ndarray:
    """A flat field exposed to ``level`` of the sensor's range (a white-balanced grey card), with its noise."""
    return sensor.capture(np.full(shape, level, np.float64), profile, noise, rng)


def make_camera(out_dir, *, profile, seed: int = 0, small: bool = False, isos=None, shots=None) -> Path:
    """Write ``shots/`` (test-split photos as the camera records them), ``dark/`` (2 per ISO) and ``flat/`` (pairs
    at 5 exposure levels per ISO) DNGs from a profile: a stand-in for a user's own camera files. ``truth/`` holds
    each shot's source photo, the ground truth that only a synthetic camera has."""
    if profile.noise["model"] != "eld":
        raise UserError(f"sensor {profile.name}: camera files need a calibrated noise model (K, read, row)")
    frame = (96, 128) if small else (384, 512)
    isos = calibration_isos(profile, isos)
    test = [p for p in bundled() if p.split == "test"]
    with staging(out_dir) as tmp:
        for sub in ("shots", "truth", "dark", "flat"):
            (tmp / sub).mkdir()
        for item in range(shots or (2 if small else 4)):
            rng = _rng(seed, "camera", 0, item)
            photo = test[item % len(test)]
            crop = random_crop(photo.load(), frame, photo.jpeg, rng)
            write_shot(tmp / "shots" / f"shot{item:02d}.dng", crop, profile, rng, iso=float(rng.choice(isos)))
            _write_png(tmp / "truth" / f"shot{item:02d}.png", np.round(crop * 255.0).astype(np.uint8))
        meta = dict(pattern=profile.pattern, white=int(profile.white), xyz_to_cam=profile.xyz_to_cam,
                    as_shot_neutral=[0.5, 1.0, 0.6], make=profile.make, model=profile.model,
                    black=profile.black_level)
        for i, iso in enumerate(isos):
            rng = _rng(seed, "camera", 1, i)
            noise = sensor.draw_noise(profile, rng, [iso])
            for n in range(2):
                write_dng(tmp / "dark" / f"iso{iso:g}_{n}.dng", flat_level_frame(profile, frame, 0.0, noise, rng),
                          iso=int(iso), exposure_time=0.01, **meta)
            for level in (0.02, 0.05, 0.1, 0.2, 0.4):
                for n in range(2):
                    write_dng(tmp / "flat" / f"iso{iso:g}_{level:g}_{n}.dng",
                              flat_level_frame(profile, frame, level, noise, rng),
                              iso=int(iso), exposure_time=level, **meta)
            _progress(f"synth camera: ISO {iso:g}: 2 dark, 10 flat frames")
        _write_json(tmp / "MANIFEST.json", {"task": "camera", "generator": f"tflite_isp.synth {VERSION}",
                                            "seed": seed, "sensor": profile.to_dict(), "isos": isos,
                                            "frame": list(frame)})
    return Path(out_dir)
