"""``pixelcnn compress`` and ``pixelcnn decompress``: image files <-> one compressed file.

Kept in its own module so the parser stays light: the library is imported only in ``run_*``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from pixelcnn.cli.arguments import OVERWRITE_HELP, RUN_HELP, count, path
from pixelcnn.files import NotWritableError

DECOMPRESSED_KIND = "decompressed"


def add_parsers(commands: argparse._SubParsersAction) -> None:
    """Add ``compress`` and ``decompress`` to the ``pixelcnn`` sub-parsers."""
    compress = commands.add_parser(
        "compress",
        help="losslessly compress images with a trained model (range coding of its likelihood)",
        description=(
            "Compress image files, an image folder, an .npz or a dataset into one file of "
            "about -log2 p(x) bits per image under the model of RUN; pixels come back exactly."
        ),
    )
    compress.add_argument("run", type=path, help=RUN_HELP)
    compress.add_argument(
        "inputs",
        nargs="+",
        type=path,
        metavar="INPUT",
        help="image files (PNG, ...), or one image folder, .npz file or dataset name",
    )
    compress.add_argument("--out", type=path, required=True, help="the compressed file")
    compress.add_argument("--split", default="test", choices=["train", "test"], help="of an .npz")
    compress.add_argument("--limit", type=count(1), default=None, help="the first N images")
    compress.add_argument(
        "--batch-size", type=count(1), default=None, help="images coded together (default 32)"
    )
    compress.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    compress.add_argument("--quiet", action="store_true")

    decompress = commands.add_parser(
        "decompress", help="restore the exact images of a compressed file"
    )
    decompress.add_argument("file", type=path, help="a file written by pixelcnn compress")
    decompress.add_argument(
        "--run", type=path, required=True, help="the model it was made with: " + RUN_HELP
    )
    decompress.add_argument(
        "--out", type=path, required=True, help="a folder for PNG files, or FILE.npz"
    )
    decompress.add_argument(
        "--index", type=count(0), nargs="+", default=None, help="only these images (0-based)"
    )
    decompress.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    decompress.add_argument("--quiet", action="store_true")


# ----------------------------------------------------------------------------- compress
@dataclass
class Inputs:
    """What ``compress`` read: uint8 images [N, C, H, W], a name per image (image files
    and folders), labels (an .npz or dataset's, or a class folder's), the npz split."""

    images: np.ndarray
    names: list[str] | None = None
    labels: np.ndarray | None = None
    split: str | None = None


def read_inputs(inputs: list[str], split: str) -> Inputs:
    """Image files; or one image folder (names relative to it); or an .npz / dataset."""
    from pixelcnn.data import load_dataset
    from pixelcnn.data.readers import IMAGE_SUFFIXES, image_folder_files, read_image_files
    from pixelcnn.files import check_regular

    first = Path(inputs[0])
    if len(inputs) == 1 and first.is_dir():
        files, labels, _ = image_folder_files(first)
        names = [f.relative_to(first).as_posix() for f in files]
        return Inputs(_exact_images(files, read_image_files), names, labels)
    if all(Path(i).suffix.lower() in IMAGE_SUFFIXES for i in inputs):
        files = [Path(i) for i in inputs]
        for file in files:
            if not file.exists():
                raise FileNotFoundError(f"image file {file} does not exist")
            check_regular(file)  # a FIFO or a device: refused, never read
        names = [f.name for f in files]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"two inputs share the file name {repeated[0]}; names must differ")
        return Inputs(_exact_images(files, read_image_files), names)
    if len(inputs) > 1:
        raise ValueError("give image files, or exactly one folder, .npz file or dataset name")
    dataset = load_dataset(inputs[0], split)
    return Inputs(dataset.images, None, dataset.labels, split)


def _exact_images(files: list[Path], read) -> np.ndarray:
    """The files' pixels, refusing any file whose reading would lose something."""
    from pixelcnn.data.readers import lossy_reading

    for file in files:
        reason = lossy_reading(file)
        if reason:
            raise ValueError(f"{file} cannot be compressed losslessly: {reason}")
    return read(files)


def check_images_fit(model, images: np.ndarray) -> None:
    """Refuse images of another shape, or with values the model cannot represent."""
    import torch

    from pixelcnn.cli.commands import check_model_shape

    if model.encoding.kind != "image":
        raise ValueError("this is a token-grid model: compress its grids with model.compress")
    check_model_shape(model, images, "the", "lossless compression cannot resize them")
    if not model.quantizer.is_valid(torch.from_numpy(images)):
        raise ValueError(
            f"the images hold values that a {model.levels}-level model cannot represent; "
            "lossless compression of 8-bit images needs a 256-level model"
        )


def run_compress(args: argparse.Namespace) -> None:
    from pixelcnn.cli.commands import load_run_model
    from pixelcnn.cli.outputs import check_output
    from pixelcnn.coding import DEFAULT_BATCH, compress
    from pixelcnn.coding.container import is_compressed_file
    from pixelcnn.files import atomic_write, nearest_existing

    # before any work: the output may not be an input, nor anything it must not replace
    out = check_output(
        args.out, "compressed", args.overwrite, inputs=args.inputs, earlier=is_compressed_file
    )
    folder = nearest_existing(out)  # missing folders below it are made when writing
    model = load_run_model(args.run)
    read = read_inputs(args.inputs, args.split)
    images = np.asarray(read.images[: args.limit])  # a prepared set: read from disk
    check_images_fit(model, images)
    names = read.names[: args.limit] if read.names else None
    labels = read.labels[: args.limit] if read.labels is not None else None
    if model.condition_spec and labels is None:
        raise ValueError("this model is class-conditional and the inputs have no labels")
    blob = compress(
        model,
        images,
        labels if model.condition_spec else None,
        names,
        labels if not model.condition_spec and read.split else None,  # an npz's, kept
        read.split,
        args.batch_size or DEFAULT_BATCH,
        progress=not args.quiet,
    )
    atomic_write(out, lambda temp: Path(temp).write_bytes(blob), inside=folder)
    bits = 8 * len(blob) / images.size
    print(f"compressed: {out} ({len(images)} images, {len(blob)} bytes, {bits:.4f} bits/dim)")


