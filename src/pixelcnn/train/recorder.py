"""What a training run reports: the progress bar, ``metrics.jsonl``, TensorBoard and the
messages of restores, fed by the outcomes of the steps. Only the main process writes."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from pixelcnn.train.metrics import append_metrics, read_metrics
from pixelcnn.train.tensorboard import log_record, log_samples, open_writer
from pixelcnn.train.trainer import Outcome, StepResult

METRICS_FILE = "metrics.jsonl"


class Recorder:
    """Keeps the window of good losses since the last record and writes the records."""

    def __init__(
        self,
        run_dir: Path,
        first_step: int,
        total_steps: int,
        batch_size: int,
        writes: bool,
        progress: bool,
        tensorboard: bool,
        log: Callable[[str], None],
    ):
        self.metrics_path = run_dir / METRICS_FILE
        self.batch_size, self.writes, self.progress, self.log = batch_size, writes, progress, log
        self.board = open_writer(run_dir, first_step) if writes and tensorboard else None
        self.bar = tqdm(
            total=total_steps,
            initial=first_step,
            desc="training",
            unit="step",
            disable=not (progress and writes),
        )
        self.window: list[float] = []
        self.skipped = 0
        self.started = time.perf_counter()
        # Time spent in steps (data, forward, backward, update), not in evaluations or
        # checkpoints: wall seconds and this process's CPU seconds (all its threads), summed
        # over the run, a resumed one included.
        self.train_seconds, self.cpu_seconds = (
            _spent_before(self.metrics_path) if first_step and writes else (0.0, 0.0)
        )

    @contextlib.contextmanager
    def timed(self) -> Iterator[None]:
        """Count the time of the block as training time."""
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.train_seconds += time.perf_counter() - wall
        self.cpu_seconds += time.process_time() - cpu

    def step(self, step: int, result: StepResult) -> None:
        """Count step ``step`` (1-based, done) and say so when it restored."""
        if result.outcome is Outcome.GOOD:
            self.window.append(result.loss)
        else:
            self.skipped += 1
        self.bar.update(1)
        if self.window:
            recent = self.window[-50:]
            self.bar.set_postfix(bpd=f"{sum(recent) / len(recent):.3f}")
        if result.outcome is Outcome.RESTORED and self.writes:
            event = result.event
            self.say(
                f"step {step}: {result.cause}; restored the weights of step "
                f"{event['from_step']} and lowered the learning rate to {event['lr']:.3g}"
            )
            append_metrics(self.metrics_path, event)

    def say(self, message: str) -> None:
        if self.progress:
            self.bar.write(message)
        else:
            self.log(message)

    def mean_loss(self) -> float | None:
        """The window's mean bits/dim (this process's; the caller makes it collective)."""
        return sum(self.window) / len(self.window) if self.window else None

    def record(
        self,
        step: int,
        lr: float,
        train_bpd: float | None,
        test_bpd: float | None,
        test_images: int | None = None,
    ) -> dict[str, Any]:
        """Write one metrics record (and its TensorBoard scalars); start a new window.
        ``test_images``: how many test images ``test_bpd`` is the mean of (said with it,
        since a run's periodic evaluation may use fewer than its final one)."""
        elapsed = time.perf_counter() - self.started
        record: dict[str, Any] = {
            "step": step,
            "lr": lr,
            "images_per_s": len(self.window) * self.batch_size / max(elapsed, 1e-9),
            "train_seconds": round(self.train_seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
        }
        if train_bpd is not None:  # none when every step since was skipped
            record["train_bpd"] = train_bpd
        if self.skipped:
            record["skipped_steps"] = self.skipped
        if test_bpd is not None:
            record["test_bpd"] = test_bpd
            on = ""
            if test_images is not None:
                record["test_images"] = test_images
                on = f" ({test_images} test images)"
            self.bar.write(
                f"step {step}: train {train_bpd or math.nan:.4f} bits/dim, "
                f"test {test_bpd:.4f} bits/dim{on}"
            )
        append_metrics(self.metrics_path, record)
        if self.board is not None:
            log_record(self.board, record)
        return record

    def samples(self, model, step: int, seed: int) -> None:
        if self.board is not None:
            log_samples(self.board, model, step, seed=seed)

    def new_window(self) -> None:
        self.window, self.skipped, self.started = [], 0, time.perf_counter()

    def close(self) -> None:
        self.bar.close()
        if self.board is not None:
            self.board.close()


def _spent_before(metrics_path: Path) -> tuple[float, float]:
    """The training time a resumed run's kept records reached."""
    for record in reversed(read_metrics(metrics_path)):
        if "train_seconds" in record:
            return float(record["train_seconds"]), float(record.get("cpu_seconds", 0.0))
    return 0.0, 0.0
