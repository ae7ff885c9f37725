"""colorproxy for PyTorch: colorization as a proxy task (Larsson, Maire, Shakhnarovich, CVPR 2017).

The same Rust core as the ``colorproxy`` command line: decoding, augmentation, colour targets and
batching (:class:`ColorizationLoader`, :func:`targets`), pretraining, fine-tuning and evaluation
(:func:`pretrain`, :func:`finetune`, :func:`evaluate`), and the trained backbones as torchvision
modules (:func:`load_backbone`). Tensors are ``torch.Tensor``; the package is built against the
libtorch of torch 2.11 and must be imported in a Python with that torch.

Errors of colorproxy raise :class:`ColorproxyError` with the library's message (the file and the
problem); a run stopped with Ctrl-C (SIGINT) or SIGTERM (what Slurm sends on preemption and at the
time limit) writes its checkpoint and raises ``KeyboardInterrupt`` (``resume=True`` continues it).
"""
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import sys
import tempfile
import threading
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch  # noqa: F401  (loads libtorch before the native module links to it)

from . import _core
from ._core import ColorproxyError

__version__ = "0.1.0"
__all__ = [
    "ColorproxyError",
    "ColorizationLoader",
    "targets",
    "load_backbone",
    "GrayTransform",
    "pretrain",
    "finetune",
    "evaluate",
]

PathLike = Union[str, "os.PathLike[str]"]


def _overrides(set: Optional[Mapping[str, Any]]) -> List[str]:
    """``{"optim.lr_drops": [], "data.points": 64}`` -> ``["optim.lr_drops=[]", "data.points=64"]``
    (TOML values, as the command line's ``--set KEY=VALUE``)."""
    out = []
    for key, value in (set or {}).items():
        out.append(f"{key}={_toml_value(value)}")
    return out


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as a TOML value")


def _resume(resume: Union[bool, str]) -> str:
    if resume is True:
        return "yes"
    if resume is False:
        return "no"
    return str(resume)


_U64_MAX = 2**64 - 1


def _count(name: str, value: Any, minimum: int = 0, maximum: int = _U64_MAX) -> Optional[int]:
    """An integer argument checked here, with its name in the error (not a bare ``OverflowError``
    from the native module): ``None`` passes; bools, floats and strings are refused, not
    truncated."""
    if value is None:
        return None
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ColorproxyError(f"{name} must be an integer, got {value!r}")
    if not minimum <= int(value) <= maximum:
        raise ColorproxyError(f"{name} must be in [{minimum}, {maximum}], got {value}")
    return int(value)


