"""Caption data: file layouts, caption words, batches of images and captions.

Caption files come in the layouts people have; ``read_captions`` detects which from the content:

- ``coco``: COCO captions JSON, ``{"images": [{"id", "file_name"}], "annotations": [{"image_id",
  "caption"}]}``;
- ``karpathy``: Karpathy split JSON (``dataset_flickr8k.json``, ``dataset_coco.json``), whose
  ``split`` field (train / restval / val / test) is kept;
- ``flickr8k``: ``Flickr8k.token.txt``, one ``image.jpg#N<TAB>caption`` per line;
- ``csv``: ``image,caption`` rows with or without a header (Kaggle's ``captions.txt``);
- ``jsonl``: one ``{"image": ..., "caption": ...}`` (or ``"captions": [...]``) object per line,
  with an optional ``"split"``.
"""

from __future__ import annotations

import csv
import io
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from seqgen.data.batching import pad_batch
from seqgen.data.images import ImageTransform, load_image
from seqgen.data.reading import split_lines
from seqgen.errors import UserError
from seqgen.tokenizers import BOS_ID, EOS_ID, WordTokenizer

FORMATS = ("auto", "coco", "karpathy", "flickr8k", "csv", "jsonl")
# Column (or JSON key) names that hold an image's file name, and its caption.
IMAGE_COLUMNS = ("image", "image_name", "image_file", "file", "filename", "file_name", "path")
CAPTION_COLUMNS = ("caption", "captions", "comment", "text", "sentence", "description")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


@dataclass
class ImageCaptions:
    image: str  # file name relative to the images folder
    captions: list[str] = field(default_factory=list)
    split: str | None = None


# ------------------------------------------------------------------ caption text
def caption_words(text: str) -> list[str]:
    """Lowercase, punctuation stripped: "A dog runs ." → ["a", "dog", "runs"]."""
    return _WORD.findall(text.lower())


def normalize_caption(text: str) -> str:
    return " ".join(caption_words(text))


def build_caption_tokenizer(captions: Sequence[str], min_freq: int = 1) -> WordTokenizer:
    counts: Counter = Counter()
    for text in captions:
        counts.update(caption_words(text))
    return WordTokenizer.from_counts(counts, min_freq=min_freq, lowercase=True, pretokenized=True)


def encode_caption(tokenizer: WordTokenizer, text: str) -> list[int]:
    return tokenizer.encode(normalize_caption(text))


END_SHARE = 0.02  # a word that ends fewer of the training captions it is in never ends one
USES_QUANTILE = 0.99  # a caption uses a word at most as often as 99% of those with it do
REPEAT_SHARE = 0.01  # n-grams fewer training captions than this repeat are never repeated


@dataclass
class CaptionHabits:
    """What the training captions (almost) never do, which a generated caption must not do
    either: end on "a", "of", "and" or "red" (it stopped mid-phrase: "a man is running on a
    red"), or use a word more often than nearly any of them ("a white dog on a white dog
    with a white ball"), or repeat an n-gram ("a man in a red shirt in a red shirt"; the
    shortest n that under 1% of them repeat, 0 for none)."""

    no_end_after: frozenset[int] = frozenset()
    max_uses: dict[int, int] = field(default_factory=dict)
    no_repeat_ngram: int = 0

    @classmethod
    def learn(cls, tokenizer: WordTokenizer, captions: Sequence[str]) -> CaptionHabits:
        seen: Counter[int] = Counter()
        ends: Counter[int] = Counter()
        uses: dict[int, list[int]] = {}
        encoded = [encode_caption(tokenizer, c) for c in captions]
        for ids in encoded:
            seen.update(ids)
            if ids:
                ends[ids[-1]] += 1
            for token, n in Counter(ids).items():
                uses.setdefault(token, []).append(n)
        limits = {t: sorted(ns)[int(USES_QUANTILE * (len(ns) - 1))] for t, ns in uses.items()}
        n_gram = next((n for n in range(2, 7) if sum(_repeats(ids, n) for ids in encoded)
                       < REPEAT_SHARE * max(1, len(encoded))), 0)
        return cls(frozenset(t for t, n in seen.items() if ends[t] < END_SHARE * n), limits,
                   n_gram)

    def to_dict(self) -> dict:
        return {"no_end_after": sorted(self.no_end_after), "max_uses": dict(self.max_uses),
                "no_repeat_ngram": self.no_repeat_ngram}

    @classmethod
    def from_dict(cls, saved: dict) -> CaptionHabits:
        return cls(frozenset(saved.get("no_end_after", ())),
                   {int(t): int(n) for t, n in saved.get("max_uses", {}).items()},
                   int(saved.get("no_repeat_ngram", 0)))


def _repeats(ids: Sequence[int], n: int) -> bool:
    grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
    return len(set(grams)) < len(grams)


