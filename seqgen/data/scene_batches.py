"""Shapes-world captioning data drawn fresh for every batch.

A few thousand rendered scenes are memorised by a CNN trained from scratch long before it
learns to see them; an endless supply of new scenes leaves it no choice. Scenes held out for
validation and testing are never drawn.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence

import numpy as np
import torch

from seqgen.data.batching import pad_batch
from seqgen.data.captions import caption_tensors, encode_caption
from seqgen.data.images import TransformSpec
from seqgen.data.synthetic import Scene, random_scene, scene_key
from seqgen.tokenizers import WordTokenizer


def scene_images(scenes: Sequence[Scene], spec: TransformSpec) -> torch.Tensor:
    """Rendered scenes as a normalised batch (B, 3, crop, crop): what ``eval_transform(spec)``
    gives for the same pictures saved as files, without the per-image PIL round trip."""
    pixels = np.stack([np.asarray(s.render(spec.crop)) for s in scenes])
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
    std = torch.tensor(spec.std).view(1, 3, 1, 1)
    return images.sub_(mean).div_(std)


class FreshSceneBatches:
    """``(images, inputs, targets)`` batches of new random scenes; the same ones again for the
    same seed, epoch and batch number, so a resumed run continues exactly."""

    def __init__(self, tokenizer: WordTokenizer, spec: TransformSpec, batch_size: int,
                 batches_per_epoch: int = 1000, seed: int = 0,
                 exclude: frozenset[str] = frozenset(), max_len: int = 20):
        self.tokenizer = tokenizer
        self.spec = spec
        self.batch_size = batch_size
        self.batches_per_epoch = batches_per_epoch
        self.seed = seed
        self.exclude = exclude
        self.max_len = max_len

    def __len__(self) -> int:
        return self.batches_per_epoch

    def scenes(self, epoch: int, number: int) -> list[Scene]:
        rng = random.Random(f"{self.seed}/{epoch}/{number}")
        drawn: list[Scene] = []
        while len(drawn) < self.batch_size:
            scene = random_scene(rng)
            if scene_key(scene) not in self.exclude:
                drawn.append(scene)
        return drawn

    def batches(self, epoch: int = 0, start: int = 0) -> Iterator:
        for number in range(start, len(self)):
            scenes = self.scenes(epoch, number)
            inputs, targets = zip(*(caption_tensors(encode_caption(self.tokenizer, s.english()),
                                                    self.max_len) for s in scenes))
            yield scene_images(scenes, self.spec), pad_batch(inputs)[0], pad_batch(targets)[0]
