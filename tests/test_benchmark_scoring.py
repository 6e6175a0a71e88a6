"""The scoring-speed benchmark end to end in its quick mode."""

import json

from helpers import load_benchmark


def test_quick_run_measures_every_batch_before_and_after(tmp_path):
    scoring_speed = load_benchmark("scoring_speed")
    out, docs = tmp_path / "scoring.json", tmp_path / "BENCHMARKS.md"
    docs.write_text("# Benchmarks\n")
    results = scoring_speed.main(
        ["--quick", "--models", "0", "--out", str(out), "--update-docs", str(docs)]
    )
    assert json.loads(out.read_text())["summary"] == results["summary"]
    (model,) = results["models"]
    assert [row["batch"] for row in model["batches"]] == [1, 4]
    for row in model["batches"]:
        for part in ("log_prob", "evaluate", "training", "before_log_prob", "before_evaluate"):
            assert row[part]["images_per_s"] > 0 and row[part]["user_s"] > 0, part
    bf16 = model["bf16"]
    assert bf16["data"] == "mnist5k" and bf16["images"] == 8
    assert 0 <= bf16["max_gap_bits_per_dim"] < 0.1
    text = docs.read_text()
    assert "## Scoring speed" in text and "| gated 28×28×1 | 4 |" in text
    assert "scoring_speed.py --quick" in text
