"""``seqgen data list`` and ``seqgen data get NAME``: the README's datasets, one command each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from seqgen.cli.common import app, command, err, out

data_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None,
                       help="List and download the datasets the README uses.")
app.add_typer(data_app, name="data")


def _size(n: int | None) -> str:
    if n is None:
        return "size not published"
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB"


@command("list", group=data_app)
def list_cmd() -> None:
    """Each dataset with its size, license and source."""
    from seqgen.datasets import DATASETS, tatoeba

    for dataset in [*DATASETS.values(), tatoeba("xxx")]:
        size = _size(dataset.size())
        if dataset.extra:
            size += f" (+{_size(dataset.size(True) - dataset.size())} with --with-images)"
        out.print(f"{dataset.name}  {size}  {dataset.license}\n    {dataset.what}\n    "
                  f"{dataset.home}", markup=False)


@command("get", group=data_app)
def get_cmd(
    name: Annotated[str, typer.Argument(help="A name from `seqgen data list`.")],
    data_dir: Annotated[Path | None, typer.Option(
        "--dir", help="Where datasets go (default $SEQGEN_DATA or ~/.cache/seqgen/data).")
    ] = None,
    url: Annotated[str | None, typer.Option(
        "--url", help="A mirror: the file's address (or, for several files, their folder).")
    ] = None,
    from_file: Annotated[Path | None, typer.Option(
        "--from", help="An archive you already have (or the folder holding the files); "
        "checked like a download.")] = None,
    with_images: Annotated[bool, typer.Option(
        "--with-images", help="coco-captions: the images too (20 GB).")] = False,
    timeout: Annotated[float, typer.Option(
        "--timeout", help="Give up when the server sends nothing for this many seconds.")
    ] = 30.0,
    force: Annotated[bool, typer.Option(
        "--force", help="Unpack and convert again, replacing files you changed.")] = False,
) -> None:
    """Download a dataset, check its pinned checksum, unpack it and lay it out for training;
    an interrupted download resumes where it stopped, and a complete one is left as it is."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from seqgen.datasets import default_data_dir, find_dataset, get_dataset
    from seqgen.errors import UserError

    dataset = find_dataset(name)
    if not timeout > 0:
        raise UserError(f"--timeout must be a positive number of seconds, got {timeout}")
    if with_images and not dataset.extra:
        raise UserError(f"--with-images is for coco-captions, not {dataset.name}")
    root = data_dir or default_data_dir()
    with Progress("[progress.description]{task.description}", BarColumn(), DownloadColumn(),
                  TransferSpeedColumn(), console=err, transient=True) as bar:

        def progress(file: str):
            task = bar.add_task(file, total=None)
            return lambda done, total: bar.update(task, completed=done, total=total)

        fetched = get_dataset(dataset, root, url, from_file, with_images, timeout, progress,
                              force)
    for name in fetched.kept:
        err.print(f"kept {fetched.folder / name}: it differs from what seqgen made (your "
                  "change?); --force replaces it", markup=False)
    if fetched.complete:
        out.print(f"{dataset.name} is already complete in {fetched.folder}: "
                  f"{', '.join(fetched.files)}", markup=False)
        return
    for file, sha256 in fetched.digests.items():
        check = "not pinned" if file in fetched.unpinned else "checked"
        err.print(f"{file}: sha256 {sha256} ({check})", markup=False)
    if fetched.unpinned:
        err.print("warning: no checksum can be pinned for this source (it changes on the "
                  "server); the SHA-256 above is what came", markup=False)
    out.print(f"{dataset.name} is ready in {fetched.folder}: {', '.join(fetched.files)}",
              markup=False)
    out.print("train on it with:\n  " + dataset.next_command.format(dir=fetched.folder),
              markup=False)
