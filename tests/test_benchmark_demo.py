"""The demo-quality benchmark runs the README's job and writes its results and docs section."""

import importlib.util
import json
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "demo_quality.py"


def _load_script():
    sys.path.insert(0, str(SCRIPT.parent))  # where the scripts find common.py
    try:
        spec = importlib.util.spec_from_file_location("benchmark_demo_quality", SCRIPT)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(SCRIPT.parent))
    return module


def test_demo_quality_smoke_run_writes_json_samples_and_docs(tmp_path):
    demo = _load_script()
    docs = tmp_path / "B.md"
    docs.write_text("# B\n\n<!-- demo:start -->\nold\n<!-- demo:end -->\n")
    argv = ["--out", str(tmp_path / "q.json"), "--update-docs", str(docs), "--levels", "4", "2"]
    argv += ["--train-args", "--steps 2 --size 8 --samples 2 --preset tiny"]
    demo.main(argv)
    results = json.loads((tmp_path / "q.json").read_text())
    assert [r["levels"] for r in results["runs"]] == [4, 2]
    for run in results["runs"]:
        assert run["images"] == 500 and run["data"] == "mnist5k"
        assert 0 < run["bits_per_dim"] < 3  # near log2(L) after two steps
        assert Path(run["samples"]).read_bytes()[:4] == b"\x89PNG"
    text = docs.read_text()
    assert "old" not in text and text.count("<!-- demo:start -->") == 1
    assert "| 4 | mnist5k | 2 |" in text
