"""Sensor profiles: what training data must match for one camera (CFA, levels, colour, white balance, noise).

A profile is a JSON file (``data profile`` writes one from the camera's RAW files); the two embedded datasets are
built-in profiles (``mai21-10bit``, ``sony-a7s2``). Synthesis reads everything camera-specific from here.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tflite_isp.core import atomic
from tflite_isp.core.errors import UserError, fail
from tflite_isp.raw import bayer, calibrate
from tflite_isp.raw import unprocess as up

FORMAT = "tflite_isp.sensor/1"


@dataclass(frozen=True)
class SensorProfile:
    """One camera's sensor as training-data synthesis needs it."""

    name: str
    pattern: str  # a Bayer pattern ("RGGB") or a Quad Bayer one ("quad-RGGB")
    black: tuple  # per colour, bayer.COLOURS order (R, Gr, Gb, B)
    white: float
    xyz_to_cam: tuple  # XYZ(D65) -> camera, 3 x 3 rows (DNG ColorMatrix1 / LibRaw's table)
    noise: dict  # {"model": "brooks"} or {"model": "eld", k_min, k_max, g_scale, r_scale, per_iso, ...}; "source"
    red_gain: tuple = (1.9, 2.4)  # range of the as-shot white balance gains (1 / neutral), green = 1
    blue_gain: tuple = (1.5, 1.9)
    make: str = ""
    model: str = ""
    forward_matrix: tuple | None = None  # DNG ForwardMatrix1 where the files carry it (recorded, not used)
    orientation: int = 1
    size: tuple = ()  # (rows, cols) of the profiled files' visible mosaic
    files: tuple = ()  # the files it was made from
    notes: tuple = field(default=())

    @property
    def bit_depth(self) -> int:
        return int(np.ceil(np.log2(float(self.white) + 1.0)))

    @property
    def black_level(self):
        """The black level as files write it: one number when every colour shares it, else (R, Gr, Gb, B)."""
        return self.black[0] if len(set(self.black)) == 1 else list(self.black)

    @property
    def rgb_to_cam(self) -> np.ndarray:
        return up.rgb_to_cam(self.xyz_to_cam)

    def to_dict(self) -> dict:
        d = asdict(self)
        return {"format": FORMAT, **d, "bit_depth": self.bit_depth}


def from_dict(d: dict, source="sensor profile") -> SensorProfile:
    """Validate a profile's JSON; any problem is one line naming ``source``."""
    try:
        if d.get("format", FORMAT) != FORMAT:
            raise ValueError(f"format {d.get('format')!r} is not {FORMAT}")
        black = tuple(float(b) for b in np.broadcast_to(np.asarray(d["black"], np.float64), (4,)))
        prof = SensorProfile(
            name=str(d["name"]), pattern=bayer.check_pattern(d["pattern"]), black=black, white=float(d["white"]),
            xyz_to_cam=tuple(tuple(float(v) for v in row) for row in np.asarray(d["xyz_to_cam"], float).reshape(3, 3)),
            noise=dict(d["noise"]), red_gain=_range(d.get("red_gain", (1.9, 2.4)), "red_gain"),
            blue_gain=_range(d.get("blue_gain", (1.5, 1.9)), "blue_gain"), make=str(d.get("make", "")),
            model=str(d.get("model", "")), orientation=int(d.get("orientation", 1)),
            forward_matrix=(tuple(map(tuple, np.asarray(d["forward_matrix"], float).reshape(3, 3).tolist()))
                            if d.get("forward_matrix") else None),
            size=tuple(d.get("size", ())), files=tuple(d.get("files", ())), notes=tuple(d.get("notes", ())))
        if not 0 < prof.white <= 65535 or max(prof.black) >= prof.white:
            raise ValueError(f"levels black {list(prof.black)} / white {prof.white:g} are not a usable range")
        if prof.noise.get("model") not in ("brooks", "eld"):
            raise ValueError(f"noise.model must be \"brooks\" or \"eld\", not {prof.noise.get('model')!r}")
        if prof.noise["model"] == "eld":
            eld_camera(prof)
        return prof
    except (KeyError, ValueError, TypeError) as err:
        raise fail(source, f"invalid sensor profile ({type(err).__name__}: {err})") from None


def _range(value, name) -> tuple:
    lo, hi = (float(v) for v in value)
    if not 0 < lo <= hi:
        raise ValueError(f"{name} must be a range 0 < lo <= hi, got {list(value)}")
    return lo, hi


def eld_camera(profile: SensorProfile) -> up.EldCamera:
    """The profile's noise as ELD's log-linear lines (K range, read and row sigma against K)."""
    n = profile.noise
    return up.EldCamera(float(n["k_min"]), float(n["k_max"]), tuple(map(float, n["g_scale"])),
                        tuple(map(float, n["r_scale"])))


# --- Built-in profiles: the embedded datasets' sensors ------------------------------------

