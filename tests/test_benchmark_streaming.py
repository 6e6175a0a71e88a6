"""The training-from-disk benchmark end to end in its quick mode."""

import json

from helpers import load_benchmark


def test_quick_run_times_every_case_and_writes_the_docs(tmp_path):
    streaming = load_benchmark("streaming")
    out, docs = tmp_path / "streaming.json", tmp_path / "BENCHMARKS.md"
    docs.write_text("# Benchmarks\n")
    results = streaming.main(["--quick", "--out", str(out), "--update-docs", str(docs)])
    assert json.loads(out.read_text())["models"] == results["models"]
    (model,) = results["models"]
    assert [row["case"] for row in model["cases"]] == [case for case, *_ in streaming.CASES]
    for row in model["cases"]:
        assert row["steps_per_s"] > 0 and row["peak_rss_mb"] > 0
    assert results["data"]["prepare_npz_images_per_s"] > 0
    assert results["data"]["prepare_folder_images_per_s"] > 0
    text = docs.read_text()
    assert "## Training from disk" in text and "| gated tiny (batch 8) | disk, 2 workers |" in text
    assert "streaming.py --quick" in text
