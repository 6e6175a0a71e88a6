"""The contract suite: every registered network x every registered likelihood x 1 and 3
channels x each condition kind the network accepts x token input, certified the same way.

For each combination: causality by Jacobian (no output sees its own sub-pixel or a later
one, and each sees its neighbours), exact normalization (every conditional sums to one over
its values, and on the smallest images the whole distribution sums to one by enumeration),
cached == naive sampling, exact compression round trips, a save/load round trip, and a
training step through the library.
Registering a network or a likelihood is all it takes to be covered: the toy network below,
two masked convolutions defined and registered here, passes without any change to
``sampling/``, ``train/`` or ``cli/``.
"""

from __future__ import annotations

import copy
import itertools
import math
from dataclasses import dataclass

import pytest
import torch
from helpers import lively

import pixelcnn
from pixelcnn.likelihoods import LIKELIHOODS
from pixelcnn.networks import NETWORKS, Network, NetworkSpec, hyperparameter_names, register_network
from pixelcnn.nn import MaskedConv2d
from pixelcnn.train import TrainOptions, train


class TwoMaskedConvolutions(Network):
    """A fourth network that exists only in this test: mask A, ReLU, mask B. It cannot
    step, so the cached sampler must refuse it and the naive one must serve it."""

    row_multiple = 1

    def __init__(self, colour_groups, out_channels, input_channels=None, hidden_channels=6):
        super().__init__(colour_groups, out_channels, input_channels)
        groups = colour_groups
        self.first = MaskedConv2d(self.input_channels, hidden_channels, 3, "A", groups)
        self.second = MaskedConv2d(hidden_channels, out_channels, 3, "B", groups)

    def forward(self, x, condition=None):
        self.check_condition(condition)
        return self.second(torch.relu(self.first(x)))


register_network(
    NetworkSpec("two-masked-test", TwoMaskedConvolutions, presets={"default": {}, "tiny": {}})
)

CONDITION_ARGUMENTS = {
    "class": "num_classes",
    "vector": "vector_dim",
    "spatial": "spatial_channels",
}


@dataclass(frozen=True)
class Case:
    network: str
    likelihood: str
    channels: int  # 1 or 3; token grids have 1
    condition: str | None = None  # "class", "vector", "spatial"
    tokens: bool = False

    @property
    def id(self) -> str:
        what = "tokens" if self.tokens else f"{self.channels}ch"
        return f"{self.network}-{self.likelihood}-{what}-{self.condition or 'plain'}"


def cases() -> list[Case]:
    found = []
    for network in NETWORKS:
        accepted = [
            k for k, arg in CONDITION_ARGUMENTS.items() if arg in hyperparameter_names(network)
        ]
        for likelihood, channels, condition in itertools.product(
            LIKELIHOODS, (1, 3), [None, *accepted]
        ):
            found.append(Case(network, likelihood, channels, condition))
        found.append(Case(network, "categorical", 1, tokens=True))
    return found


CASES = cases()
LEVELS = 3  # odd on purpose: no power-of-two shortcut hides a wrong bin


def side(case: Case) -> int:
    """The square a case is checked on: 4 for a U-Net (its smallest size without padding),
    else 2; tests/test_image_sizes.py checks other sizes."""
    return 4 if (NETWORKS[case.network].network.row_multiple or 1) > 1 else 2


def build(case: Case) -> pixelcnn.DensityModel:
    torch.manual_seed(0)
    extra = {CONDITION_ARGUMENTS[case.condition]: 2} if case.condition else {}
    n = side(case)
    if case.tokens:
        return pixelcnn.create(
            case.network, (n, n), levels=LEVELS, data="tokens", embedding_dim=4, preset="tiny"
        )
    return pixelcnn.create(
        case.network,
        (case.channels, n, n),
        levels=LEVELS,
        likelihood=case.likelihood,
        preset="tiny",
        **extra,
    )


