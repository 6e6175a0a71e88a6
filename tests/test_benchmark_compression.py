"""The compression benchmark runs end to end on a small saved model and reports sizes that
add up: the file is its streams plus a header, and every codec has a figure."""

import json

import pytest
from helpers import load_benchmark, perturb

import pixelcnn


def test_quick_run_reports_every_codec_and_an_exact_round_trip(tmp_path):
    compression = load_benchmark("compression")
    model = perturb(pixelcnn.create("gated", (1, 28, 28), 256, preset="tiny"), 0.2)
    run = model.save(tmp_path / "demo")
    docs = tmp_path / "B.md"
    argv = ["--tasks", "demo", "--demo-run", str(run), "--limit", "6", "--batch-size", "4"]
    results = compression.main(
        [*argv, "--out", str(tmp_path / "c.json"), "--update-docs", str(docs)]
    )
    assert json.loads((tmp_path / "c.json").read_text()) == results
    (r,) = results["runs"]
    assert r["exact"] and r["images"] == 6 and r["image_shape"] == [1, 28, 28]
    dims = 6 * 28 * 28
    file_bits = r["stream_bits_per_dim"] * dims + 8 * r["header_bytes"]
    assert r["file_bits_per_dim"] * dims == pytest.approx(file_bits)
    assert r["stream_bits_per_dim"] > r["ideal_bits_per_dim"]
    assert set(r["classical_bits_per_dim"]) == {"png", "webp", "jpegxl", "xz_whole_set"}
    assert all(v is None or v > 0 for v in r["classical_bits_per_dim"].values())
    text = docs.read_text()
    assert "<!-- compression:start -->" in text and "| demo (gated, L = 256) | 6 |" in text
