"""Images as the captioner sees them: reading any file Pillow can (every way a file can fail
to decode is one reason, never a traceback), and the transforms a checkpoint records."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from seqgen.errors import UserError

# What Pillow raises on files it cannot decode: damaged or crafted files raise more than
# OSError (UnidentifiedImageError is one) and DecompressionBombError (a ValueError).
DECODE_ERRORS = (OSError, ValueError, EOFError, struct.error, IndexError, SyntaxError)


def load_image(source: str | Path | BinaryIO) -> Image.Image:
    """Any readable image (a file, or its bytes) as RGB, upright (EXIF rotation applied),
    transparency on white."""
    with Image.open(source) as image:
        image.load()
        image = ImageOps.exif_transpose(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode == "I;16" or image.mode == "I":
        image = image.point(lambda v: v / 256).convert("L")
    return image.convert("RGB")


def try_load_image(path: str | Path) -> tuple[Image.Image | None, str]:
    """The image, or None and why it cannot be used: not found, not an image, truncated."""
    path = Path(path)
    if not path.is_file():
        return None, "not found"
    try:
        return load_image(path), ""
    except UnidentifiedImageError:
        return None, "not an image"
    except Image.DecompressionBombError:
        return None, "too many pixels"
    except DECODE_ERRORS as exc:
        text = str(exc)
        return None, "truncated" if "truncated" in text else f"unreadable ({text})"


@dataclass(frozen=True)
class TransformSpec:
    """Resize (shorter side), centre crop, normalise: saved in the checkpoint."""

    resize: int = 256
    crop: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self) -> None:
        if not (0 < self.crop <= self.resize <= 4096):
            raise UserError(f"image sizes resize {self.resize}, crop {self.crop} are not usable")
        values = (*self.mean, *self.std)
        if len(self.mean) != 3 or len(self.std) != 3 or not all(
                isinstance(v, (int, float)) and math.isfinite(v) for v in values) or min(
                self.std) <= 0:
            raise UserError("the image normalisation needs 3 means and 3 positive deviations")

    def to_dict(self) -> dict:
        return {"resize": self.resize, "crop": self.crop, "mean": list(self.mean),
                "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict) -> TransformSpec:
        return cls(int(data["resize"]), int(data["crop"]), tuple(data["mean"]),
                   tuple(data["std"]))


def eval_transform(spec: TransformSpec):
    """The one transform used for validation, caption time and cached features."""
    from torchvision import transforms as T

    return T.Compose([
        T.Resize(spec.resize, interpolation=T.InterpolationMode.BILINEAR, antialias=True),
        T.CenterCrop(spec.crop),
        T.ToTensor(),
        T.Normalize(spec.mean, spec.std),
    ])


ImageTransform = Callable[[Image.Image, torch.Generator], tuple[torch.Tensor, bool]]

def train_transform(spec: TransformSpec, augment: bool) -> ImageTransform:
    """Training images → (tensor, flipped?): the eval transform, or with ``augment`` a random
    crop (60–100% of the area, aspect 3:4–4:3) and a horizontal flip half of the time. Random
    numbers come from the caller's generator, never torch's global one, so batches can be
    prepared in another thread and a resumed run sees the same crops."""
    plain = eval_transform(spec)
    if not augment:
        return lambda image, generator: (plain(image), False)
    from torchvision.transforms import functional as TF

    def augmented(image: Image.Image, generator: torch.Generator) -> tuple[torch.Tensor, bool]:
        u = torch.rand(4, generator=generator).tolist()
        width, height = image.size
        area = width * height * (0.6 + 0.4 * u[0])
        aspect = math.exp(math.log(3 / 4) + (math.log(4 / 3) - math.log(3 / 4)) * u[1])
        w = min(width, max(1, round(math.sqrt(area * aspect))))
        h = min(height, max(1, round(math.sqrt(area / aspect))))
        top, left = round((height - h) * u[2]), round((width - w) * u[3])
        crop = TF.resized_crop(image, top, left, h, w, [spec.crop, spec.crop], antialias=True)
        flip = bool(torch.rand(1, generator=generator) < 0.5)
        if flip:
            crop = TF.hflip(crop)
        tensor = TF.normalize(TF.to_tensor(crop), list(spec.mean), list(spec.std))
        return tensor, flip

    return augmented


@dataclass
class ImageSet:
    """The readable images of a dataset (paths) and how many were skipped."""

    paths: list[Path]
    skipped: list[str]


def check_images(images_dir: Path, names: Sequence[str]) -> ImageSet:
    """Keep the images that exist and decode; count the others."""
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        raise UserError(f"image folder not found: {images_dir}")
    paths, skipped = [], []
    for name in names:
        path = images_dir / name
        try:
            with Image.open(path) as image:
                image.verify()
            paths.append(path)
        except DECODE_ERRORS:
            skipped.append(name)
    return ImageSet(paths, skipped)
