"""Receptive fields measured by gradients: the classic mask facts, the blind spot, pictures."""

import argparse

import pytest
import torch
from PIL import Image

import pixelcnn
from pixelcnn.cli import receptive_field_command
from pixelcnn.receptive_field import (
    causal_reach,
    masked_stack,
    model_receptive_field,
    receptive_field,
    render_panels,
    write_figures,
)
from pixelcnn.receptive_field.measure import _model_panel

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def stack_field(kinds: str, size: int, position=None) -> torch.Tensor:
    position = position or (size // 2, size // 2)
    return receptive_field(masked_stack(kinds), (1, size, size), position)


def grid(rows: list[str]) -> torch.Tensor:
    """["..#", ...] -> bool [H, W]."""
    return torch.tensor([[ch == "#" for ch in row] for row in rows])


def at_or_after(shape, position) -> torch.Tensor:
    """Pixels at or after ``position`` in raster order: bool [H, W]."""
    height, width = shape
    index = torch.arange(height * width).reshape(height, width)
    return index >= position[0] * width + position[1]


def test_single_mask_a_sees_the_three_pixels_above_and_the_one_to_the_left():
    expected = grid([".....", ".###.", ".#...", ".....", "....."])
    assert torch.equal(stack_field("A", 5), expected)


def test_mask_a_then_b_grows_every_layer_and_never_sees_the_target_or_later():
    position, previous = (4, 4), torch.zeros(9, 9, dtype=torch.bool)
    for depth in range(1, 5):
        field = stack_field("A" + "B" * (depth - 1), 9, position)
        assert not (field & at_or_after((9, 9), position)).any()
        assert (field & ~previous).any() and not (previous & ~field).any()
        previous = field


def test_two_mask_a_layers_lose_the_left_neighbour_that_a_then_b_keeps():
    left = (2, 1)
    assert stack_field("A", 5)[left]
    assert not stack_field("AA", 5)[left]
    assert stack_field("AB", 5)[left]


def test_only_mask_b_layers_let_the_target_see_itself():
    assert stack_field("BBBB", 7)[3, 3]
    assert not stack_field("ABBB", 7)[3, 3]


def test_pixelcnn_has_the_blind_spot_of_its_masks():
    model = pixelcnn.create(
        "pixelcnn",
        (1, 9, 9),
        levels=2,
        preset="tiny",
        residual_blocks=2,
        input_kernel=3,
        residual_kernel=3,
    )
    field = model_receptive_field(model, (4, 4))
    # Three 3x3 layers reach 3 rows up and 3 columns across, but a pixel k columns to the
    # right needs k up-right steps, so it must also be >= k rows up: (3, 6) is never seen.
    assert causal_reach((9, 9), (4, 4), 3)[3, 6]
    assert not field[3, 6]
    assert field[2, 6] and field[3, 5]
    # The real network (ReLUs, 1x1 layers, residuals) sees exactly what its masks allow.
    assert torch.equal(field, stack_field("ABB", 9, (4, 4)))


def test_gated_pixelcnn_sees_every_earlier_pixel_within_reach():
    layers, position = 3, (5, 4)
    model = pixelcnn.create(
        "gated", (1, 9, 9), levels=2, preset="tiny", layers=layers, input_kernel=3
    )
    field = model_receptive_field(model, position)
    # The vertical stack sees its own row before the shift down, so it reaches layers + 1
    # rows up and `layers` columns either side; the horizontal stack `layers` to the left.
    row, col = position
    expected = torch.zeros(9, 9, dtype=torch.bool)
    expected[row - layers - 1 : row, col - layers : col + layers + 1] = True
    expected[row, col - layers : col] = True
    assert torch.equal(field, expected)
    assert not (field & at_or_after((9, 9), position)).any()


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("pixelcnn", {}),
        ("gated", {}),
        ("gated", {"num_classes": 3}),
        ("gated", {"vector_dim": 2, "spatial_channels": 1}),
        ("gated", {"data": "tokens", "embedding_dim": 3}),
    ],
)
def test_model_receptive_field_works_for_every_network(name, kwargs):
    model = pixelcnn.create(name, (1, 5, 5), levels=4, preset="tiny", **kwargs)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    field = model_receptive_field(model)
    assert field.dtype == torch.bool and field.shape == (5, 5)
    assert field[1, 2] and not (field & at_or_after((5, 5), (2, 2))).any()
    # The caller's model is untouched: same dtype, same weights, no gradients.
    assert model.dtype == torch.float32
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_rgb_picture_marks_the_target_only_if_its_last_colour_is_seen():
    model = pixelcnn.create("pixelcnn", (3, 5, 5), levels=4, preset="tiny")
    # G and B outputs see R of their own pixel, so the pixel-level field contains it ...
    assert model_receptive_field(model)[2, 2]
    # ... but no output sees B of its own pixel: the picture shows no leak.
    _, field, position = _model_panel(model, None)
    assert position == (2, 2) and not field[2, 2]


