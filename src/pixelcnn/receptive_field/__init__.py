"""Receptive fields of real networks, found by autograd and drawn like the PixelCNN figures.

The receptive field of the output at pixel (row, col) is the set of input pixels with a
non-zero gradient: d out[:, :, row, col] / d x. Nothing here reads masks or kernel sizes;
every picture is measured on the package's own layers and networks, so it shows what the
code does, not what it was meant to do.

Classic pictures (van den Oord et al. 2016):

- mask A then mask B layers: the field grows up and to the left, with a blind spot up-right;
- only mask A layers: pixels are lost (a pixel seen by one A layer is hidden by the next);
- only mask B layers: the pixel sees itself, a leak;
- PixelCNN next to Gated PixelCNN: the gated vertical + horizontal stacks have no blind spot.

Two modules: :mod:`~pixelcnn.receptive_field.measure` finds fields by gradients (no PIL)
and :mod:`~pixelcnn.receptive_field.draw` renders them; draw imports measure, never the
reverse. This package re-exports the public names of both.
"""

from pixelcnn.receptive_field.draw import (
    FIGURE_KIND,
    classic_figures,
    figure_paths,
    render_panels,
    render_receptive_field,
    write_figures,
)
from pixelcnn.receptive_field.measure import (
    causal_reach,
    check_figure_size,
    input_sensitivity,
    masked_stack,
    model_receptive_field,
    neutral_condition,
    receptive_field,
)

__all__ = [
    "FIGURE_KIND",
    "causal_reach",
    "check_figure_size",
    "classic_figures",
    "figure_paths",
    "input_sensitivity",
    "masked_stack",
    "model_receptive_field",
    "neutral_condition",
    "receptive_field",
    "render_panels",
    "render_receptive_field",
    "write_figures",
]
