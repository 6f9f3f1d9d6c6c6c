"""What a search is: its settings (stored with the study, so a worker that joins runs the same search) and where
its files go."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from tflite_isp.core.errors import UserError

SEARCH_ROOT = Path("runs/search")


@dataclass(frozen=True)
class SearchConfig:
    """A search's settings; the ``study`` ones are stored in the study and must agree for every worker."""

    name: str = "default"
    target: str = "local"
    latency: str = "measure"  # "measure" on the target, or "predict" from its per-op table
    table: str | None = None  # the per-op table for "predict" (default: converters/latency/<device>.json)
    data: str = "embedded:isp"
    base: str = "smallnet"  # input convention and schedule of every candidate
    space: str | None = None  # a TOML narrowing of the axes
    trial_steps: int = 600
    eval_steps: int = 150  # validation (and the pruning check) every this many steps
    batch: int = 8
    patch: int | None = None  # proxy-training crop in RAW pixels; default the base recipe's (see docs/search.md)
    prune_margin: float = 1.0  # dB: a trial this far below a faster finished trial at the same step is pruned
    max_ms: float | None = None  # latency budget on the target: slower candidates are pruned before training
    mixed_precision: str | None = None  # proxy training under train --mixed_precision (AMX / AVX512-BF16, GPUs)
    calibration_images: int = 32
    fidelity_images: int = 16
    seed: int = 0
    # per worker, not stored
    start_from: str | None = None  # a point queued first (a zoo model in the space, or a TOML file)
    root: str = str(SEARCH_ROOT)
    storage: str | None = None
    n_trials: int = 20
    timeout: float | None = None  # seconds: no trial starts that would end past it (median trial time)
    workers: int = 1
    threads: int = 2
    runs: int = 10
    warmup: int = 2
    heartbeat: int = 20  # seconds between a running trial's heartbeats; stale after 3 missed
    benchmark_binary: str | None = None
    ssh_config: str | None = None

    def __post_init__(self):
        for key in ("trial_steps", "eval_steps", "batch", "patch", "n_trials", "workers", "threads", "runs",
                    "heartbeat", "calibration_images", "fidelity_images"):
            if getattr(self, key) is not None and getattr(self, key) <= 0:
                raise UserError(f"--{key} must be positive, not {getattr(self, key)}")
        if self.latency not in ("measure", "predict"):
            raise UserError(f"--latency must be measure or predict, not {self.latency!r}")
        if self.mixed_precision not in (None, "bfloat16", "float16"):
            raise UserError(f"--mixed_precision must be bfloat16 or float16, not {self.mixed_precision!r}")
        if self.trial_steps < self.eval_steps:
            raise UserError(f"--trial_steps {self.trial_steps} is less than --eval_steps {self.eval_steps}")
        if not self.name or "/" in self.name:
            raise UserError(f"--name must be a plain folder name, not {self.name!r}")

    @property
    def folder(self) -> Path:
        return Path(self.root) / self.name

    @property
    def storage_url(self) -> str:
        """The study's database: the given URL, else an SQLite file in the search folder."""
        return self.storage or f"sqlite:///{(self.folder / 'study.db').resolve()}"

    def study_settings(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k in STUDY_KEYS}


#: the settings every worker of one study shares (the rest are per worker)
STUDY_KEYS = ("target", "latency", "table", "data", "base", "space", "trial_steps", "eval_steps", "batch", "patch",
              "prune_margin", "max_ms", "mixed_precision", "calibration_images", "fidelity_images", "seed")