@contextlib.contextmanager
def _stoppable() -> Iterator[None]:
    """Around a run: SIGTERM stops it as Ctrl-C does (checkpoint, then ``KeyboardInterrupt``)
    instead of killing the interpreter with nothing written; a process that started with SIGINT
    ignored (a background job of a shell script) is told once that Ctrl-C cannot stop the run.
    Python's handlers can be set from the main thread only; elsewhere the signals stay as they are."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        print(
            f"colorproxy: SIGINT is ignored in this process (pid {os.getpid()}, started in the background?): "
            f"Ctrl-C will not stop the run; `kill {os.getpid()}` (SIGTERM) writes its checkpoint and stops it",
            file=sys.stderr,
            flush=True,
        )
    terminated = []

    def on_sigterm(signum: int, frame: Any) -> None:
        terminated.append(signum)
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    except KeyboardInterrupt:
        if terminated:
            raise KeyboardInterrupt(
                "terminated (SIGTERM); the run wrote its checkpoint (resume=True continues it)"
            ) from None
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def _path(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


def targets(image: Any, points: Sequence[Tuple[int, int]], config: Optional[PathLike] = None) -> Dict[str, torch.Tensor]:
    """The colour targets of ``image`` at ``(y, x)`` pixel points, as ``colorproxy targets --json``.

    ``image``: a path, a ``uint8`` numpy array ``H x W x 3`` (RGB), or a PIL image. ``config``: a
    TOML file of target constants (default: the authors' values). Returns, for P points:
    ``hue_hist``, ``chroma_hist`` ``[P, K]`` (normalised histograms of the 7x7 window),
    ``hue_weight``, ``chroma_weight``, ``gray`` ``[P]`` and ``ab`` ``[P, 2]`` (CIE a*, b* scaled
    by ``lab_ab_scale``), ``points`` ``[P, 2]`` int64.
    """
    pts = [(_count("points: y", y, 0, 2**31 - 1), _count("points: x", x, 0, 2**31 - 1)) for y, x in points]
    if not pts:
        raise ColorproxyError("points is empty: give at least one (y, x) pixel")
    cfg = None if config is None else pathlib.Path(config).read_text()
    if isinstance(image, (str, os.PathLike)):
        return _core.targets_file(os.fspath(image), pts, cfg)
    import numpy as np

    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        image = image.convert("RGB")
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise ColorproxyError(f"expected an H x W x 3 uint8 RGB array, got shape {arr.shape} and dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr)
    return _core.targets_rgb(arr.tobytes(), int(arr.shape[0]), int(arr.shape[1]), pts, cfg)


class ColorizationLoader:
    """Batches of colorization pretraining from the Rust pipeline, for a plain PyTorch loop.

    Each batch is a dict: ``gray`` ``[B, 1, S, S]`` float (the network's input, gray minus its
    mean), ``points`` ``[B, P, 2]`` int64 ``(y, x)`` in the crop, ``hue_hist`` / ``chroma_hist``
    ``[B, P, K]`` targets, ``hue_weight`` / ``chroma_weight`` ``[B, P]`` loss weights, ``ab``
    ``[B, P, 2]`` (for L*a*b* regression), ``files`` (the images used) and ``skipped`` (files
    replaced because they could not be used, with the reason).

    The same images, crops, flips and points as ``colorproxy pretrain`` with the same data,
    preset, ``set`` overrides, seed and batch. ``batch_size`` is per process (PyTorch's
    convention): in a job of ``world_size`` processes, process ``rank`` gets its share of each job
    batch of ``world_size x batch_size`` images. ``rank`` / ``world_size`` default to
    ``torch.distributed``'s when it is initialised, else 0 / 1.

    ``len(loader)`` batches make an epoch (the last partial batch is dropped). Iterating yields one
    epoch and moves to the next; :meth:`set_epoch` chooses the epoch (as ``DistributedSampler``).
    ``workers`` threads build batches ahead (0: all cores); the batches do not depend on it.
    """

    def __init__(
        self,
        data: PathLike,
        preset: Optional[str] = "cpu-small",
        batch_size: Optional[int] = None,
        seed: int = 0,
        workers: Optional[int] = None,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
        config: Optional[PathLike] = None,
        set: Optional[Mapping[str, Any]] = None,
    ) -> None:
        batch_size = _count("batch_size", batch_size, 1)
        seed = _count("seed", seed)
        workers = _count("workers", workers)
        world_size = _count("world_size", world_size, 1)
        rank = _count("rank", rank, 0, world_size - 1 if world_size is not None else _U64_MAX)
        if rank is None or world_size is None:
            dist = torch.distributed
            if dist.is_available() and dist.is_initialized():
                rank = dist.get_rank() if rank is None else rank
                world_size = dist.get_world_size() if world_size is None else world_size
            else:
                rank = 0 if rank is None else rank
                world_size = 1 if world_size is None else world_size
        if config is not None:
            preset = None
        self._core = _core.Loader(
            os.fspath(data),
            preset=preset,
            config=_path(config),
            batch_size=batch_size,
            seed=seed,
            workers=workers,
            rank=rank,
            world_size=world_size,
            set=_overrides(set),
        )
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def __len__(self) -> int:
        return len(self._core)

    @property
    def batch_size(self) -> int:
        """Images per batch of this process."""
        return self._core.batch_size

    @property
    def images(self) -> int:
        """Images in the data set."""
        return self._core.images

    @property
    def config(self) -> str:
        """The resolved pretraining config (TOML), as ``colorproxy pretrain`` saves it."""
        return self._core.config

    def set_epoch(self, epoch: int) -> None:
        """The epoch the next iteration yields (its order, crops and points)."""
        self.epoch = int(epoch)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        self._core.start(self.epoch, 0)
        self.epoch += 1
        while True:
            batch = self._core.next_batch()
            if batch is None:
                return
            yield batch


class GrayTransform:
    """The input transform of colorproxy's backbones: an RGB image (PIL, ``H x W x 3`` uint8 array,
    or a ``3 x H x W`` uint8 / [0, 1] float tensor) -> ``C x H x W`` float, the gray value
    ``(R+G+B)/3`` in [0, 1] minus the gray mean; ``C`` = 1, or 3 (the same value in each) for a
    network exported with ``rgb=True``. Not ImageNet's normalisation."""

    def __init__(self, channels: int = 1) -> None:
        self.channels = channels
        self.gray_mean = _core.gray_mean()

    def __call__(self, image: Any) -> torch.Tensor:
        if not isinstance(image, torch.Tensor):
            import numpy as np

            if hasattr(image, "convert"):
                image = image.convert("RGB")
            image = torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1)
        x = image.float() / 255.0 if image.dtype == torch.uint8 else image.float()
        g = x.sum(0, keepdim=True) / 3.0 - self.gray_mean
        return g.expand(self.channels, -1, -1).contiguous() if self.channels != 1 else g

    def __repr__(self) -> str:
        return f"GrayTransform(channels={self.channels}, gray_mean={self.gray_mean})"


