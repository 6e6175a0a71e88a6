"""Reading images from real formats into ``uint8 [N, C, H, W]`` arrays.

This layer knows nothing about models or training. Start with ``load_dataset``::

    from pixelcnn.data import load_dataset
    train = load_dataset("mnist5k", "train")   # 4500 digits, no download needed
    train.images.shape                         # (4500, 1, 28, 28), uint8
"""

from .datasets import (
    DatasetNotFoundError,
    ImageDataset,
    available_datasets,
    load_dataset,
)
from .download import DownloadError, default_cache_dir, download_file
from .limits import available_memory_bytes, check_allocation
from .readers import (
    MAX_CLASSES,
    DataFormatError,
    read_cifar10,
    read_idx,
    read_idx_images,
    read_image_file,
    read_image_folder,
    read_npz,
    resize_images,
)

__all__ = [
    "MAX_CLASSES",
    "DataFormatError",
    "DatasetNotFoundError",
    "DownloadError",
    "ImageDataset",
    "available_datasets",
    "available_memory_bytes",
    "check_allocation",
    "default_cache_dir",
    "download_file",
    "load_dataset",
    "read_cifar10",
    "read_idx",
    "read_idx_images",
    "read_image_file",
    "read_image_folder",
    "read_npz",
    "resize_images",
]
