"""bf16 scoring: used where it keeps every score within the tolerance of fp32, replaced by
fp32 with a warning where it does not, and offered by every scoring command."""

import json
import warnings

import pytest
import torch

import pixelcnn
from pixelcnn import evaluate as evaluation
from pixelcnn.cli import main
from pixelcnn.evaluate import PrecisionWarning, evaluate


@pytest.fixture
def model():
    torch.manual_seed(0)
    return pixelcnn.create("pixelcnnpp", (1, 8, 8), levels=16, preset="tiny")


@pytest.fixture
def images(model):
    generator = torch.Generator().manual_seed(1)
    raw = torch.randint(0, 256, (20, 1, 8, 8), dtype=torch.uint8, generator=generator)
    return model.quantize(raw)


def test_bf16_scores_stay_near_fp32_and_report_their_gap(model, images, monkeypatch):
    monkeypatch.setattr(evaluation, "BF16_TOLERANCE", float("inf"))
    exact = evaluate(model, images, batch_size=8)
    fast = evaluate(model, images, batch_size=8, precision="bf16")
    assert exact.precision == "fp32" and exact.precision_gap is None
    assert fast.precision == "bf16" and 0 < fast.precision_gap < 0.05
    assert fast.as_dict()["precision"] == "bf16"
    # bf16 really ran: the scores differ, but only a little
    assert not (fast.nats == exact.nats).all()
    assert abs(fast.bits_per_dim - exact.bits_per_dim) < 0.05


def test_bf16_beyond_the_tolerance_falls_back_to_fp32_with_a_warning(model, images, monkeypatch):
    monkeypatch.setattr(evaluation, "BF16_TOLERANCE", 0.0)
    exact = evaluate(model, images, batch_size=8)
    with pytest.warns(PrecisionWarning, match="scoring in fp32"):
        result = evaluate(model, images, batch_size=8, precision="bf16")
    assert result.precision == "fp32" and result.precision_gap > 0
    assert (result.nats == exact.nats).all()  # every batch, the first one included


def test_unknown_precision_is_refused(model, images):
    with pytest.raises(ValueError, match="precision must be one of"):
        evaluate(model, images, precision="fp8")


def test_eval_and_score_take_precision(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    tiny = ["--preset", "tiny", "--size", "8", "--levels", "4", "--batch-size", "8", "--quiet"]
    assert main(["train", "--out", str(run), "--steps", "2", *tiny, "--samples", "0"]) == 0
    capsys.readouterr()
    argv = ["eval", str(run), "--json", "--quiet", "--limit", "16"]
    monkeypatch.setattr(evaluation, "BF16_TOLERANCE", float("inf"))
    assert main([*argv, "--precision", "bf16"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["precision"] == "bf16" and "precision_gap_bits_per_dim" in result
    monkeypatch.setattr(evaluation, "BF16_TOLERANCE", 0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main([*argv, "--precision", "bf16"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["precision"] == "fp32"
    (warning,) = captured.err.strip().splitlines()
    assert warning.startswith("pixelcnn: warning: bf16 moves scores by up to")
    out = tmp_path / "scores.csv"
    assert main(["score", str(run), "--quiet", "--limit", "8", "--out", str(out),
                 "--precision", "bf16"]) == 0  # fmt: skip
    assert out.read_text().startswith("index,source")
    assert main([*argv, "--precision", "fp16"]) == 2
    assert "invalid choice" in capsys.readouterr().err