def load_backbone(checkpoint: PathLike, rgb: bool = False, config: Optional[PathLike] = None, seed: int = 0):
    """A torchvision model with the weights of a colorproxy checkpoint, and its input transform.

    Returns ``(model, transform)``: ``torchvision.models.<arch>(num_classes=K)`` loaded with
    ``strict=True`` from what ``colorproxy export`` writes (BN absorbed; the fine-tuned classifier
    when the checkpoint has one, else torchvision's initialisation for 1000 classes with ``seed``).
    Gray networks get a first convolution with 1 input channel; ``rgb=True`` lifts it to 3 (each
    the gray filter / 3) so that the model is a stock torchvision one. ``transform`` is a
    :class:`GrayTransform`. Needs torchvision; the network must have the standard widths.
    """
    import torchvision

    arch, num_classes, in_channels, tensors, notes = _core.export_torchvision(
        os.fspath(checkpoint), rgb=rgb, config=_path(config), seed=seed
    )
    model = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    if in_channels == 1:
        if arch.startswith("resnet"):
            model.conv1 = torch.nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        else:
            old = model.features[0]
            model.features[0] = torch.nn.Conv2d(
                1, old.out_channels, kernel_size=old.kernel_size, stride=old.stride, padding=old.padding
            )
    model.load_state_dict(tensors, strict=True)
    model.eval()
    model.colorproxy_notes = notes
    return model, GrayTransform(in_channels)


def pretrain(
    data: PathLike,
    out: PathLike,
    preset: Optional[str] = "cpu-small",
    *,
    config: Optional[PathLike] = None,
    iterations: Optional[int] = None,
    batch_size: Optional[int] = None,
    lr: Optional[float] = None,
    seed: Optional[int] = None,
    workers: Optional[int] = None,
    set: Optional[Mapping[str, Any]] = None,
    resume: Union[bool, str] = False,
    force: bool = False,
    device: Optional[str] = None,
    threads: Optional[int] = None,
) -> Dict[str, Any]:
    """Colorization pretraining, as ``colorproxy pretrain`` (same presets, overrides, run folder).

    ``set``: config overrides by dotted key, e.g. ``{"optim.lr_drops": [], "data.points": 64}``.
    ``resume``: ``True`` continues the run in ``out``, ``"auto"`` continues it when there is one.
    Returns ``{"out", "checkpoint", "iterations" (done), "seconds", "skipped_images", "loss_first",
    "loss_last" (the first and last logged losses), "config"}``.
    """
    if config is not None:
        preset = None
    iterations, batch_size = _count("iterations", iterations, 1), _count("batch_size", batch_size, 1)
    seed, workers, threads = _count("seed", seed), _count("workers", workers), _count("threads", threads)
    with _stoppable():
        done = _core.pretrain(
            os.fspath(data), os.fspath(out), preset=preset, config=_path(config), iterations=iterations,
            batch_size=batch_size, lr=lr, seed=seed, workers=workers, set=_overrides(set),
            resume=_resume(resume), force=force, device=device, threads=threads,
        )
    out = pathlib.Path(out)
    losses = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {
        "out": str(out),
        "checkpoint": str(out / "checkpoints" / "last.safetensors"),
        "iterations": done.get("iterations", 0),
        "seconds": done.get("seconds"),
        "skipped_images": done.get("skipped_images", 0),
        "loss_first": losses[0]["loss"] if losses else None,
        "loss_last": losses[-1]["loss"] if losses else None,
        "config": (out / "config.toml").read_text(),
    }


