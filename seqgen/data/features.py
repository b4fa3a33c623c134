"""The feature cache: a frozen encoder's grids of image files, computed once and kept on
disk, so that training the decoder does not run the encoder again every epoch."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from seqgen.data.images import try_load_image
from seqgen.files import atomic_write
from seqgen.models.encoders import image_grid


def file_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


class FeatureCache:
    """Encoder grids of image files, float16, one small .npy file per image.

    The folder is keyed by the encoder identity (name, weights, transform, grid shape); each
    file by the image's path, size and modification time, so an edited image is encoded again.
    """

    def __init__(self, root: Path, encoder_key: str):
        digest = hashlib.sha256(encoder_key.encode()).hexdigest()[:20]
        self.root = Path(root)
        self.dir = self.root / "features" / digest

    def _file(self, path: Path) -> Path:
        return self.dir / (hashlib.sha256(file_key(path).encode()).hexdigest()[:32] + ".npy")

    def get(self, path: Path) -> np.ndarray | None:
        try:
            return np.load(self._file(path), mmap_mode="r")
        except (OSError, ValueError):
            return None

    def put(self, path: Path, grid: np.ndarray) -> None:
        atomic_write(self._file(path), lambda handle: np.save(handle, grid.astype(np.float16)))

    def scratch(self, shape: tuple[int, ...]) -> np.ndarray:
        """A float16 array of ``shape`` backed by a file in the cache folder (memory-mapped,
        so a large image set need not fit in RAM); the file is gone once the array is."""
        self.dir.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(suffix=".npy", dir=self.dir)
        os.close(handle)
        array = np.lib.format.open_memmap(name, mode="w+", dtype=np.float16, shape=shape)
        with contextlib.suppress(OSError):  # where an open file cannot be removed, it stays
            os.unlink(name)
        return array


@torch.no_grad()
def encode_images(encoder: torch.nn.Module, paths: Sequence[Path], transform,
                  device: torch.device, grid_shape: tuple[int, int, int], batch_size: int = 32,
                  cache: FeatureCache | None = None,
                  on_progress: Callable[[int, int], None] | None = None,
                  ) -> tuple[torch.Tensor, list[int], int]:
    """The encoder's grids of ``paths`` (N, D, h, w) in float16 on the CPU (memory-mapped with
    a cache), the indices that could not be read (zeros there), and how many came from the
    cache."""
    encoder.eval()
    shape = (len(paths), *grid_shape)
    grids = cache.scratch(shape) if cache else np.zeros(shape, dtype=np.float16)
    failed: list[int] = []
    todo: list[int] = []
    hits = 0
    for i, path in enumerate(paths):
        cached = cache.get(path) if cache else None
        if cached is not None and cached.shape == tuple(grid_shape):
            grids[i] = cached
            hits += 1
        else:
            todo.append(i)
    for start in range(0, len(todo), batch_size):
        chunk, tensors = [], []
        for i in todo[start:start + batch_size]:
            image, _ = try_load_image(paths[i])
            if image is None:
                failed.append(i)
                continue
            chunk.append(i)
            tensors.append(transform(image))
        if tensors:
            out = image_grid(encoder, torch.stack(tensors).to(device)).half().cpu().numpy()
            for i, grid in zip(chunk, out):
                grids[i] = grid
                if cache:
                    cache.put(paths[i], grid)
        if on_progress:
            on_progress(min(start + batch_size, len(todo)), len(todo))
    return torch.from_numpy(grids), sorted(failed), hits
