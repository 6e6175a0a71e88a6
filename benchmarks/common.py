"""What every benchmark script shares: the run's environment and marked sections of docs.

The scripts run as ``python benchmarks/NAME.py`` from the repository root, which puts this
folder on ``sys.path``; tests that import a script put it there themselves.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import shlex
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

import pixelcnn


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def loadavg() -> list[float] | None:
    """1, 5 and 15 minute load averages, where the OS reports them."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def command_line(script: str | os.PathLike, argv: list[str]) -> str:
    """The shell command that reproduces this run, from the repository root."""
    script = Path(script).resolve()
    if script.is_relative_to(Path.cwd()):
        script = script.relative_to(Path.cwd())
    return shlex.join(["python", str(script), *argv])


def environment(script: str | os.PathLike, argv: list[str]) -> dict[str, Any]:
    """Versions, threads, CPU, date, load and command line of this run."""
    return {
        "torch": torch.__version__,
        "pixelcnn": getattr(pixelcnn, "__version__", None),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(script, argv),
        "loadavg_start": loadavg(),
    }


def measured(env: dict[str, Any]) -> str:
    """The line under a docs table: when, where and by which command it was measured."""
    return (
        f"Measured {env['date']} on {env['cpu']} ({env['torch_num_threads']} torch threads, "
        f"torch {env['torch']}) with `{env['command']}`."
    )


def update_marked_section(
    path: str | os.PathLike, start: str, end: str, body: str, heading: str
) -> None:
    """Replace the text between the ``start`` and ``end`` markers of a Markdown file with
    ``body``; when the markers are absent, append ``heading`` and a marked section."""
    path = Path(path)
    text = path.read_text() if path.exists() else ""
    section = f"{start}\n{body}\n{end}"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        separator = "" if not text else "\n" if text.endswith("\n") else "\n\n"
        text = f"{text}{separator}## {heading}\n\n{section}\n"
    path.write_text(text)


def write_results(
    results: dict[str, Any],
    out: str | os.PathLike,
    docs: str | os.PathLike | None,
    update_docs: Callable[[str | os.PathLike, dict[str, Any]], None],
    table: str,
) -> None:
    """Write the JSON results, rewrite the docs section if asked, print the table."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    if docs:
        update_docs(docs, results)
    print(table)
    print(f"\nwrote {out}" + (f" and {docs}" if docs else ""))


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """``torch.set_num_threads(threads)`` inside the block (None: leave it), restored after."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# 7728 + 1000 exact CIFAR-10 images kept beside the project
CIFAR_EXACT = "../shared/data/cifar10_exact_32.npz"


def add_budget_arguments(
    parser: argparse.ArgumentParser, tasks: list[str], default_out: str
) -> None:
    """The options of the scripts that train models for compare_models' time budgets: the
    budgets, which tasks, the seed, and where results and docs go."""
    parser.add_argument("--minutes", type=float, default=4.0, help="training time per model")
    parser.add_argument("--cifar-minutes", type=float, default=6.0, help="the same, for CIFAR")
    parser.add_argument("--tasks", nargs="+", default=tasks, choices=tasks)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=default_out)
    parser.add_argument("--update-docs", default=None, metavar="MARKDOWN")