def finetune(
    task: str,
    data: PathLike,
    out: PathLike,
    init: PathLike = "random",
    *,
    preset: Optional[str] = None,
    config: Optional[PathLike] = None,
    classes: Optional[PathLike] = None,
    iterations: Optional[int] = None,
    max_iterations: Optional[int] = None,
    batch_size: Optional[int] = None,
    lr: Optional[float] = None,
    seed: Optional[int] = None,
    workers: Optional[int] = None,
    set: Optional[Mapping[str, Any]] = None,
    freeze_until: Optional[str] = None,
    color: bool = False,
    train_split: str = "train",
    eval_split: str = "val",
    resume: Union[bool, str] = False,
    force: bool = False,
    device: Optional[str] = None,
    skip_bad: bool = False,
) -> Dict[str, Any]:
    """Fine-tuning for ``task`` ``"cls"`` (VOC classification, mAP; or class folders, top-1) or
    ``"seg"`` (VOC segmentation, mIoU), as ``colorproxy finetune`` (the paper's protocol: early
    stopping on a held-out part, scored on ``eval_split`` at the end). ``init``: ``"random"`` or a
    checkpoint (colorization pretraining, or torchvision names). ``iterations``: the cap on the
    run's iterations, as ``--iterations`` (``max_iterations`` is the same). Returns the run's
    ``results.json`` as a dict (``metric``, ``value``, per-class scores, ...)."""
    if iterations is not None and max_iterations is not None:
        raise ColorproxyError("give iterations (the command line's --iterations) or max_iterations, not both")
    max_iterations = _count("iterations", iterations, 1) if iterations is not None else max_iterations
    max_iterations, batch_size = _count("max_iterations", max_iterations, 1), _count("batch_size", batch_size, 1)
    seed, workers = _count("seed", seed), _count("workers", workers)
    with _stoppable():
        _core.finetune(
            task, os.fspath(data), os.fspath(out), init=os.fspath(init), preset=preset, config=_path(config),
            classes=_path(classes), max_iterations=max_iterations, batch_size=batch_size, lr=lr, seed=seed,
            workers=workers, set=_overrides(set), freeze_until=freeze_until, color=color,
            train_split=train_split, eval_split=eval_split, resume=_resume(resume), force=force,
            device=device, skip_bad=skip_bad,
        )
    return json.loads((pathlib.Path(out) / "results.json").read_text())


def evaluate(
    task: str,
    checkpoint: PathLike,
    data: PathLike,
    split: str = "val",
    *,
    report: Optional[PathLike] = None,
    config: Optional[PathLike] = None,
    device: Optional[str] = None,
    skip_bad: bool = False,
) -> Dict[str, Any]:
    """Scores a fine-tuned network on ``split``, as ``colorproxy eval``; ``report``: a folder for
    results.json, results.md and report.html (default: a temporary one). Returns the results."""
    if report is None:
        with tempfile.TemporaryDirectory(prefix="colorproxy-eval-") as d:
            return evaluate(task, checkpoint, data, split, report=d, config=config, device=device, skip_bad=skip_bad)
    with _stoppable():
        _core.evaluate(
            task, os.fspath(checkpoint), os.fspath(data), os.fspath(report), split=split, config=_path(config),
            device=device, skip_bad=skip_bad,
        )
    return json.loads((pathlib.Path(report) / "results.json").read_text())
