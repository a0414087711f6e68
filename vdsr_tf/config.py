"""Every setting of a training run, checked before TensorFlow loads, so that a mistyped flag is answered at once."""

import math
import os
from dataclasses import dataclass

from vdsr_tf.atomic import file_in_the_way

OPTIMIZERS = ("sgd", "adam")
PRECISIONS = ("auto", "float32", "bfloat16")  # --precision; a TrainConfig holds the one resolved
CLIP_FORMS = ("value", "norm", "global_norm")


def require_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    """Raises ValueError naming `--flag` and its choices when `value` is not one of them."""
    if value not in choices:
        raise ValueError(f"--{flag} must be one of {', '.join(choices)}, got {value}")


def require_folder(flag: str, path: str) -> None:
    """Raises ValueError naming `--flag` when `path`, or a folder above it, is a file (absent is fine: it is made)."""
    blocking = file_in_the_way(path)
    if blocking == os.path.abspath(path):
        raise ValueError(f"--{flag}: {path} is a file, not a folder")
    if blocking:
        raise ValueError(f"--{flag}: cannot make {path}: {blocking} is a file, not a folder")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a run, checked once here (ValueError naming the flag)."""

    train_h5: str
    checkpoint_dir: str
    log_dir: str
    validation_paths: tuple[str, ...]
    validation_scales: tuple[int, ...] = (2, 3, 4)
    depth: int = 20
    width: int = 64
    residual: bool = True
    lr: float = 0.1
    lr_decay_epochs: int = 20
    lr_decay_factor: float = 0.1
    epochs: int = 80
    steps_per_epoch: int = 125
    batch_size: int = 64
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    grad_clip: float = 1e-3
    clip: str = "norm"
    bias_lr_scale: float = 0.1
    max_steps: int = 0
    validate_every: int = 0
    save_every_minutes: float = 5.0
    keep_checkpoints: int = 3
    keep_epoch_weights: bool = False
    seed: int = 123
    init_weights: str | None = None
    precision: str = "float32"
    restart: bool = False

    def __post_init__(self):
        for name in ("lr", "grad_clip", "bias_lr_scale"):
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(f"--{name} must be a positive number, got {getattr(self, name)}")
        for name in ("weight_decay", "save_every_minutes"):
            if not 0 <= getattr(self, name) < math.inf:
                raise ValueError(f"--{name} must be a number of at least 0, got {getattr(self, name)}")
        for name in ("batch_size", "epochs", "steps_per_epoch", "lr_decay_epochs"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_steps", "validate_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name} must be at least 0, got {getattr(self, name)}")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"--momentum must lie in [0, 1), got {self.momentum}")
        require_choice("optimizer", self.optimizer, OPTIMIZERS)
        require_choice("clip", self.clip, CLIP_FORMS)
        if self.precision not in ("float32", "bfloat16"):
            raise ValueError(f"--precision must be float32 or bfloat16 here, got {self.precision}")
        require_folder("checkpoint_dir", self.checkpoint_dir)
        require_folder("tensorboard_dir", self.log_dir)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def train_h5_name(self) -> str:
        return os.path.basename(self.train_h5)
