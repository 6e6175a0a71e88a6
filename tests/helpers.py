"""Shared test utilities (imported by test modules; pytest puts tests/ on sys.path)."""

import importlib.util
import itertools
import sys
from pathlib import Path

import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def load_benchmark(name: str):
    """``benchmarks/<name>.py`` imported as a module (benchmarks/ is not a package), with
    benchmarks/ on the path while it loads, where the scripts find common.py."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(
            f"benchmark_{name}", BENCHMARKS / f"{name}.py"
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses in the script look their module up
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


def perturb(model, scale: float = 1.0, seed: int = 0):
    """Give every weight large random values so conditionals are far from uniform."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    return model


def dependency_matrix(
    network, image_shape, params_per_channel, trials: int = 8, condition=None
) -> torch.Tensor:
    """D[o, i] = True when network output sub-pixel o has non-zero gradient wrt input i
    for at least one of ``trials`` random inputs (one input can leave a ReLU path dead).
    ``condition`` is a prepared condition dict for a batch of ``trials``.

    Sub-pixels are numbered in the autoregressive order: raster position, then channel.
    """
    channels, height, width = image_shape
    x = torch.randn(trials, *image_shape, dtype=torch.float64)
    network = network.double()
    if condition is not None:
        condition = {k: v.double() if v.is_floating_point() else v for k, v in condition.items()}
    jac = torch.autograd.functional.jacobian(lambda v: network(v, condition), x, vectorize=True)
    # [T, C*P, H, W, T, C, H, W] -> per trial [C, P, H, W, C, H, W]
    jac = torch.stack([jac[t, :, :, :, t] for t in range(trials)])
    jac = jac.reshape(trials, channels, params_per_channel, height, width, channels, height, width)
    dep = jac.abs().sum((0, 2)) > 0  # [C_out, H, W, C_in, H, W]
    # reorder to (H, W, C) on both sides, then flatten to the raster-channel order
    dep = dep.permute(1, 2, 0, 3, 4, 5).permute(0, 1, 2, 4, 5, 3)
    n = channels * height * width
    return dep.reshape(n, n)


def all_images(image_shape, values):
    """Every image [N, C, H, W] whose sub-pixels take the given uint8 values."""
    count = image_shape[0] * image_shape[1] * image_shape[2]
    grid = list(itertools.product(values, repeat=count))
    return torch.tensor(grid, dtype=torch.uint8).reshape(len(grid), *image_shape)


def count_operations(fn) -> int:
    """How many tensor operations (ATen calls) ``fn()`` runs, counted by the sampling
    benchmark's dispatch mode."""
    with load_benchmark("sampling_speed").OperationCounter() as counter:
        fn()
    return counter.count


def lively(model: torch.nn.Module) -> torch.nn.Module:
    """float64, with large random weights: no ReLU path dead, conditionals far from uniform
    (a zero-initialised head would make every test pass trivially)."""
    model = model.double()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator, dtype=torch.float64))
    return model.eval()
