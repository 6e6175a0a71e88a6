"""The throughput benchmark: runs in quick mode, counts FLOPs right, rewrites its docs section."""

from __future__ import annotations

import json
import math

import pytest
import torch
from helpers import load_benchmark

import pixelcnn
from pixelcnn.nn import MaskedConv2d


@pytest.fixture(scope="module")
def throughput():
    return load_benchmark("throughput")


@pytest.fixture(scope="module")
def quick_run(throughput, tmp_path_factory):
    """One quick in-process run writing JSON and appending a docs section to a new file."""
    folder = tmp_path_factory.mktemp("bench")
    out = folder / "results" / "throughput.json"
    docs = folder / "BENCHMARKS.md"
    docs.write_text("# Benchmarks\n\nText before.\n")
    # One thread keeps the smoke test fast even when other processes load the cores.
    argv = ["--quick", "--threads", "1", "--out", str(out), "--update-docs", str(docs)]
    threads_before = torch.get_num_threads()
    returned = throughput.main(argv)
    return {
        "out": out,
        "docs": docs,
        "returned": returned,
        "threads_before": threads_before,
        "threads_after": torch.get_num_threads(),
    }


def analytic_conv_flops(network: torch.nn.Module, height: int, width: int) -> tuple[int, int]:
    """Forward and forward+backward FLOPs per image of a stack of same-size MaskedConv2d.

    Each layer does H*W*C_out*C_in*(k//2+1)*k multiply-adds (the kernel is cropped to the rows
    up to the centre), 2 FLOPs each. Backward computes the weight gradient (same cost) and the
    input gradient (same cost) for every layer but the first, whose input needs no gradient.
    """
    layers = [m for m in network.modules() if isinstance(m, MaskedConv2d)]
    per_layer = [
        2
        * height
        * width
        * m.out_channels
        * m.in_channels
        * (m.kernel_size // 2 + 1)
        * m.kernel_size
        for m in layers
    ]
    forward = sum(per_layer)
    return forward, 3 * forward - per_layer[0]


def test_flop_counter_matches_analytic_count_for_one_masked_conv(throughput):
    batch, c_in, c_out, size, k = 3, 4, 6, 9, 5
    layer = MaskedConv2d(c_in, c_out, k, "B", groups=1)
    x = torch.randn(batch, c_in, size, size)
    flops, per_op = throughput.count_flops(lambda: layer(x))
    expected = 2 * batch * size * size * c_out * c_in * (k // 2 + 1) * k
    assert flops == expected
    assert set(per_op) == {"aten.convolution"}


def test_dense_reference_flops_match_analytic_count(throughput):
    workload = {"name": "t", "in": 3, "out": 5, "kernel": 3, "size": 7}
    step = throughput.dense_conv_step(workload, batch=2, seed=0)
    flops, _ = throughput.count_flops(step)
    forward = 2 * 2 * 7 * 7 * 5 * 3 * 3 * 3
    assert flops == 3 * forward  # forward, input gradient, weight gradient


def test_quick_run_writes_complete_json(quick_run, throughput):
    results = json.loads(quick_run["out"].read_text())
    assert results == json.loads(json.dumps(quick_run["returned"]))
    assert results["quick"] is True
    assert len(results["models"]) == len([m for m in throughput.MODELS if not m.get("heavy")])
    shapes = {tuple(r["image_shape"]) for r in results["models"]}
    assert {(1, 28, 28), (3, 32, 32)} <= shapes

    env = results["environment"]
    for key in ("torch", "torch_num_threads", "cpu", "date", "command"):
        assert env[key]
    assert "--quick" in env["command"]
    assert env["torch_num_threads"] == 1
    assert any("cropped" in note for note in results["notes"])

    dense = results["dense_conv"]
    assert math.isfinite(dense["reference_flops_per_s"]) and dense["reference_flops_per_s"] > 0
    assert len(dense["workloads"]) == len(throughput.DENSE_WORKLOADS)
    for model in results["models"]:
        for key in (
            "parameters",
            "forward_flops_per_image",
            "train_flops_per_image",
            "images_per_s",
            "achieved_train_flops_per_s",
            "fraction_of_dense_conv",
        ):
            value = model[key]
            assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, key
        assert model["train_flops_per_image"] > 2 * model["forward_flops_per_image"]


def test_quick_run_restores_thread_count(quick_run):
    # quick_run asked for one thread; the process-wide setting must be back afterwards.
    assert quick_run["threads_after"] == quick_run["threads_before"]
    assert json.loads(quick_run["out"].read_text())["environment"]["torch_num_threads"] == 1


def test_flops_per_image_of_the_mnist_model_match_analytic_count(quick_run):
    entry = next(
        r
        for r in quick_run["returned"]["models"]
        if r["image_shape"] == [1, 28, 28] and r["model"] == "pixelcnn"
    )
    model = pixelcnn.create(entry["model"], (1, 28, 28), levels=256, preset=entry["preset"])
    forward, train = analytic_conv_flops(model.network, 28, 28)
    assert entry["forward_flops_per_image"] == forward
    assert entry["train_flops_per_image"] == train
    assert entry["parameters"] == sum(p.numel() for p in model.parameters())


def test_markdown_table_has_one_row_per_model(quick_run, throughput):
    table = throughput.markdown_table(quick_run["returned"])
    names = {entry["name"] for entry in throughput.MODELS}
    rows = [line for line in table.splitlines() if line.split(" | ")[0][2:] in names]
    assert len(rows) == len(quick_run["returned"]["models"])
    assert "28×28×1" in table and "32×32×3" in table
    assert "fraction of dense conv" in table


def test_update_docs_appends_then_replaces_idempotently(quick_run, throughput):
    docs = quick_run["docs"]
    first = docs.read_text()
    assert first.startswith("# Benchmarks\n\nText before.\n")
    assert first.count(throughput.DOCS_START) == 1 and first.count(throughput.DOCS_END) == 1

    docs.write_text(first + "\nText after.\n")
    for _ in range(2):
        throughput.update_docs(docs, quick_run["returned"])
    text = docs.read_text()
    assert text.count(throughput.DOCS_START) == 1 and text.count(throughput.DOCS_END) == 1
    assert text.count("| model | image shape |") == 1
    assert text.startswith("# Benchmarks\n\nText before.\n")
    assert text.endswith("\nText after.\n")
    assert quick_run["returned"]["environment"]["command"] in text
    assert text == first + "\nText after.\n"


def test_update_docs_replaces_a_stale_section(tmp_path, quick_run, throughput):
    docs = tmp_path / "B.md"
    stale = f"intro\n{throughput.DOCS_START}\nold table\n{throughput.DOCS_END}\noutro\n"
    docs.write_text(stale)
    throughput.update_docs(docs, quick_run["returned"])
    text = docs.read_text()
    assert "old table" not in text
    assert text.startswith("intro\n") and text.endswith("\noutro\n")
    assert text.count("| model | image shape |") == 1