def condition_for(case: Case, batch: int, generator: torch.Generator, dtype=torch.float64):
    n = side(case)
    if case.condition == "class":
        return torch.randint(0, 2, (batch,), generator=generator)
    if case.condition == "vector":
        return torch.randn(batch, 2, generator=generator, dtype=dtype)
    if case.condition == "spatial":
        return torch.randn(batch, 2, n, n, generator=generator, dtype=dtype)
    return None


def random_levels(model, batch: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randint(0, model.levels, (batch, *model.image_shape), generator=generator)


def random_data(model, batch: int, generator: torch.Generator) -> torch.Tensor:
    """What a user hands in: uint8 images [B, C, H, W] or token grids [B, H, W]."""
    return model.encoding.from_levels(random_levels(model, batch, generator))


def float32_inputs(case: Case, model, batch: int, seed: int):
    """Data and a condition for a float32 model (as built)."""
    generator = torch.Generator().manual_seed(seed)
    data = random_data(model, batch, generator)
    return data, condition_for(case, batch, generator, torch.float32)


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def case(request) -> Case:
    return request.param


# ----------------------------------------------------------------------------- causality
def test_no_output_sees_its_own_sub_pixel_or_a_later_one(case):
    model = lively(build(case))
    network = model.network
    groups = model.image_shape[0] if not model.likelihood.joint_channels else 1
    groups = 1 if case.tokens else groups
    n = side(case)
    generator = torch.Generator().manual_seed(2)
    prepared = model.prepare_condition(condition_for(case, 1, generator), 1)
    x = torch.randn(1, network.input_channels, n, n, generator=generator, dtype=torch.float64)
    jacobian = torch.autograd.functional.jacobian(lambda v: network(v, prepared), x)
    depends = jacobian[0, :, :, :, 0].abs() > 0  # [P, H, W, C_in, H, W]
    out_group = torch.arange(network.out_channels) * groups // network.out_channels
    in_group = torch.arange(network.input_channels) * groups // network.input_channels
    for p, i, j, c, k, m in zip(*depends.nonzero(as_tuple=True), strict=True):
        earlier = (k, m) < (i, j) or ((k, m) == (i, j) and in_group[c] < out_group[p])
        assert earlier, (
            f"output {int(p)} at ({int(i)}, {int(j)}) sees input {int(c)} at ({int(k)}, {int(m)})"
        )
    seen = depends.any(dim=0).any(dim=2)  # [H, W, H, W]: position sees position
    for i, j in itertools.product(range(n), range(n)):
        if j:
            assert seen[i, j, i, j - 1], f"({i}, {j}) does not see its left neighbour"
        if i:
            assert seen[i, j, i - 1, j], f"({i}, {j}) does not see the pixel above"


# ------------------------------------------------------------------------- normalization
def test_every_conditional_sums_to_one(case):
    """sum_v p(x_i = v | x_<i) = 1 at every sub-pixel, for random contexts: with causality,
    this is exact normalization of the whole model."""
    model = lively(build(case))
    generator = torch.Generator().manual_seed(3)
    condition = condition_for(case, 1, generator)
    count = math.prod(model.image_shape)
    for image in random_levels(model, 2, generator).reshape(2, -1):
        # row r: the image with sub-pixel r // L set to level r % L
        variants = image.repeat(count * LEVELS, 1)
        rows = torch.arange(len(variants))
        variants[rows, rows // LEVELS] = rows % LEVELS
        data = model.encoding.from_levels(variants.reshape(len(variants), *model.image_shape))
        cond = None if condition is None else condition.expand(len(variants), *condition.shape[1:])
        with torch.no_grad():
            log_p = model.conditional_log_probs(data, cond).reshape(len(variants), -1)
        own = log_p[rows, rows // LEVELS].reshape(-1, LEVELS)
        assert torch.allclose(own.exp().sum(1), torch.ones(len(own), dtype=own.dtype), atol=1e-9)


def sub_pixels(case: Case) -> int:
    return (1 if case.tokens else case.channels) * side(case) ** 2


# Where the image space is small enough to enumerate (elsewhere the test above, with
# causality, already proves the sum is one).
ENUMERABLE = [c for c in CASES if LEVELS ** sub_pixels(c) <= 6561]


@pytest.mark.parametrize("case", ENUMERABLE, ids=[c.id for c in ENUMERABLE])
def test_the_smallest_images_sum_to_one(case):
    model = lively(build(case))
    count = math.prod(model.image_shape)
    grid = torch.tensor(list(itertools.product(range(LEVELS), repeat=count)))
    # raster order, then channel: the product's last factor is the fastest, as in (H, W, C)
    shape = (len(grid), *model.image_shape[1:], model.image_shape[0])
    images = model.encoding.from_levels(grid.reshape(shape).permute(0, 3, 1, 2))
    generator = torch.Generator().manual_seed(4)
    condition = condition_for(case, 1, generator)
    cond = None if condition is None else condition.expand(len(images), *condition.shape[1:])
    with torch.no_grad():
        total = model.log_prob(images, cond).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-9)


# ---------------------------------------------------------------------------- sampling
def test_cached_sampling_draws_what_naive_sampling_draws(case):
    model = lively(build(case))
    generator = torch.Generator().manual_seed(5)
    condition = condition_for(case, 3, generator)
    naive = model.sample(3, condition, generator=torch.Generator().manual_seed(6), method="naive")
    if (
        model.network.generation(3, *model.image_shape[1:], model.prepare_condition(condition, 3))
        is None
    ):
        with pytest.raises(ValueError, match="cannot step"):
            model.sample(3, condition, method="cached")
        return
    cached = model.sample(3, condition, generator=torch.Generator().manual_seed(6))
    assert torch.equal(cached, naive)


# ------------------------------------------------------------------------------- files
def test_save_and_load_give_the_same_model(case, tmp_path):
    model = build(case)
    data, condition = float32_inputs(case, model, 2, seed=7)
    model.save(tmp_path / "m")
    same = pixelcnn.load(tmp_path / "m")
    assert same.config == model.config
    with torch.no_grad():
        assert torch.equal(same.log_prob(data, condition), model.log_prob(data, condition))


# ------------------------------------------------------------------------- compression
def test_compression_round_trips_exactly(case):
    """Five images in groups of two (the last group padded), with random weights so the
    conditionals are far from uniform: decoded whole or one image at a time, bit-exact."""
    model = lively(build(case)).float()
    data, condition = float32_inputs(case, model, 5, seed=9)
    if case.network == "two-masked-test":  # it cannot step, and coding takes the steps
        with pytest.raises(ValueError, match="cannot step"):
            model.compress(data, condition)
        return
    if case.condition in ("vector", "spatial"):
        with pytest.raises(ValueError, match="class labels only"):
            model.compress(data, condition)
        return
    blob = model.compress(data, condition, batch_size=2)
    assert torch.equal(model.decompress(blob), data)
    assert torch.equal(model.decompress(blob, [4, 1]), data[[4, 1]])
    header, streams = pixelcnn.coding.unpack(blob)
    assert len(streams) == 3 and header.count == 5
    assert header.labels == (None if condition is None else condition.tolist())


# ---------------------------------------------------------------------------- training
def test_a_training_step_through_the_library(case, tmp_path):
    model = build(case)
    data, condition = float32_inputs(case, model, 8, seed=8)
    before = copy.deepcopy(model.state_dict())
    options = TrainOptions.for_network(
        case.network, steps=2, batch_size=4, eval_every=0, progress=False, init_images=0
    )
    result = train(model, data, None, options, tmp_path, train_condition=condition)
    assert result.step == 2 and math.isfinite(result.train_bpd)
    changed = [not torch.equal(v, before[k]) for k, v in model.state_dict().items()]
    assert any(changed)
    pixelcnn.load(tmp_path)  # the run directory holds the trained model


def test_the_suite_covers_every_registered_network_and_likelihood():
    assert {c.network for c in CASES} == set(NETWORKS) and "two-masked-test" in NETWORKS
    assert {c.likelihood for c in CASES} == set(LIKELIHOODS)
    assert len(CASES) >= 30
