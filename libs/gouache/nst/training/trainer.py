"""The training loop the families share: AdamW, warm-up and cosine, AMP, checkpoints, early stopping, run log."""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor, nn

from gouache.nst.training.config import OptimConfig, RunConfig

CHECKPOINT = "checkpoint.pt"
"""The latest checkpoint in a run directory; `--resume` continues from it."""
BEST = "best.pt"
"""The trained module's weights at its best held-out loss so far."""
RUN_LOG = "train_log.jsonl"
"""One JSON object per line: step losses, evaluations, checkpoints, the stop."""


class TrainingError(RuntimeError):
    """A run that cannot start or continue (no checkpoint to resume, a diverged loss)."""


class TrainTask(Protocol):
    """What a family gives the loop: the module to train and its losses.

    `losses(step)` draws the step's batch (from the step number, so a resumed run draws
    the same batches) and returns the weighted terms with their sum under "total";
    `heldout()` returns the same terms, as floats, on the fixed held-out batches.
    """

    @property
    def module(self) -> nn.Module: ...

    def losses(self, step: int) -> Mapping[str, Tensor]: ...

    def heldout(self) -> Mapping[str, float]: ...


@dataclass
class _State:
    """Everything besides module, optimiser and scheduler that a checkpoint must restore."""

    step: int = 0
    best_heldout: float = math.inf
    best_step: int = 0
    bad_evals: int = 0
    wall_seconds: float = 0.0
    last_heldout: dict[str, float] = field(default_factory=dict)
    last_train: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class FitResult:
    """How a run ended: steps done, why it stopped, its best held-out loss and where."""

    steps: int
    stop_reason: str
    best_step: int
    best_heldout: float
    last_train: Mapping[str, float]
    last_heldout: Mapping[str, float]
    wall_seconds: float
    best_weights: Path
    device: str
    amp: bool

    def record(
        self, *, config: Mapping[str, Any], config_file: str, config_sha256: str
    ) -> dict[str, Any]:
        """The "training" block of a model manifest: the config and how the run went."""
        return {
            "config": dict(config),
            "config_file": config_file,
            "config_sha256": config_sha256,
            "steps": self.steps,
            "stop_reason": self.stop_reason,
            "best_step": self.best_step,
            "best_heldout_loss": self.best_heldout,
            "final_train_losses": dict(self.last_train),
            "final_heldout_losses": dict(self.last_heldout),
            "wall_seconds": round(self.wall_seconds, 1),
            "device": self.device,
            "amp": self.amp,
            "threads": torch.get_num_threads(),
        }


def replace_directory(staging: Path, target: Path) -> None:
    """Puts a fully written staging directory where `target` was, in one rename."""
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)


