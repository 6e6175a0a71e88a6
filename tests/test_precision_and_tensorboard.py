"""Mixed-precision training (bf16 autocast on the CPU; fp16 refused without a GPU) and the
optional TensorBoard events."""

import sys

import pytest
import torch

import pixelcnn
from pixelcnn.evaluate import evaluate
from pixelcnn.nn import MaskedConv2d
from pixelcnn.train import TrainOptions, train


def data(count=48, seed=0):
    """6x6 images of the two darkest of 4 levels: at most 1 bit/dim to learn from 2."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (count, 1, 6, 6), generator=generator, dtype=torch.uint8) * 85


def tiny(**keywords):
    torch.manual_seed(0)
    return pixelcnn.create("gated", (1, 6, 6), levels=4, preset="tiny", **keywords)


def options(**kwargs):
    defaults = dict(steps=10, batch_size=8, eval_every=5, eval_images=16, progress=False)
    return TrainOptions(**{**defaults, **kwargs})


def test_bf16_runs_the_training_passes_in_bfloat16_and_evaluates_in_float32(tmp_path):
    model = tiny()
    seen = set()
    conv = next(m for m in model.modules() if isinstance(m, MaskedConv2d))
    conv.register_forward_hook(lambda module, args, out: seen.add((out.dtype, module.training)))
    opts = options(precision="bf16", learning_rate=1e-2)
    result = train(model, data(), data(16, seed=1), opts, tmp_path)
    assert (torch.bfloat16, True) in seen  # training passes: autocast
    assert (torch.float32, False) in seen  # evaluation: full precision
    assert all(p.dtype == torch.float32 for p in model.parameters())  # fp32 master weights
    assert result.test_bpd == pytest.approx(evaluate(model, data(16, seed=1)).bits_per_dim)
    assert result.test_bpd < 1.5  # it learns: uniform over the 4 levels is 2 bits


def test_fp16_without_a_gpu_is_refused_before_anything_is_written(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: fp16 is allowed")
    with pytest.raises(ValueError, match="fp16 training needs a GPU"):
        train(tiny(), data(), None, options(precision="fp16"), tmp_path / "run")
    assert not (tmp_path / "run").exists()  # not even the directory


def test_bad_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        options(precision="int8").check()


def test_tensorboard_gets_scalars_and_sample_grids(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(tiny(num_classes=3), data(), data(16, seed=1), options(), tmp_path,
          train_condition=torch.arange(48) % 3, test_condition=torch.arange(16) % 3)  # fmt: skip
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/bits_per_dim", "test/bits_per_dim", "train/learning_rate"} <= set(scalars)
    assert [e.step for e in events.Scalars("test/bits_per_dim")] == [5, 10]
    images = events.Images("samples")
    assert [e.step for e in images] == [5, 10]
    assert images[0].width == 4 * 6 + 5 * 2  # 4 columns of 6-pixel digits, 2-pixel padding


def test_training_without_tensorboard_installed_or_wanted(tmp_path, monkeypatch):
    train(tiny(), data(), None, options(tensorboard=False), tmp_path / "off")
    assert not (tmp_path / "off" / "tensorboard").exists()
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    result = train(tiny(), data(), None, options(), tmp_path / "missing")
    assert result.step == 10 and not (tmp_path / "missing" / "tensorboard").exists()


def test_compiled_training_takes_the_steps_of_eager_training(tmp_path):
    """--compile changes how the training forward runs, not what it computes: the same
    weights after the same steps, and a model that saves and loads as ever."""
    eager, compiled = tiny(), tiny()
    opts = dict(steps=3, eval_every=0, checkpoint_every=0)
    train(eager, data(), None, options(**opts), tmp_path / "eager")
    train(compiled, data(), None, options(**opts, compile=True), tmp_path / "compiled")
    for (name, a), (other, b) in zip(
        eager.state_dict().items(), compiled.state_dict().items(), strict=True
    ):
        assert name == other
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    compiled.save(tmp_path / "saved")
    assert pixelcnn.load(tmp_path / "saved").state_dict().keys() == eager.state_dict().keys()
