"""Training: it learns, it resumes exactly, and its files are what the docs say."""

import json

import pytest
import torch

import pixelcnn
from pixelcnn.data import load_dataset, resize_images
from pixelcnn.evaluate import evaluate
from pixelcnn.train import TrainOptions, batch_indices, list_checkpoints, train
from pixelcnn.train.options import lr_factor
from pixelcnn.train.state_io import flatten_state, unflatten_state


@pytest.fixture(scope="module")
def digits():
    """Real digits, 10x10, 4 levels: 600 train / 100 test (small enough for a CPU test)."""
    train_set = load_dataset("mnist5k", "train")
    test_set = load_dataset("mnist5k", "test")
    snap = pixelcnn.Quantizer(4).snap
    train_images = snap(torch.from_numpy(resize_images(train_set.images[::7][:600], 10)))
    test_images = snap(torch.from_numpy(resize_images(test_set.images[:100], 10)))
    return train_images, test_images


def _model(seed=0):
    torch.manual_seed(seed)
    return pixelcnn.create("pixelcnn", (1, 10, 10), levels=4, preset="tiny")


def _options(**kwargs):
    defaults = dict(steps=60, batch_size=16, learning_rate=3e-3, progress=False, eval_every=0)
    return TrainOptions(**{**defaults, **kwargs})


def test_training_lowers_test_bits_per_dim(digits, tmp_path):
    train_images, test_images = digits
    model = _model()
    before = evaluate(model, test_images).bits_per_dim
    result = train(
        model, train_images, test_images, _options(steps=150), tmp_path, log=lambda s: None
    )
    after = evaluate(model, test_images).bits_per_dim
    assert result.step == 150
    assert after < before - 0.5, (before, after)  # 2 bits/dim is uniform over 4 levels
    assert result.test_bpd == pytest.approx(after)


