"""Challenge protocols: which file of an export is the submission, where its runtime is taken, how it scores.

``mai21`` (Ignatov et al., arXiv:2105.07809 §2.5): the submitted file at any precision, timed as given,
score PSNR + alpha * (0.2 - clip(t)). ``mai22`` (arXiv:2211.03885): the FP16 file, timed on the phone's GPU
(the Snapdragon 8 Gen 1 GPU delegate in the challenge), so ``adb:SERIAL`` becomes ``adb:SERIAL:gpu``; timed
locally it is the FP16 file on the CPU and the runtime says so. Its score formula is in §3 of that report,
which this project could not read from its sources: PSNR and runtime are reported, no score is computed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from tflite_isp.core.errors import UserError, fail
from tflite_isp.score import leaderboard


@dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    source: str
    precisions: tuple | None  # the precisions a submission may have; None: any
    adb_delegate: str | None  # the delegate phones time it with; None: as --runtime says
    score: Callable | None  # score(psnr, runtime_s), or None where the formula is not implemented
    score_rule: str
    local_note: str = ""  # added to a local runtime's label

    def to_dict(self) -> dict:
        return {"name": self.name, "title": self.title, "source": self.source,
                "precisions": list(self.precisions) if self.precisions else None,
                "adb_delegate": self.adb_delegate, "score_rule": self.score_rule}


PROTOCOLS = {
    "mai21": Protocol(
        "mai21", "MAI 2021 Learned Smartphone ISP (MediaTek Dimensity 1000+ APU)", "arXiv:2105.07809 §2.5",
        precisions=None, adb_delegate=None, score=leaderboard.mai_score,
        score_rule="MAI score = PSNR + alpha * (0.2 - clip(t)) on the Full HD runtime t."),
    "mai22": Protocol(
        "mai22", "MAI 2022 Learned Smartphone ISP (Snapdragon 8 Gen 1 GPU, TFLite GPU delegate)", "arXiv:2211.03885",
        precisions=("fp16",), adb_delegate="gpu", score=None,
        score_rule="MAI 2022 scores the FP16 file on the phone's GPU; its score formula (report §3) was not readable "
                   "here, so it is not implemented: rows are ranked by PSNR and show the runtime.",
        local_note="the FP16 file on this CPU, not the mobile GPU the protocol times"),
}


def get(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise UserError(f"--protocol must be one of {', '.join(PROTOCOLS)}, not {name!r}")
    return PROTOCOLS[name]


def runtime_spec(protocol: Protocol, runtime: str) -> str:
    """``--runtime`` as the protocol times it: a phone's delegate filled in, a conflicting one refused."""
    parts = runtime.split(":")
    if parts[0] != "adb" or protocol.adb_delegate is None:
        return runtime
    serial = parts[1] if len(parts) > 1 else ""
    delegate = parts[2] if len(parts) > 2 and parts[2] else protocol.adb_delegate
    if delegate != protocol.adb_delegate:
        raise UserError(f"--protocol {protocol.name} times the file with the phone's {protocol.adb_delegate} "
                        f"delegate: use --runtime adb:{serial}:{protocol.adb_delegate}, not {runtime!r}")
    return f"adb:{serial}:{delegate}"


def runtime_label(protocol: Protocol, label: str, local: bool) -> str:
    """A runtime's label, with what a time taken on this machine stands for under this protocol."""
    if local and protocol.local_note:
        return f"{label}; {protocol.local_note}"
    return label


def submissions(protocol: Protocol, entries_of_arg: list, arg: str, explicit_file: bool) -> list:
    """The entries of one MODEL argument this protocol scores; a file or folder with none is a one-line error."""
    if protocol.precisions is None:
        return entries_of_arg
    kept = [e for e in entries_of_arg if e.precision in protocol.precisions]
    if not kept:
        found = ", ".join(sorted({e.precision for e in entries_of_arg})) or "none"
        what = "this file is" if explicit_file else "found"
        raise fail(arg, f"--protocol {protocol.name} scores the {'/'.join(protocol.precisions).upper()} file; "
                        f"{what} {found} (export it with --{protocol.precisions[0]})")
    return kept


def score(protocol: Protocol, psnr: float, runtime_s: float):
    return None if protocol.score is None else round(protocol.score(psnr, runtime_s), 4)


__all__ = ["PROTOCOLS", "Protocol", "get", "runtime_spec", "runtime_label", "submissions", "score"]