# ------------------------------------------------------------------ caption files
def detect_format(path: Path, text: str) -> str:
    stripped = text.lstrip()
    if stripped.startswith("{") or stripped.startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return "jsonl"
        if isinstance(data, dict) and "annotations" in data and "images" in data:
            return "coco"
        if isinstance(data, dict) and isinstance(data.get("images"), list):
            return "karpathy"
        if isinstance(data, dict) and set(data) & set(IMAGE_COLUMNS):
            return "jsonl"  # a JSON-lines file of one line
        raise UserError(f"{path}: a JSON file, but neither COCO captions (images + annotations) "
                        "nor a Karpathy split (images with sentences)")
    first = next((line for line in split_lines(text) if line.strip()), "")
    if re.match(r"^[^\t]+#\d+\t", first):
        return "flickr8k"
    if "," in first:
        return "csv"
    raise UserError(f"{path}: cannot tell the caption layout; pass --format "
                    f"({', '.join(FORMATS[1:])})")


def read_captions(path: str | Path, fmt: str = "auto") -> tuple[list[ImageCaptions], str]:
    """Read a caption file into one entry per image (in file order) and the layout it had."""
    path = Path(path)
    if fmt not in FORMATS:
        raise UserError(f"unknown --format {fmt!r}: choose one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise UserError(f"caption file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a UTF-8 text file") from None
    if not text.strip():
        raise UserError(f"{path} is empty")
    if fmt == "auto":
        fmt = detect_format(path, text)
    try:
        rows = list(_READERS[fmt](text))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise UserError(f"{path} does not read as {fmt} captions ({exc.__class__.__name__}: "
                        f"{exc})") from None
    by_image: dict[str, ImageCaptions] = {}
    for image, caption, split in rows:
        if not caption_words(caption):
            continue
        entry = by_image.setdefault(image, ImageCaptions(image, [], split))
        entry.captions.append(caption.strip())
    if not by_image:
        raise UserError(f"{path} holds no captions (read as {fmt})")
    return list(by_image.values()), fmt


Row = tuple[str, str, "str | None"]


def _read_coco(text: str) -> Iterator[Row]:
    data = json.loads(text)
    names = {img["id"]: img["file_name"] for img in data["images"]}
    for ann in data["annotations"]:
        yield names[ann["image_id"]], str(ann["caption"]), None


def _read_karpathy(text: str) -> Iterator[Row]:
    data = json.loads(text)
    for img in data["images"]:
        name = img["filename"]
        if img.get("filepath"):
            name = f"{img['filepath']}/{name}"
        split = img.get("split")
        split = "train" if split == "restval" else split
        for sentence in img["sentences"]:
            yield name, sentence.get("raw") or " ".join(sentence["tokens"]), split


def _read_flickr8k(text: str) -> Iterator[Row]:
    for line in split_lines(text):
        if not line.strip():
            continue
        key, caption = line.split("\t", 1)
        yield key.rsplit("#", 1)[0], caption, None


def _read_csv(text: str) -> Iterator[Row]:
    lines = split_lines(text)
    header = [h.strip().lower() for h in next(csv.reader([lines[0]]))]
    image_col = next((i for i, h in enumerate(header) if h in IMAGE_COLUMNS), None)
    caption_col = next((i for i, h in enumerate(header) if h in CAPTION_COLUMNS), None)
    if image_col is None and caption_col is None or header[:2] == ["image", "caption"] \
            and len(header) == 2:
        # image,caption with no header, or Kaggle's: the caption is everything after the
        # first comma (Kaggle's captions.txt quotes some captions without escaping the
        # quotes inside them, which a CSV reader would mangle).
        for line in lines[0 if image_col is None else 1:]:
            if not line.strip():
                continue
            image, caption = line.split(",", 1)
            caption = caption.strip()
            if len(caption) >= 2 and caption[0] == caption[-1] == '"':
                caption = caption[1:-1].replace('""', '"')
            yield image.strip(), caption, None
        return
    if image_col is None or caption_col is None:
        what, names = ("image", IMAGE_COLUMNS) if image_col is None else ("caption",
                                                                          CAPTION_COLUMNS)
        raise ValueError(f"the header names no {what} column (one of: {', '.join(names)})")
    split_col = header.index("split") if "split" in header else None
    for row in csv.reader(io.StringIO("\n".join(lines[1:]))):
        if not row or not any(cell.strip() for cell in row):
            continue
        split = (row[split_col].strip() or None) if split_col is not None else None
        yield row[image_col].strip(), row[caption_col], split


def _read_jsonl(text: str) -> Iterator[Row]:
    for line in split_lines(text):
        if not line.strip():
            continue
        obj = json.loads(line)
        image_key = next((k for k in IMAGE_COLUMNS if k in obj), None)
        caption_key = next((k for k in CAPTION_COLUMNS if k in obj), None)
        if image_key is None or caption_key is None:
            raise KeyError(f"a line without {'an image' if image_key is None else 'a caption'}")
        image, captions = obj[image_key], obj[caption_key]
        for caption in captions if isinstance(captions, list) else [captions]:
            yield str(image), str(caption), obj.get("split")


_READERS: dict[str, Callable[[str], Iterator[Row]]] = {
    "coco": _read_coco, "karpathy": _read_karpathy, "flickr8k": _read_flickr8k,
    "csv": _read_csv, "jsonl": _read_jsonl,
}


def split_images(entries: list[ImageCaptions], val_fraction: float = 0.05, seed: int = 0,
                 ) -> tuple[list[ImageCaptions], list[ImageCaptions], str]:
    """Train / validation images: the file's own split when it has one, else a held-out share."""
    if any(e.split for e in entries):
        train = [e for e in entries if e.split == "train"]
        val = [e for e in entries if e.split == "val"] or [e for e in entries if e.split == "test"]
        if train and val:
            return train, val, "split field"
    if not 0 < val_fraction < 1:
        raise UserError("--val-fraction must be between 0 and 1")
    order = list(range(len(entries)))
    random.Random(seed).shuffle(order)
    n_val = max(1, round(len(entries) * val_fraction))
    if len(entries) - n_val < 1:
        raise UserError("too few images to hold some out for validation: add images")
    held = set(order[:n_val])
    train = [e for i, e in enumerate(entries) if i not in held]
    val = [e for i, e in enumerate(entries) if i in held]
    return train, val, f"{val_fraction:.0%} of images held out"


MIRRORED_WORDS = (("left", "right"),)  # what a horizontal flip swaps in a caption




def mirror_ids(tokenizer: WordTokenizer) -> dict[int, int]:
    """Word ids a horizontal flip swaps ("left" ↔ "right"), where the vocabulary has both."""
    swaps: dict[int, int] = {}
    for a, b in MIRRORED_WORDS:
        if a in tokenizer.stoi and b in tokenizer.stoi:
            ia, ib = tokenizer.stoi[a], tokenizer.stoi[b]
            swaps[ia], swaps[ib] = ib, ia
    return swaps


# ------------------------------------------------------------------ batches


def caption_tensors(ids: Sequence[int], max_len: int) -> tuple[list[int], list[int]]:
    """Decoder input ``<bos> w1..wn`` and target ``w1..wn <eos>`` (words cut at ``max_len``)."""
    ids = list(ids[:max_len])
    return [BOS_ID, *ids], [*ids, EOS_ID]


class CaptionBatches:
    """(image, caption) pairs in shuffled batches, the same order for the same epoch.

    ``images`` is either a (N, F) feature tensor (cached encoder output) or a list of image
    paths, loaded and transformed per batch (a trained encoder or augmentation) by
    ``transform`` (see ``train_transform``); a flipped image's caption has its ``mirror``
    words swapped. Each batch is ``(images_or_features, inputs, targets)``.
    """

    def __init__(self, images, pairs: Sequence[tuple[int, list[int]]], batch_size: int,
                 seed: int = 0, shuffle: bool = True, transform: ImageTransform | None = None,
                 max_len: int = 20, mirror: dict[int, int] | None = None):
        self.images = images
        self.pairs = list(pairs)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.transform = transform
        self.max_len = max_len
        self.mirror = mirror or {}

    def __len__(self) -> int:
        return (len(self.pairs) + self.batch_size - 1) // self.batch_size

    def _order(self, epoch: int) -> list[int]:
        if not self.shuffle:
            return list(range(len(self.pairs)))
        generator = torch.Generator().manual_seed(self.seed + epoch)
        return torch.randperm(len(self.pairs), generator=generator).tolist()

    def batch(self, indices: Sequence[int], epoch: int = 0, number: int = 0):
        image_ids = [self.pairs[i][0] for i in indices]
        captions = [self.pairs[i][1] for i in indices]
        if isinstance(self.images, torch.Tensor):
            images = self.images[torch.as_tensor(image_ids)]
        else:
            # A generator per batch position: a resumed run sees the same crops and flips.
            generator = torch.Generator().manual_seed(
                self.seed * 1_000_003 + epoch * 100_003 + number)
            pictures, flipped = zip(*(self.transform(load_image(self.images[j]), generator)
                                      for j in image_ids))
            images = torch.stack(pictures)
            captions = [[self.mirror.get(t, t) for t in c] if flip else c
                        for c, flip in zip(captions, flipped)]
        inputs, targets = zip(*(caption_tensors(c, self.max_len) for c in captions))
        return images, pad_batch(inputs)[0], pad_batch(targets)[0]

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator:
        order = self._order(epoch)
        for b in range(start, len(self)):
            yield self.batch(order[b * self.batch_size:(b + 1) * self.batch_size], epoch, b)
