"""Type stubs of colorproxy's native module (Rust, pyo3). Use the package's API (`colorproxy`),
which gives these functions their documented signatures; this module may change between versions."""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

class ColorproxyError(Exception):
    """An error of colorproxy: the message names the file and the problem."""

def targets_file(path: str, points: Sequence[Tuple[int, int]], config: Optional[str] = None) -> Dict[str, torch.Tensor]:
    """Targets of an image file at (y, x) points; `config`: target constants as TOML text."""

def targets_rgb(
    rgb: bytes, height: int, width: int, points: Sequence[Tuple[int, int]], config: Optional[str] = None
) -> Dict[str, torch.Tensor]:
    """Targets of `height x width x 3` RGB bytes (row-major)."""

class Loader:
    """One process's pretraining batches (see colorproxy.ColorizationLoader)."""
    def __init__(
        self,
        data: str,
        preset: Optional[str] = None,
        config: Optional[str] = None,
        batch_size: Optional[int] = None,
        seed: Optional[int] = None,
        workers: Optional[int] = None,
        rank: int = 0,
        world_size: int = 1,
        set: List[str] = ...,
    ) -> None: ...
    def __len__(self) -> int: ...
    @property
    def images(self) -> int: ...
    @property
    def batch_size(self) -> int: ...
    @property
    def seed(self) -> int: ...
    @property
    def config(self) -> str: ...
    def start(self, epoch: int, batch: int = 0) -> None: ...
    def next_batch(self) -> Optional[Dict[str, Any]]: ...

def pretrain(
    data: str,
    out: str,
    preset: Optional[str] = None,
    config: Optional[str] = None,
    iterations: Optional[int] = None,
    batch_size: Optional[int] = None,
    lr: Optional[float] = None,
    seed: Optional[int] = None,
    workers: Optional[int] = None,
    set: List[str] = ...,
    resume: str = "no",
    force: bool = False,
    device: Optional[str] = None,
    threads: Optional[int] = None,
) -> Dict[str, Any]:
    """What the run did: iterations, seconds, skipped_images, final_loss."""

def finetune(
    task: str,
    data: str,
    out: str,
    init: str = "random",
    preset: Optional[str] = None,
    config: Optional[str] = None,
    classes: Optional[str] = None,
    max_iterations: Optional[int] = None,
    batch_size: Optional[int] = None,
    lr: Optional[float] = None,
    seed: Optional[int] = None,
    workers: Optional[int] = None,
    set: List[str] = ...,
    freeze_until: Optional[str] = None,
    color: bool = False,
    train_split: str = "train",
    eval_split: str = "val",
    resume: str = "no",
    force: bool = False,
    device: Optional[str] = None,
    skip_bad: bool = False,
) -> None: ...
def evaluate(
    task: str,
    checkpoint: str,
    data: str,
    report: str,
    split: str = "val",
    config: Optional[str] = None,
    device: Optional[str] = None,
    skip_bad: bool = False,
) -> None: ...
def export_torchvision(
    checkpoint: str, rgb: bool = False, config: Optional[str] = None, seed: int = 0
) -> Tuple[str, int, int, Dict[str, torch.Tensor], List[str]]:
    """(arch, num_classes, in_channels, state dict, notes), as `colorproxy export`."""

def gray_mean() -> float: ...
