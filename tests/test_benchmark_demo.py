"""The quality benchmarks (demo job, equal-time comparison) run and write results and docs."""

import json
from pathlib import Path

from helpers import load_benchmark


def test_demo_quality_smoke_run_writes_json_samples_and_docs(tmp_path):
    demo = load_benchmark("demo_quality")
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


def test_equal_time_comparison_smoke_run(tmp_path):
    compare = load_benchmark("compare_models")
    docs = tmp_path / "B.md"
    argv = ["--minutes", "0.005", "--size", "8", "--samples", "2", "--data", "mnist5k"]
    results = compare.main([*argv, "--out", str(tmp_path / "c.json"), "--update-docs", str(docs)])
    assert [r["model"] for r in results["runs"]] == compare.MODELS
    for run in results["runs"]:
        assert run["levels"] == 2 and run["metric"] == "nats_per_image"
        assert run["steps"] >= 1 and run["test_images"] == 500
        assert 0 < run["nats_per_image"] < 64 * 1.1  # 8x8 binary pixels: uniform is 44 nats
        assert Path(run["samples"]).read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "c.json").read_text())["minutes"] == 0.005
    assert "<!-- compare:start -->" in docs.read_text()
    # --merge re-runs one model and keeps the others, in the table's order
    merged = compare.main(
        [*argv, "--models", "gated", "--merge", "--out", str(tmp_path / "c.json")]
    )
    assert [r["model"] for r in merged["runs"]] == compare.MODELS
    assert merged["runs"][0] == results["runs"][0]


def test_sampling_speed_smoke_run_compares_both_methods(tmp_path):
    speed = load_benchmark("sampling_speed")
    docs = tmp_path / "B.md"
    argv = ["--quick", "--batches", "2", "--repeats", "1", "--threads", "1"]
    results = speed.main([*argv, "--out", str(tmp_path / "s.json"), "--update-docs", str(docs)])
    models = ["gated", "pixelcnnpp", "pixelsnail"]
    assert [(r["model"], r["batch"]) for r in results["cases"]] == [(m, 2) for m in models]
    for case in results["cases"]:
        assert case["identical_images"]  # the same random stream gives the same images
        ratio = case["naive_seconds"] / case["cached_seconds"]  # of the rounded times
        assert abs(case["speedup"] - ratio) <= 0.02 * ratio
    assert json.loads((tmp_path / "s.json").read_text())["cases"] == results["cases"]
    assert "<!-- sampling:start -->" in docs.read_text()
