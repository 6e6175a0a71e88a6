"""pixelcnn: PixelCNN-family autoregressive image models with exact likelihoods.

model = pixelcnn.create("pixelcnn", image_shape=(1, 28, 28), levels=256)
model.log_prob(x)        # x uint8 [B, C, H, W] -> [B] nats
model.sample(16)         # -> uint8 [16, C, H, W]
model.compress(x)        # -> bytes, about -log2 p(x) bits; model.decompress(data) -> x
model.save("run"); pixelcnn.load("run")
"""

from pixelcnn.allocator import keep_freed_memory
from pixelcnn.model import DensityModel, ModelConfig, create, load
from pixelcnn.quantize import Quantizer

__version__ = "0.1.0"

keep_freed_memory()  # see pixelcnn.allocator: scoring and training stop faulting memory in

__all__ = ["DensityModel", "ModelConfig", "Quantizer", "create", "load", "__version__"]
