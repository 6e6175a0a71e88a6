"""Every Python example of the README runs as written, in a fresh namespace."""

import re
from pathlib import Path

import pytest

from pixelcnn.likelihoods import LIKELIHOODS
from pixelcnn.networks import NETWORKS

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text()
BLOCKS = [
    (match.group(1), TEXT[: match.start()].count("\n") + 1)
    for match in re.finditer(r"```python\n(.*?)```", TEXT, re.DOTALL)
]


def _heading(line: int) -> str:
    """The README heading above ``line``, as a test id."""
    above = [h for h in TEXT.splitlines()[:line] if h.startswith("#")]
    return re.sub(r"[^a-z0-9]+", "-", above[-1].lstrip("# ").lower()).strip("-")


def test_every_python_block_is_collected():
    # Using the library, sampling, conditioning, token prior, a new network, compression,
    # pretrained models
    assert len(BLOCKS) == 7


@pytest.mark.parametrize(
    ("block", "line"), BLOCKS, ids=[f"{_heading(line)}-line{line}" for _, line in BLOCKS]
)
def test_readme_example_runs(block, line, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the examples save models into the working directory
    networks, likelihoods = dict(NETWORKS), dict(LIKELIHOODS)
    try:  # line numbers in a traceback are the README's
        exec(compile("\n" * line + block, str(README), "exec"), {})
    finally:  # an example that registers a network leaves the registries as they were
        NETWORKS.clear()
        NETWORKS.update(networks)
        LIKELIHOODS.clear()
        LIKELIHOODS.update(likelihoods)


def test_the_main_job_is_what_the_demo_benchmark_measures():
    from helpers import load_benchmark

    demo = load_benchmark("demo_quality")
    command = " ".join(["pixelcnn train", *demo.MAIN_JOB, "--out runs/demo --force"])
    assert f"pip install . && {command}\n" in TEXT
