"""benchmarks/recipe_curves.py runs candidates, records their curves and writes the docs."""

import json

from helpers import load_benchmark

from pixelcnn.cli import main


def test_recipe_curves_smoke_run_writes_curves_plot_and_docs(tmp_path):
    recipes = load_benchmark("recipe_curves")
    out, docs = tmp_path / "r.json", tmp_path / "B.md"
    argv = ["--minutes", "0.02", "--data", "mnist5k", "--size", "8", "--preset", "tiny"]
    argv += ["--probe-steps", "3", "--evals", "2", "--out", str(out)]
    recipes.main([*argv, "--candidates", "base", "fast-lr", "--update-docs", str(docs)])
    runs = json.loads(out.read_text())["runs"]
    assert [r["candidate"] for r in runs] == ["base", "fast-lr"]
    # the same cost of a step: one probe, the same planned steps
    assert runs[0]["steps"] == runs[1]["steps"] >= 1
    for run in runs:
        curve = run["curve"]
        assert 1 <= len(curve) <= 2 and curve[-1]["step"] == run["steps"]
        minutes = [p["train_minutes"] for p in curve]
        assert minutes == sorted(minutes) and minutes[0] > 0
        assert all(0 < p["test_bpd"] < 9 for p in curve) and run["test_images"] == 500
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    text = docs.read_text()
    assert "<!-- recipe:start -->" in text and "| fast-lr |" in text
    # --merge keeps the other candidates, replacing a candidate's run at the same budget
    recipes.main([*argv, "--candidates", "base", "--merge"])
    again = json.loads(out.read_text())["runs"]
    assert sorted(r["candidate"] for r in again) == ["base", "fast-lr"]


def test_a_finished_training_run_adds_its_curve(tmp_path):
    recipes = load_benchmark("recipe_curves")
    run, out = tmp_path / "run", tmp_path / "r.json"
    command = ["train", "--out", str(run), "--preset", "tiny", "--size", "8", "--steps", "4"]
    command += ["--eval-every", "2", "--eval-images", "0", "--warmup", "1", "--quiet"]
    assert main([*command, "--samples", "0"]) == 0
    said = "pixelcnn " + " ".join(command)
    recipes.main(["--add-run", "long", str(run), said, "--out", str(out)])
    (added,) = json.loads(out.read_text())["runs"]
    assert added["candidate"] == "long" and added["command"] == said
    assert [p["step"] for p in added["curve"]] == [2, 4] and added["test_images"] == 500
    assert added["settings"]["warmup_steps"] == 1 and added["settings"]["precision"] == "fp32"