def test_run_directory_holds_model_checkpoints_metrics_and_curve(digits, tmp_path):
    train_images, test_images = digits
    options = _options(steps=30, checkpoint_every=10, eval_every=10, keep_checkpoints=2)
    train(_model(), train_images, test_images, options, tmp_path, log=lambda s: None)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000020", "step_00000030"]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 30]
    assert all("test_bpd" in r and "train_bpd" in r for r in records)
    assert (tmp_path / "training_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    loaded = pixelcnn.load(tmp_path)  # the run directory is itself a saved model
    assert torch.isfinite(loaded.log_prob(test_images[:4])).all()


def test_resumed_training_ends_with_the_same_weights(digits, tmp_path):
    train_images, test_images = digits
    straight = _model()
    train(straight, train_images, None, _options(steps=40), tmp_path / "a", log=lambda s: None)

    interrupted = _model()
    options = _options(steps=40, checkpoint_every=0)
    train(interrupted, train_images, None, options, tmp_path / "b", log=print, stop_at=23)
    resumed = _model(seed=123)  # a fresh process would start from other random weights
    messages = []
    options = _options(steps=40, checkpoint_every=0)
    train(resumed, train_images, None, options, tmp_path / "b", resume=True, log=messages.append)
    assert "resumed" in messages[0]
    for (name, a), (_, b) in zip(
        straight.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6), name


def test_resume_refuses_a_checkpoint_of_another_model(digits, tmp_path):
    train_images, _ = digits
    train(_model(), train_images, None, _options(steps=5), tmp_path, log=lambda s: None)
    other = pixelcnn.create("pixelcnn", (1, 10, 10), levels=4, preset="tiny", hidden_channels=16)
    with pytest.raises(ValueError, match="different model"):
        train(other, train_images, None, _options(steps=10), tmp_path, resume=True)


def test_batch_order_is_a_seeded_permutation_per_epoch():
    first_epoch = torch.cat([batch_indices(s, 10, 3, seed=5) for s in range(3)])
    assert len(set(first_epoch.tolist())) == 9  # 3 full batches, no repeats
    assert torch.equal(batch_indices(4, 10, 3, seed=5), batch_indices(4, 10, 3, seed=5))
    assert not torch.equal(batch_indices(0, 10, 3, seed=5), batch_indices(3, 10, 3, seed=5))


def test_optimizer_state_round_trips_through_tensors_and_json():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    skeleton, tensors = flatten_state(optimizer.state_dict())
    restored = unflatten_state(json.loads(json.dumps(skeleton)), tensors)
    fresh = torch.optim.Adam(model.parameters())
    fresh.load_state_dict(restored)
    for key, value in optimizer.state_dict()["state"][0].items():
        assert torch.equal(fresh.state_dict()["state"][0][key], value)


@pytest.mark.parametrize(
    "bad",
    [
        {"steps": 0},
        {"batch_size": 0},
        {"learning_rate": 0},
        {"lr_schedule": "warp"},
        {"ema_decay": 1.0},
        {"warmup_steps": -1},
        {"warmup_steps": 2.5},
    ],
)
def test_bad_training_options_are_refused(bad):
    with pytest.raises(ValueError):
        _options(**bad).check()


def test_weight_average_is_what_gets_saved_evaluated_and_resumed(digits, tmp_path):
    train_images, test_images = digits
    options = _options(steps=30, ema_decay=0.9, eval_every=30)
    model = _model()
    result = train(model, train_images, test_images, options, tmp_path / "a", log=lambda s: None)
    average = result.eval_model
    assert average is not model
    raw, averaged = model.state_dict(), average.state_dict()
    assert any(not torch.equal(raw[k], averaged[k]) for k in raw)
    saved = pixelcnn.load(tmp_path / "a")
    assert torch.equal(saved.log_prob(test_images[:5]), average.log_prob(test_images[:5]))
    assert result.test_bpd == pytest.approx(evaluate(average, test_images).bits_per_dim)

    # resuming restores the average too: same result as the uninterrupted run
    options = _options(steps=30, ema_decay=0.9, checkpoint_every=0)
    train(_model(), train_images, None, options, tmp_path / "b", log=lambda s: None, stop_at=17)
    resumed = train(
        _model(seed=9), train_images, None, options, tmp_path / "b", resume=True, log=lambda s: None
    )
    for key, value in resumed.eval_model.state_dict().items():
        assert torch.allclose(value, averaged[key], atol=1e-6), key


def test_warmup_rises_linearly_then_the_cosine_runs_over_the_rest():
    factor = lr_factor("cosine", total_steps=110, warmup_steps=10)
    assert [factor(s) for s in range(10)] == pytest.approx([(s + 1) / 11 for s in range(10)])
    assert factor(10) == pytest.approx(1.0)  # the cosine's start, after the warm-up
    assert factor(60) == pytest.approx(0.05 + 0.95 * 0.5)  # halfway through what remains
    assert factor(110) == pytest.approx(0.05) and factor(500) == pytest.approx(0.05)
    constant = lr_factor("constant", total_steps=110, warmup_steps=4)
    assert [constant(s) for s in (0, 3, 4, 100)] == pytest.approx([0.2, 0.8, 1.0, 1.0])
    assert lr_factor("cosine", 100)(0) == 1.0  # no warm-up: as before


def test_training_records_its_time_and_a_resume_adds_to_it(digits, tmp_path):
    train_images, _ = digits
    options = _options(steps=20, checkpoint_every=10, log_every=10, warmup_steps=5)
    train(_model(), train_images, None, options, tmp_path, log=lambda s: None, stop_at=10)
    first = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    # 5 warm-up steps, then a third of the cosine's 15 steps: cos(pi / 3) = 0.5
    assert first[0]["lr"] == pytest.approx(3e-3 * (0.05 + 0.95 * 0.75))
    train(_model(), train_images, None, options, tmp_path, resume=True, log=lambda s: None)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20]
    seconds = [r["train_seconds"] for r in records]
    assert 0 < seconds[0] < seconds[1]  # the resumed run went on from the first's time
    assert records[1]["cpu_seconds"] > records[0]["cpu_seconds"] > 0
