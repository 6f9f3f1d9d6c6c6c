"""Parse NVIDIA Jetson ``tegrastats`` lines (TX/Nano to Orin and Thor) into numbers, and summarise a run's lines.

Formats seen (rbonghi/jetson_stats ``tegra_parse.py``; JetPack 7 lines): an optional ``MM-DD-YYYY HH:MM:SS``
prefix; ``RAM used/totalMB (lfb NxSMB)``; ``SWAP used/totalMB (cached CMB)``; ``CPU [load%@MHz,...|off]`` or
``CPU [load%,...]@MHz``; ``EMC_FREQ x%[@MHz]``; ``GR3D_FREQ x%[@MHz | @[MHz,MHz]]`` (Thor: ``@[a,b,c]``, no %);
temperatures ``name@52.968C[/max]``; rails ``NAME cur/avg[/max]`` with or without ``mW``.
"""
from __future__ import annotations

import re

_TIME = re.compile(r"^\s*(\d\d-\d\d-\d{4} \d\d:\d\d:\d\d)\s")
_RAM = re.compile(r"\bRAM (\d+)/(\d+)([kMG])B")
_SWAP = re.compile(r"\bSWAP (\d+)/(\d+)([kMG])B(?: ?\(cached (\d+)([kMG])B\))?")
_CPU = re.compile(r"\bCPU \[([^\]]*)\](?:@(\d+))?", re.IGNORECASE)
_FREQ = re.compile(r"\b(EMC|GR3D)(?:_FREQ)? (?:(\d+)%)?(?:@\[([^\]]*)\]|@(\d+))?")
_TEMP = re.compile(r"\b(\w+)@(-?\d+(?:\.\d+)?)C\b")
_NUM = r"(\d+(?:\.\d+)?)(m?W)?"
_RAIL = re.compile(rf"\b([A-Z][A-Z0-9_]*) {_NUM}/{_NUM}(?:/{_NUM})?(?![\w/])")
_NOT_RAILS = {"RAM", "SWAP", "IRAM"}
TOTAL_RAILS = ("VDD_IN", "POM_5V_IN", "VIN")  # module input: Orin Nano/NX, Nano/TX2, Thor
_MB = {"k": 1 / 1024, "M": 1, "G": 1024}


def _int(text):
    return int(text) if text and text.isdigit() else None


def _mw(value: str, unit: str | None) -> float:
    return float(value) * (1000 if unit == "W" else 1)


def parse(line: str) -> dict:
    """One tegrastats line as a dict; fields the line lacks are None (rails and temperatures: empty)."""
    out = {"time": None, "ram_used_mb": None, "ram_total_mb": None, "swap": None, "cpu": [],
           "emc_percent": None, "emc_mhz": None, "gpu_percent": None, "gpu_mhz": [], "temperatures": {}, "rails": {}}
    if m := _TIME.match(line):
        out["time"] = m.group(1)
    if m := _RAM.search(line):
        scale = _MB[m.group(3)]
        out["ram_used_mb"], out["ram_total_mb"] = int(m.group(1)) * scale, int(m.group(2)) * scale
    if m := _SWAP.search(line):
        scale = _MB[m.group(3)]
        cached = int(m.group(4)) * _MB[m.group(5)] if m.group(4) else None
        out["swap"] = {"used_mb": int(m.group(1)) * scale, "total_mb": int(m.group(2)) * scale, "cached_mb": cached}
    if m := _CPU.search(line):
        shared = _int(m.group(2))
        for core in m.group(1).split(","):
            core = core.strip()
            if core == "off" or not core:
                out["cpu"].append(None)
                continue
            load, _, mhz = core.partition("@")
            out["cpu"].append((_int(load.rstrip("%")), _int(mhz) if mhz else shared))
    for name, percent, many, one in _FREQ.findall(line):
        mhz = [_int(v.strip()) for v in many.split(",")] if many else ([int(one)] if one else [])
        if name == "GR3D":
            out["gpu_percent"], out["gpu_mhz"] = _int(percent), mhz
        else:
            out["emc_percent"], out["emc_mhz"] = _int(percent), mhz[0] if mhz else None
    out["temperatures"] = {name: float(value) for name, value in _TEMP.findall(line)}
    for name, cur, cur_unit, avg, avg_unit, *_ in _RAIL.findall(line):
        if name not in _NOT_RAILS:
            out["rails"][name] = (_mw(cur, cur_unit), _mw(avg, avg_unit))
    return out


def summarise(lines) -> dict:
    """Peak RAM used and the module input power (mean and peak of its instantaneous mW) over a run's lines.

    The input rail is VDD_IN, else POM_5V_IN, else VIN, else the sum of all rails (boards like AGX Orin report
    no total; the sum then misses what no rail measures).
    """
    samples = [parse(line) for line in lines if line.strip()]
    samples = [s for s in samples if s["ram_used_mb"] is not None or s["rails"]]
    ram = [s["ram_used_mb"] for s in samples if s["ram_used_mb"] is not None]
    rail, power = None, []
    for s in samples:
        name = next((r for r in TOTAL_RAILS if r in s["rails"]), None)
        if name:
            rail = name
            power.append(s["rails"][name][0])
        elif s["rails"]:
            rail = f"sum of {len(s['rails'])} rails"
            power.append(sum(cur for cur, _ in s["rails"].values()))
    # PMIC@100C on Nano/TX boards is a fixed placeholder, not a reading
    temps = [t for s in samples for name, t in s["temperatures"].items() if name != "PMIC"]
    totals = [s["ram_total_mb"] for s in samples if s["ram_total_mb"] is not None]
    return {"samples": len(samples),
            "ram_used_mb_peak": max(ram) if ram else None,
            "ram_total_mb": totals[-1] if totals else None,
            "power_rail": rail,
            "power_mw_mean": round(sum(power) / len(power), 1) if power else None,
            "power_mw_peak": max(power) if power else None,
            "temp_c_max": max(temps) if temps else None}


__all__ = ["TOTAL_RAILS", "parse", "summarise"]
