import pytest
import torch

from pixelcnn.quantize import Quantizer, check_levels

ALL_VALUES = torch.arange(256, dtype=torch.uint8)


@pytest.mark.parametrize("levels", range(2, 257))
def test_dequantize_then_quantize_is_identity_for_every_level(levels):
    q = Quantizer(levels)
    k = torch.arange(levels)
    values = q.to_values(k)
    assert values.dtype == torch.uint8
    assert torch.equal(q.to_levels(values), k)
    # the network input of a level is the same whether it came from data or from sampling
    assert torch.equal(q.to_input(q.to_levels(values)), q.to_input(k))
    # every uint8 lands on a valid level, the nearest one, and snapping is idempotent
    levels_of_all = q.to_levels(ALL_VALUES)
    assert levels_of_all.min() == 0 and levels_of_all.max() == levels - 1
    assert torch.all(levels_of_all[1:] >= levels_of_all[:-1])
    snapped = q.snap(ALL_VALUES)
    assert torch.equal(q.snap(snapped), snapped)
    distance = (snapped.int() - ALL_VALUES.int()).abs()
    nearest = (values.int()[None, :] - ALL_VALUES.int()[:, None]).abs().min(1).values
    assert torch.equal(distance, nearest)


def test_two_levels_binarize_at_128_and_256_levels_are_identity():
    q2 = Quantizer(2)
    assert q2.to_levels(torch.tensor([0, 127, 128, 255])).tolist() == [0, 0, 1, 1]
    assert q2.valid_values().tolist() == [0, 255]
    q256 = Quantizer(256)
    assert torch.equal(q256.to_levels(ALL_VALUES), ALL_VALUES.long())
    assert torch.equal(q256.to_values(ALL_VALUES.long()), ALL_VALUES)


def test_network_input_spans_minus_one_to_one():
    for levels in (2, 5, 256):
        q = Quantizer(levels)
        x = q.to_input(torch.arange(levels))
        assert x[0] == -1 and x[-1] == 1
        assert torch.all(x[1:] > x[:-1])


def test_is_valid_rejects_values_between_levels():
    q = Quantizer(4)
    assert q.is_valid(torch.tensor([0, 85, 170, 255], dtype=torch.uint8))
    assert not q.is_valid(torch.tensor([0, 86], dtype=torch.uint8))


@pytest.mark.parametrize("bad", [1, 257, 0, -3, 2.0, "8", True])
def test_bad_levels_are_refused(bad):
    with pytest.raises(ValueError, match="levels"):
        check_levels(bad)
