"""The README's self-contained Python examples run as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
# The conditioning block uses placeholders (x, labels, h) and is not self-contained.
MARKERS = ("load_dataset", "model.complete", 'data="tokens"')
RUNNABLE = [block for block in BLOCKS if any(marker in block for marker in MARKERS)]


def test_the_examples_are_found():
    assert len(RUNNABLE) == 4


IDS = ["library", "sampling", "token-prior", "compression"]


@pytest.mark.parametrize("block", RUNNABLE, ids=IDS)
def test_readme_example_runs(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples save models into the working directory
    exec(compile(block, str(README), "exec"), {})