# --------------------------------------------------------------------------- decompress
def safe_name(name: str) -> PurePosixPath:
    """A stored image name as a relative path inside the output folder, as a PNG."""
    relative = PurePosixPath(name)
    if not name or relative.is_absolute() or ".." in relative.parts or "\\" in name:
        raise ValueError(f"the file names an image {name!r}, which is not a plain relative path")
    return relative.with_suffix(".png")


def png_targets(out: Path, names: list[str] | None, indices: list[int]) -> list[Path]:
    """Where each decoded image goes: its stored name as a PNG, or image_NNNNNN.png.
    Refused: two images at one path, and a path whose folders inside ``out`` include a
    symbolic link or a file (a write there would land outside ``out``, or fail late)."""
    targets = [out / (safe_name(names[i]) if names else f"image_{i:06d}.png") for i in indices]
    taken: dict[Path, int] = {}
    checked: set[Path] = set()
    for index, target in zip(indices, targets, strict=True):
        if taken.setdefault(target, index) != index:
            raise ValueError(f"images {taken[target]} and {index} would both be {target}")
        folder = out
        for part in target.relative_to(out).parts[:-1]:
            folder = folder / part
            if folder in checked:
                continue
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                raise NotWritableError(
                    f"cannot write {target}: {folder} is a symbolic link or not a folder; "
                    "nothing is written through it (choose another --out)"
                )
            checked.add(folder)
    clash = next((target for target in targets if target in checked), None)
    if clash is not None:  # "a.png" and "a.png/b.png": found now, not half-way through
        raise ValueError(f"the file names {clash} both as an image and as a folder of images")
    return targets


NPZ_MARK = b"pixelcnn decompressed"  # the zip comment of the npz decompress writes


def is_decompressed_npz(path: Path) -> bool:
    """Whether ``path`` is an npz that decompress wrote (its zip comment says so)."""
    import zipfile

    from pixelcnn.files import open_regular

    try:
        with open_regular(path) as stream, zipfile.ZipFile(stream) as archive:
            return archive.comment == NPZ_MARK
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return False


def run_decompress(args: argparse.Namespace) -> None:
    from PIL import Image

    from pixelcnn.cli.commands import load_run_model
    from pixelcnn.cli.outputs import check_output
    from pixelcnn.coding import decode, unpack
    from pixelcnn.coding.container import check_decoded_memory, read_file
    from pixelcnn.files import atomic_write, nearest_existing
    from pixelcnn.pictures import save_png

    data = read_file(args.file)  # a FIFO, a device or a foreign file: refused unread
    header, streams = unpack(data, str(args.file))  # foreign or damaged: before the model
    del data  # the streams are copies: the file's bytes are not needed again
    wanted = header.count if args.index is None else len(args.index)
    check_decoded_memory(header, wanted, str(args.file))  # before a list of its indices
    indices = list(range(header.count)) if args.index is None else list(args.index)
    outside = [i for i in indices if i >= header.count]
    if outside:
        raise ValueError(f"--index {outside[0]}: {args.file} holds images 0..{header.count - 1}")
    out = Path(args.out)
    to_npz = out.suffix.lower() == ".npz"
    if to_npz:
        check_output(
            out, DECOMPRESSED_KIND, args.overwrite, inputs=[args.file], earlier=is_decompressed_npz
        )
        folder = nearest_existing(out)
        targets = []
    else:
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} exists and is not a folder (or name a .npz file)")
        targets = png_targets(out, header.names, indices)
        for target in targets:
            check_output(target, DECOMPRESSED_KIND, args.overwrite, inputs=[args.file])
    model = load_run_model(args.run)
    if model.encoding.kind != "image":
        raise ValueError("this is a token-grid model: decompress its grids with model.decompress")
    images = decode(model, header, streams, indices, not args.quiet, str(args.file))
    if to_npz:
        split = header.split or "test"
        arrays = {f"x_{split}": images.numpy()}
        if header.labels is not None:
            arrays[f"y_{split}"] = np.asarray([header.labels[i] for i in indices], np.int64)
        atomic_write(out, lambda temp: _save_npz(temp, arrays), inside=folder)
        print(f"decompressed: {len(images)} images into {out} ({', '.join(arrays)})")
        return
    out.mkdir(parents=True, exist_ok=True)  # the folder the user named; below it, no links
    for image, target in zip(images.numpy(), targets, strict=True):
        picture = image[0] if image.shape[0] == 1 else np.moveaxis(image, 0, -1)
        save_png(
            Image.fromarray(np.ascontiguousarray(picture)), target, DECOMPRESSED_KIND, inside=out
        )
    print(f"decompressed: {len(images)} PNG files into {out}")


def _save_npz(temp: str, arrays: dict[str, np.ndarray]) -> None:
    import zipfile

    with open(temp, "wb") as stream:  # a file object: numpy would append .npz to a name
        np.savez(stream, **arrays)
    with zipfile.ZipFile(temp, "a") as archive:  # invisible to np.load; marks our output
        archive.comment = NPZ_MARK
