"""The before/after benchmark end to end in its quick mode: worker processes import pixelcnn
from the tree they were given, and the table compares the two sides."""

import json
import subprocess
from pathlib import Path

import pytest
from helpers import load_benchmark

REPOSITORY = Path(__file__).resolve().parents[1]


def test_quick_run_against_a_git_revision_times_both_sides(tmp_path):
    if subprocess.run(["git", "-C", str(REPOSITORY), "rev-parse"], check=False).returncode:
        pytest.skip("not a git checkout")
    before_after = load_benchmark("before_after")
    out, docs = tmp_path / "before_after.json", tmp_path / "BENCHMARKS.md"
    docs.write_text("# Benchmarks\n")
    results = before_after.main(
        ["--quick", "--before", "HEAD", "--rounds", "1", "--cases", "0", "2"]
        + ["--out", str(out), "--update-docs", str(docs)]
    )
    assert json.loads(out.read_text())["cases"] == results["cases"]
    assert [row["task"] for row in results["cases"]] == ["sample", "train"]
    for row in results["cases"]:
        assert row["before_images_per_s"] > 0 and row["after_images_per_s"] > 0
        assert row["ratio"] == row["after_images_per_s"] / row["before_images_per_s"]
    assert len(results["before_commit"]) == 40
    text = docs.read_text()
    assert "## Before and after" in text and "| sample | gated (tiny) | 8×8×1 | 4 |" in text
    worktrees = subprocess.run(
        ["git", "-C", str(REPOSITORY), "worktree", "list"], capture_output=True, text=True
    )
    assert "pixelcnn-before-" not in worktrees.stdout  # the temporary checkout is gone


def test_a_worker_must_import_the_tree_it_was_given(tmp_path):
    """A folder without pixelcnn in it: the worker falls back to the installed package,
    which the parent refuses to count as "before"."""
    before_after = load_benchmark("before_after")
    (tmp_path / "src").mkdir()
    with pytest.raises(SystemExit, match="not the tree"):
        before_after.main(
            ["--quick", "--before", str(tmp_path), "--rounds", "1", "--cases", "2"]
            + ["--out", str(tmp_path / "out.json")]
        )