def resolve_device(run: RunConfig) -> torch.device:
    """The device a run config asks for; "auto" takes CUDA when it is there."""
    if run.device == "cuda" or (run.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainingError("run.device is cuda but no CUDA device is available")
        return torch.device("cuda")
    return torch.device("cpu")


def learning_rate_factor(step: int, optim: OptimConfig) -> float:
    """Multiplier of the peak learning rate at `step`: linear warm-up, then cosine decay."""
    if step < optim.warmup_steps:
        return (step + 1) / optim.warmup_steps
    span = max(1, optim.max_steps - optim.warmup_steps)
    progress = min(1.0, (step - optim.warmup_steps) / span)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return optim.min_lr_ratio + (1.0 - optim.min_lr_ratio) * cosine


class RunLog:
    """Appends JSON records to the run's log file, one per line, flushed as written."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: TextIO = path.open("a", encoding="utf-8")

    def write(self, event: str, **values: Any) -> None:
        record = {"event": event, "time": round(time.time(), 3), **values}
        self._handle.write(json.dumps(record, sort_keys=True) + "\n")
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def fit(
    task: TrainTask,
    optim: OptimConfig,
    run: RunConfig,
    out_dir: Path,
    *,
    config_digest: str,
    device: torch.device,
    resume: bool = False,
    max_minutes: float | None = None,
    console: Console | None = None,
) -> FitResult:
    """Trains `task.module` until max_steps, early stopping, or `max_minutes` of this call.

    Writes `checkpoint.pt` every `checkpoint_every` steps and when it stops, `best.pt`
    whenever the held-out loss improves, and the run log. `resume` continues from
    `checkpoint.pt`, which must have been written under the same config (digest); a
    fresh run refuses a directory that already holds a checkpoint, so nothing is
    overwritten by accident.
    """
    if max_minutes is not None and max_minutes <= 0.0:
        raise TrainingError(f"max_minutes must be positive, got {max_minutes}")
    out_dir.mkdir(parents=True, exist_ok=True)
    checkpoint_path = out_dir / CHECKPOINT
    amp = run.amp and device.type == "cuda"
    parameters = [p for p in task.module.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(
        parameters, lr=optim.lr, betas=optim.betas, weight_decay=optim.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda step: learning_rate_factor(step, optim)
    )
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    state = _State()
    if resume:
        state = _restore(checkpoint_path, config_digest, task.module, optimiser, scheduler, scaler)
    elif checkpoint_path.exists():
        raise TrainingError(
            f"{checkpoint_path} exists: pass --resume to continue that run, or choose another --out"
        )
    log = RunLog(out_dir / RUN_LOG)
    log.write(
        "resume" if resume else "start",
        step=state.step,
        device=str(device),
        amp=amp,
        threads=torch.get_num_threads(),
        config_sha256=config_digest,
        max_minutes=max_minutes,
    )
    started = time.monotonic()
    wall_before = state.wall_seconds
    deadline = None if max_minutes is None else started + 60.0 * max_minutes
    stop_reason = "max_steps"
    window: dict[str, list[float]] = {}

    def save_checkpoint() -> None:
        state.wall_seconds = wall_before + time.monotonic() - started
        _atomic_save(
            {
                "step": state.step,
                "module": task.module.state_dict(),
                "optimiser": optimiser.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "state": vars(state),
                "config_sha256": config_digest,
            },
            checkpoint_path,
        )
        log.write("checkpoint", step=state.step, path=checkpoint_path.name)

    def evaluate() -> bool:
        """Measures the held-out loss; True when early stopping's patience has run out."""
        task.module.eval()
        with torch.no_grad(), _autocast(device, amp):
            heldout = {name: float(value) for name, value in task.heldout().items()}
        task.module.train()
        state.last_heldout = heldout
        total = heldout["total"]
        improved = total < state.best_heldout * (1.0 - run.min_delta)
        if improved:
            state.best_heldout, state.best_step, state.bad_evals = total, state.step, 0
            _atomic_save(task.module.state_dict(), out_dir / BEST)
        else:
            state.bad_evals += 1
        log.write(
            "eval",
            step=state.step,
            heldout=heldout,
            best=state.best_heldout,
            best_step=state.best_step,
            improved=improved,
            bad_evals=state.bad_evals,
        )
        return state.bad_evals >= run.patience

    task.module.train()
    with _progress(console, optim.max_steps, state.step) as (progress, bar):
        while state.step < optim.max_steps:
            if deadline is not None and time.monotonic() >= deadline:
                stop_reason = "time_limit"
                break
            with _autocast(device, amp):
                terms = task.losses(state.step)
            total = terms["total"]
            if not torch.isfinite(total):
                save_checkpoint()
                raise TrainingError(
                    f"the loss is {float(total.detach())} at step {state.step}; lower optim.lr "
                    "or check the data (the last checkpoint was kept)"
                )
            optimiser.zero_grad(set_to_none=True)
            torch.autograd.backward(scaler.scale(total))
            if optim.grad_clip > 0.0:
                scaler.unscale_(optimiser)
                torch.nn.utils.clip_grad_norm_(parameters, optim.grad_clip)
            scaler.step(optimiser)
            scaler.update()
            scheduler.step()
            state.step += 1
            for name, value in terms.items():
                window.setdefault(name, []).append(float(value.detach()))
            if state.step % run.log_every == 0:
                state.last_train = {name: sum(v) / len(v) for name, v in window.items()}
                window.clear()
                log.write(
                    "train",
                    step=state.step,
                    lr=scheduler.get_last_lr()[0],
                    losses=state.last_train,
                    elapsed_s=round(wall_before + time.monotonic() - started, 2),
                )
            stop_early = state.step % run.eval_every == 0 and evaluate()
            if state.step % run.checkpoint_every == 0 or stop_early:
                save_checkpoint()
            progress.update(
                bar,
                completed=state.step,
                description=_describe(state),
            )
            if stop_early:
                stop_reason = "early_stop"
                break
    if window:
        state.last_train = {name: sum(v) / len(v) for name, v in window.items()}
    if not (out_dir / BEST).exists() or state.step % run.eval_every:
        evaluate()
    save_checkpoint()
    log.write(
        "stop",
        step=state.step,
        reason=stop_reason,
        best_step=state.best_step,
        best=state.best_heldout,
        wall_s=round(state.wall_seconds, 2),
    )
    log.close()
    (console or Console(stderr=True)).print(
        f"stopped after {state.step} steps ({stop_reason}); best held-out loss "
        f"{state.best_heldout:.4f} at step {state.best_step}; {state.wall_seconds:.0f} s"
    )
    return FitResult(
        steps=state.step,
        stop_reason=stop_reason,
        best_step=state.best_step,
        best_heldout=state.best_heldout,
        last_train=dict(state.last_train),
        last_heldout=dict(state.last_heldout),
        wall_seconds=state.wall_seconds,
        best_weights=out_dir / BEST,
        device=str(device),
        amp=amp,
    )


def _restore(
    path: Path,
    config_digest: str,
    module: nn.Module,
    optimiser: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
) -> _State:
    if not path.exists():
        raise TrainingError(f"--resume: no checkpoint at {path}")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    if saved["config_sha256"] != config_digest:
        raise TrainingError(
            f"--resume: {path} was written under another config (sha256 "
            f"{saved['config_sha256'][:12]}, now {config_digest[:12]}); resume with the same "
            "config or start a new --out"
        )
    module.load_state_dict(saved["module"])
    optimiser.load_state_dict(saved["optimiser"])
    scheduler.load_state_dict(saved["scheduler"])
    scaler.load_state_dict(saved["scaler"])
    return _State(**saved["state"])


def _atomic_save(value: object, path: Path) -> None:
    """Writes next to `path` and renames, so a crash never leaves half a checkpoint."""
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save(value, temporary)
    os.replace(temporary, path)


@contextmanager
def _autocast(device: torch.device, enabled: bool) -> Iterator[None]:
    if enabled:
        with torch.autocast(device_type=device.type, dtype=torch.float16):
            yield
    else:
        yield


@contextmanager
def _progress(
    console: Console | None, total: int, completed: int
) -> Iterator[tuple[Progress, Any]]:
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
    )
    with progress:
        bar = progress.add_task("training", total=total, completed=completed)
        yield progress, bar


def _describe(state: _State) -> str:
    train = state.last_train.get("total")
    heldout = state.last_heldout.get("total")
    parts = ["training"]
    if train is not None:
        parts.append(f"loss {train:.4f}")
    if heldout is not None:
        parts.append(f"held-out {heldout:.4f} (best {state.best_heldout:.4f})")
    return "  ".join(parts)