BUILTIN = {
    "mai21-10bit": dict(
        name="mai21-10bit", pattern="RGGB", black=[64] * 4, white=1023, xyz_to_cam=up.DND_XYZ_TO_CAM[0].tolist(),
        noise={"model": "brooks", "source": "Brooks et al. 2019 random shot/read levels"},
        make="tflite_isp", model="MAI21-like 10-bit (synthetic)",
        notes=["the embedded isp set's sensor: Brooks' DND camera #1 colour, 10-bit RGGB"]),
    "sony-a7s2": dict(
        name="sony-a7s2", pattern="RGGB", black=[512] * 4, white=16383, xyz_to_cam=up.SONY_A7S2_XYZ_TO_CAM.tolist(),
        noise={"model": "eld", "source": "ELD release calibration, SonyA7S2_params.npy (Wei et al. 2020)",
               "k_min": up.SONY_A7S2.k_min, "k_max": up.SONY_A7S2.k_max,
               "g_scale": list(up.SONY_A7S2.g_scale), "r_scale": list(up.SONY_A7S2.r_scale)},
        make="SONY", model="ILCE-7SM2 (tflite_isp synthetic)",
        notes=["the embedded lowlight set's camera: SID's Sony A7S II levels and dcraw colour matrix"]),
    "example-12bit": dict(
        name="example-12bit", pattern="GRBG", black=[256, 254, 255, 257], white=4095,
        xyz_to_cam=(np.array([[4716, 603, -830], [-7798, 15474, 2480], [-1496, 1937, 6651]]) / 10000.0).tolist(),
        noise={"model": "eld", "source": "example values on ELD's log-lines", "k_min": 0.2, "k_max": 3.2,
               "g_scale": [0.35, 0.9, 0.05], "r_scale": [0.35, -1.2, 0.05],
               "per_iso": [{"iso": 100, "K": 0.2}, {"iso": 400, "K": 0.8}, {"iso": 1600, "K": 3.2}]},
        red_gain=(1.7, 2.3), blue_gain=(1.3, 1.9), make="tflite_isp", model="example 12-bit GRBG",
        notes=["unlike both embedded sensors: 12-bit GRBG, per-colour black, the Canon EOS 5D Mark II's "
               "dcraw colour matrix, an example noise table; for tests and the README walk-through"]),
}


def builtin(name: str) -> SensorProfile:
    if name not in BUILTIN:
        raise UserError(f"unknown built-in sensor {name!r}; built-in: {', '.join(sorted(BUILTIN))}")
    return from_dict(BUILTIN[name], f"built-in sensor {name}")


def load(name_or_path) -> SensorProfile:
    """A built-in profile by name, or a profile JSON file."""
    text = str(name_or_path)
    if text in BUILTIN:
        return builtin(text)
    path = Path(text)
    if not path.is_file():
        raise fail(path, f"no such sensor profile (built-in: {', '.join(sorted(BUILTIN))})")
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise fail(path, f"not a JSON sensor profile ({err})") from None
    if not isinstance(data, dict):
        raise fail(path, "not a JSON sensor profile (expected an object)")
    return from_dict(data, path)


def save(profile: SensorProfile, path) -> Path:
    """Write the profile as JSON, atomically."""
    path = Path(path)
    if not path.parent.is_dir():
        raise fail(path.parent, "no such folder to write the sensor profile into")
    atomic.write_text(path, json.dumps(profile.to_dict(), indent=1) + "\n")
    return path


# --- Drawing one shot's settings -----------------------------------------------------------

def draw_gains(profile: SensorProfile, rng: np.random.Generator) -> tuple:
    """(rgb_gain, red_gain, blue_gain) for one shot: Brooks' brightness, the profile's white-balance spread."""
    rgb_gain = 1.0 / rng.normal(0.8, 0.1)
    return rgb_gain, rng.uniform(*profile.red_gain), rng.uniform(*profile.blue_gain)


def draw_noise(profile: SensorProfile, rng: np.random.Generator, isos=None) -> dict:
    """One shot's noise: ELD's K, read and row sigma (DN) at a random ISO of ``isos`` (default: the profile's K
    range), or Brooks' (shot, read) variances on [0, 1] for a ``brooks`` profile."""
    if profile.noise["model"] == "brooks":
        if isos:
            raise UserError(f"sensor {profile.name}: --iso needs calibrated noise (K per ISO), not Brooks' levels")
        shot, read = up.brooks_noise_levels(rng)
        return {"shot": shot, "read": read}
    camera = eld_camera(profile)
    if not isos:
        return up.sample_eld_noise(rng, camera)
    iso = float(rng.choice(np.asarray(isos, float)))
    k = iso_gain(profile, iso)
    measured = next((r for r in profile.noise.get("per_iso", ()) if r.get("iso") == iso), {})
    sigma = {name: measured.get(name) or float(np.exp(line[0] * np.log(k) + line[1]))  # the ISO's own, else ELD's line
             for name, line in (("read_sigma", camera.g_scale), ("row_sigma", camera.r_scale))}
    return {"K": k, "iso": iso, **sigma}


