"""The settings of a training run: ``TrainConfig``, the recipe filling in what the user left unset,
and the views of a config that a run directory records. Pure: no TensorFlow, no files."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

STRATEGIES = ("default", "mirrored", "multi_worker")
LR_SCHEDULES = ("constant", "cosine", "step")
PRECISIONS = ("bfloat16", "float16")  # --mixed_precision: tf_keras's mixed_bfloat16 / mixed_float16 policies


@dataclass
class TrainConfig:
    model: str = "smallnet"
    data: str | None = None
    task: str | None = None
    epochs: int = 10
    steps_per_epoch: int = 100
    batch: int = 8
    patch: int = 256
    lr: float = 1e-3
    lr_schedule: str = "cosine"
    lr_min: float = 1e-5
    lr_step_at: float = 0.5
    loss: str = "l1"
    vgg_weights: str | None = None
    width_multiplier: float | None = None
    separable: bool | None = None
    levels: str | None = None  # "file": normalise with each RAW file's own black/white (another camera)
    augment: bool = True
    checkpoint_every: int = 100
    val_max_size: int = 1024
    cache_mb: int = 1024
    resume: bool = False
    out: str | None = None
    strategy: str = "default"
    seed: int = 0
    bad_files: str = "fail"
    optimizer: str = "adam"
    init_from: str | None = None
    prune_sparsity: float | None = None
    teacher: str | None = None
    distill_alpha: float = 0.5
    distill_features: float = 0.0
    joint_large_head: float | None = None
    aux_weights: tuple | None = None  # recipe only: PyNET-V2's level-2/3 head loss weights (objectives.Levels)
    channel_prune: str | None = None
    prune_psnr_drop: float = 0.3
    prune_step: float = 0.1
    prune_rounds: int = 10
    mixed_precision: str | None = None  # None: float32
    explicit: tuple = field(default=(), repr=False)  # flags the user set (win over the recipe)


def resolve(config: TrainConfig, recipe) -> TrainConfig:
    """Recipe's [train] values fill in every setting the user did not set explicitly (not mixed_precision, which
    recipe.json records but which suits the machine, not the network: --init_from a bfloat16 run trains in float32)."""
    values = asdict(config)
    for key, value in recipe.train.items():
        if key in values and key not in config.explicit and key != "mixed_precision":
            values[key] = value
    return TrainConfig(**values)


def compression(cfg: TrainConfig) -> dict:
    """The compression settings used, for metrics.json (empty when none)."""
    keys = ("init_from", "prune_sparsity", "teacher", "distill_alpha", "distill_features", "joint_large_head")
    used = {k: getattr(cfg, k) for k in keys if getattr(cfg, k) not in (None, 0.0)}
    if not (cfg.teacher or cfg.joint_large_head):
        used.pop("distill_alpha", None)
    return {"compression": used} if used else {}


def precision_used(cfg: TrainConfig) -> dict:
    """The mixed-precision policy trained under, for metrics.json (empty for float32)."""
    return {"mixed_precision": cfg.mixed_precision} if cfg.mixed_precision else {}


def run_tag(cfg: TrainConfig) -> str:
    """Run-directory suffix naming the compression used."""
    if cfg.joint_large_head:
        return "-joint"
    if cfg.teacher:
        return "-distilled"
    if cfg.prune_sparsity:
        return f"-sparse{round(100 * cfg.prune_sparsity)}"
    return ""


def train_section(cfg: TrainConfig) -> dict:
    """The resolved [train] section that recipe.json records."""
    keep = ("loss", "batch", "patch", "epochs", "steps_per_epoch", "optimizer", "lr", "lr_schedule", "lr_min",
            "lr_step_at", "augment", "checkpoint_every", "seed")
    return ({k: getattr(cfg, k) for k in keep} | ({"aux_weights": list(cfg.aux_weights)} if cfg.aux_weights else {})
            | precision_used(cfg))
