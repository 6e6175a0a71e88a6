"""Where a command may write its picture: the rules that keep ``--out`` from replacing what
it must not (a trained model, the input picture, a device node, a user's file)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path

from pixelcnn.files import NotWritableError, check_writable
from pixelcnn.pictures import png_kind
from pixelcnn.train.run_dir import holds_run


def check_output(
    path: str | os.PathLike,
    kind: str,
    overwrite: bool = False,
    inputs: Iterable[str | os.PathLike] = (),
    earlier: Callable[[Path], bool] | None = None,
) -> Path:
    """Refuse, before any work, an output path whose file must not be replaced.

    A new file is fine, and so is an earlier output of the same ``kind`` (its PNG tag says
    so, or ``earlier(path)`` for files that are not pictures). Never replaced: anything but
    a regular file (a device node, a pipe, a symbolic link), one of ``inputs`` or any file
    inside an input that is a folder, and any other file in a run or model directory.
    Other existing files are replaced only with ``overwrite``.
    """
    path = Path(path)
    check_writable(path)
    if not os.path.lexists(path):
        return path
    if path.is_symlink() or not path.is_file():
        raise NotWritableError(
            f"{path} exists and is not a regular file; it is never replaced (choose another --out)"
        )
    for source in inputs:
        if not os.path.exists(source):
            continue  # a dataset's name
        if os.path.isdir(source):
            # every file of an input folder is an input, whatever its name or the flags
            if path.resolve().is_relative_to(Path(source).resolve()):
                raise NotWritableError(
                    f"--out {path} is a file inside the input folder {source}; "
                    "it is never replaced (choose another --out)"
                )
        elif os.path.samefile(path, source):
            raise NotWritableError(f"--out {path} is the input {source}; it is never replaced")
    if earlier(path) if earlier is not None else png_kind(path) == kind:
        return path  # an earlier output of this command: replacing it is the point
    if holds_run(path.parent):
        raise NotWritableError(
            f"{path} is a file of the run or model in {path.parent}, not an earlier {kind} "
            "output; it is never replaced (choose another --out)"
        )
    if not overwrite:
        raise FileExistsError(
            f"{path} exists and is not an earlier {kind} output; pass --overwrite to replace it"
        )
    return path
