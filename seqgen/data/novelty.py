"""How far an input lies from everything a model was trained on.

A captioner trained on photos of people and dogs still writes a sentence about a coffee cup,
with the same confidence. What tells the user not to trust it is the distance of the photo's
pooled features to the nearest training image's (the cosine distance of features centred on
the training mean: a CNN's features share one large mean direction), read against the same
distance for the validation images, which the model never saw but which come from the
training set's world. The reference is a sample of the training features kept in the
checkpoint, so the check needs no data at caption time.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch

SAMPLE = 2000  # training images kept as the reference (2000 × 1280 float16: 5 MB)
CHUNK = 256


def pooled(features: torch.Tensor) -> torch.Tensor:
    """One vector per input: regions (N, L, D) are averaged, pooled features (N, F) pass."""
    features = features.float()
    return features.mean(1) if features.dim() == 3 else features


def _unit(vectors: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(vectors.float(), dim=-1)


@dataclass
class Novelty:
    centre: torch.Tensor  # (F,) the training images' mean pooled features
    reference: torch.Tensor  # (n, F) training images, centred unit vectors, float16
    val_distances: list[float]  # sorted: each validation image's distance to the reference

    @classmethod
    def fit(cls, train: torch.Tensor, val: torch.Tensor, sample: int = SAMPLE) -> Novelty:
        """From training and validation features (regions or pooled); an even sample of the
        training set is kept."""
        rows = torch.linspace(0, len(train) - 1, min(sample, len(train))).round().long()
        picked = torch.cat([pooled(train[chunk]) for chunk in rows.split(CHUNK)])
        centre = picked.mean(0)
        novelty = cls(centre, _unit(picked - centre).half(), [])
        novelty.val_distances = sorted(novelty.distances(val).tolist())
        return novelty

    def distances(self, features: torch.Tensor) -> torch.Tensor:
        """Cosine distance of each input (regions or pooled) to its nearest reference."""
        reference = self.reference.float().to(features.device)
        centre = self.centre.to(features.device)
        out = [1.0 - (_unit(pooled(chunk) - centre) @ reference.T).max(-1).values
               for chunk in features.split(CHUNK)]
        return torch.cat(out).cpu() if out else torch.zeros(0)

    @property
    def threshold(self) -> float:
        """Farther than every validation image: a photo unlike the training set's world."""
        return self.val_distances[-1] if self.val_distances else float("inf")

    def describe(self, distance: float) -> dict:
        """A photo's distance, the share of validation images nearer than it, and whether it
        is farther than all of them."""
        nearer = bisect.bisect_left(self.val_distances, distance)
        return {"distance": round(distance, 4),
                "percentile": round(nearer / max(1, len(self.val_distances)), 3),
                "unfamiliar": distance > self.threshold}

    def to_dict(self) -> dict:
        return {"centre": self.centre, "reference": self.reference,
                "val_distances": self.val_distances}

    @classmethod
    def from_dict(cls, saved: dict) -> Novelty:
        return cls(saved["centre"], saved["reference"], list(saved["val_distances"]))
