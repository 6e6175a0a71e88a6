"""The README's self-contained Python examples run as written."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.DOTALL)
# The conditioning block uses placeholders (x, labels, h) and is not self-contained.
RUNNABLE = [block for block in BLOCKS if "load_dataset" in block or 'data="tokens"' in block]


def test_the_examples_are_found():
    assert len(RUNNABLE) == 2


@pytest.mark.parametrize("block", RUNNABLE, ids=["library", "token-prior"])
def test_readme_example_runs(block, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples save models into the working directory
    exec(compile(block, str(README), "exec"), {})
