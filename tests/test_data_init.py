"""Data-dependent initialisation of weight-normalized layers (PixelCNN++)."""

import torch

import pixelcnn
from pixelcnn.nn.data_init import _weight_normalized, data_dependent_init


def _layer_outputs(model, levels):
    outputs, handles = {}, []
    for name, module in model.network.named_modules():
        if _weight_normalized(module):
            hook = lambda m, i, o, name=name: outputs.setdefault(name, o)  # noqa: E731
            handles.append(module.register_forward_hook(hook))
    with torch.no_grad():
        model(levels)
    for handle in handles:
        handle.remove()
    return outputs


def test_every_weight_normalized_layer_starts_standardized_on_the_batch():
    model = pixelcnn.create("pixelcnnpp", (3, 8, 8), levels=256, preset="tiny")
    images = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    levels = model.images_to_levels(images)
    before = _layer_outputs(model, levels)
    count = data_dependent_init(model.network, lambda: model(levels))
    after = _layer_outputs(model, levels)
    assert count == len(after) > 20  # convs, transposed convs and 1x1 layers alike
    for name, output in after.items():
        mean, std = output.mean((0, 2, 3)), output.std((0, 2, 3))
        assert mean.abs().max() < 1e-4 and (std - 1).abs().max() < 1e-3, name
    assert any((before[n].std((0, 2, 3)) - 1).abs().max() > 0.1 for n in before)


def test_networks_without_weight_normalization_are_left_alone():
    model = pixelcnn.create("gated", (1, 4, 4), levels=2, preset="tiny")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    levels = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    assert data_dependent_init(model.network, lambda: model(levels)) == 0
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_training_runs_the_initialisation_before_the_first_step(tmp_path):
    from pixelcnn.train import TrainOptions, train

    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)
    runs = {}
    for init in (0, 32):
        torch.manual_seed(0)
        model = pixelcnn.create("pixelcnnpp", (1, 8, 8), levels=16, preset="tiny")
        options = TrainOptions(steps=1, batch_size=8, init_images=init, progress=False)
        train(model, model.quantize(images), None, options, tmp_path / str(init), log=print)
        runs[init] = model.state_dict()["network.u_init.conv.parametrizations.weight.original0"]
    # one Adam step moves a scale by about the learning rate; the initialisation by far more
    assert (runs[32] - runs[0]).abs().max() > 0.1