def test_positions_outside_the_image_are_rejected():
    model = pixelcnn.create("gated", (1, 5, 5), levels=2, preset="tiny")
    with pytest.raises(ValueError, match="outside the 5x5 image"):
        model_receptive_field(model, (5, 0))
    with pytest.raises(ValueError, match="mask_types"):
        masked_stack("AC")


def check_png(path, min_size=50):
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as picture:
        assert picture.format == "PNG"
        assert picture.width >= min_size and picture.height >= min_size


def test_render_panels_draws_every_panel():
    field = stack_field("A", 5)
    one = render_panels([("one", field, (2, 2))], scale=20)
    two = render_panels([("one", field, (2, 2)), ("two", field, (2, 2))], scale=20)
    assert two.width > one.width >= 5 * 20 and one.height > 5 * 20


def test_write_figures_writes_readable_pngs(tmp_path):
    model = pixelcnn.create("gated", (1, 6, 6), levels=2, preset="tiny", num_classes=3)
    paths = write_figures(tmp_path / "figures", size=5, layers=2, model=model)
    names = [p.name for p in paths]
    assert names == [
        "growth.png",
        "all_a.png",
        "all_b.png",
        "blind_spot.png",
        "model_receptive_field.png",
    ]
    for path in paths:
        check_png(path)


def parse(argv):
    parser = argparse.ArgumentParser()
    receptive_field_command.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["receptive-field", *argv])


def test_cli_draws_a_saved_model_at_a_chosen_pixel(tmp_path, capsys):
    pixelcnn.create("pixelcnn", (1, 6, 6), levels=2, preset="tiny").save(tmp_path / "run")
    out = tmp_path / "pictures"
    args = ["--run", str(tmp_path / "run"), "--row", "1", "--col", "4", "--size", "5"]
    receptive_field_command.run(parse([*args, "--layers", "2", "--out", str(out)]))
    names = ["growth", "all_a", "all_b", "blind_spot", "model_receptive_field"]
    assert capsys.readouterr().out.splitlines() == [str(out / f"{n}.png") for n in names]
    for name in names:
        check_png(out / f"{name}.png")


def test_cli_errors_are_one_line_value_errors(tmp_path):
    out = ["--out", str(tmp_path / "x")]
    with pytest.raises(ValueError, match="outside the 5x5 image"):
        receptive_field_command.run(parse(["--model", "gated", "--size", "5", "--row", "7", *out]))
    with pytest.raises(ValueError, match="give --run or --model"):
        receptive_field_command.run(parse(["--row", "1", *out]))
    with pytest.raises(ValueError, match="layers must be an int from 1 to 16"):
        receptive_field_command.run(parse(["--layers", "17", *out]))
    with pytest.raises(FileNotFoundError):
        receptive_field_command.run(parse(["--run", str(tmp_path / "missing"), *out]))
    assert not (tmp_path / "x").exists()