def iso_gain(profile: SensorProfile, iso: float) -> float:
    """System gain K (DN/e-) at ``iso``: the calibrated value, else scaled from the nearest calibrated ISO (K is
    proportional to analogue gain); without a per-ISO table ELD's K_min is taken as ISO 100 (as :func:`gain_iso`)."""
    table = [row for row in profile.noise.get("per_iso", ()) if row.get("iso")]
    if not table:
        return float(profile.noise["k_min"]) * iso / 100.0
    nearest = min(table, key=lambda row: abs(np.log(float(row["iso"]) / iso)))
    return float(nearest["K"]) * iso / float(nearest["iso"])


def gain_iso(profile: SensorProfile, k: float) -> int:
    """The ISO label of system gain K (inverse of :func:`iso_gain`; ELD's K_min as ISO 100 without a table)."""
    table = [row for row in profile.noise.get("per_iso", ()) if row.get("iso")]
    if not table:
        return int(round(100.0 * k / float(profile.noise.get("k_min", k))))
    nearest = min(table, key=lambda row: abs(np.log(float(row["K"]) / k)))
    return int(round(float(nearest["iso"]) * k / float(nearest["K"])))


# --- One shot as the sensor records it ------------------------------------------------------

def black_mosaic(profile: SensorProfile, shape) -> np.ndarray:
    """The profile's per-colour black level under each photosite of an H x W mosaic."""
    mask = bayer.cfa_colour_mask(profile.pattern, *shape)
    out = np.zeros(shape, np.float64)
    for colour, level in zip(bayer.COLOURS, profile.black):
        out[np.char.startswith(mask, colour)] = level
    return out


def capture(clean, profile: SensorProfile, noise: dict, rng, ratio: float = 1.0):
    """A clean linear mosaic in [0, 1] as the sensor records it (uint16 DN with the black pedestal): Brooks'
    Gaussian noise on [0, 1] for a ``brooks`` profile, ELD's Poisson + read + row noise in DN for an ``eld`` one,
    the exposure ``ratio`` times shorter."""
    black = profile.black[0] if len(set(profile.black)) == 1 else black_mosaic(profile, clean.shape)
    if "shot" in noise:
        noisy = up.add_heteroscedastic_noise(clean / ratio, noise["shot"], noise["read"], rng)
        return up.to_dn(noisy, black, profile.white)
    span = profile.white - np.asarray(black, np.float64)
    return up.lowlight_capture(clean * span, ratio, rng, noise=noise, black=black, white=int(profile.white))


def noise_profile_tag(profile: SensorProfile, noise: dict):
    """DNG NoiseProfile (S, O) of one ELD shot: variance = S * x + O on x in [0, 1] (row noise left out)."""
    if "K" not in noise:
        return None
    span = profile.white - float(np.mean(profile.black))
    return [noise["K"] / span, (noise["read_sigma"] / span) ** 2]


def eld_noise(result: dict) -> dict:
    """A calibration result (:mod:`raw.calibrate`: per-ISO table and ELD lines) as a profile's ``eld`` noise."""
    try:
        camera = calibrate.eld_camera(result)
    except ValueError as err:
        raise UserError(f"the noise calibration cannot be used: {err}") from None
    per_iso = [{"iso": None if e.get("iso") in (None, "unknown") else float(e["iso"]), "K": float(e["K"]),
                "read_sigma": e.get("read_sigma"), "row_sigma": e.get("row_sigma")}
               for e in result["isos"] if e.get("K")]
    return {"model": "eld", "source": result["source"], "k_min": camera.k_min, "k_max": camera.k_max,
            "g_scale": list(camera.g_scale), "r_scale": list(camera.r_scale), "per_iso": per_iso,
            "note": result.get("lines", {}).get("note", "")}


def with_noise(profile: SensorProfile, result: dict) -> SensorProfile:
    """The profile with the noise a calibration measured (validated like a loaded profile)."""
    d = profile.to_dict()
    d["noise"] = eld_noise(result)
    return from_dict(d, f"sensor {profile.name} with calibrated noise")


def summary(profile: SensorProfile) -> str:
    """A few lines for people: CFA, levels, white balance, noise."""
    n, camera = profile.noise, f"{profile.make} {profile.model}".strip()
    if n["model"] == "eld":
        isos = [row["iso"] for row in n.get("per_iso", ()) if row.get("iso")]
        noise = (f"ELD K {n['k_min']:.3g}..{n['k_max']:.3g} DN/e-"
                 + (f" at ISO {', '.join(f'{i:g}' for i in isos)}" if isos else "") + f" ({n.get('source', '')})")
    else:
        noise = n.get("source", "Brooks")
    return "\n".join([
        f"sensor {profile.name}" + ("" if camera in ("", profile.name) else f": {camera}"),
        f"  CFA {profile.pattern}, {profile.bit_depth}-bit, black {'/'.join(f'{b:g}' for b in profile.black)}, "
        f"white {profile.white:g}" + (f", {profile.size[1]}x{profile.size[0]}" if profile.size else ""),
        f"  white balance: red gain {profile.red_gain[0]:.3f}..{profile.red_gain[1]:.3f}, "
        f"blue gain {profile.blue_gain[0]:.3f}..{profile.blue_gain[1]:.3f}",
        f"  noise: {noise}",
        *(f"  note: {note}" for note in profile.notes),
    ])
