"""The shapes world: built-in scenes with an English caption, a Spanish one and an image.

A scene holds 1–3 distinct shapes on a 3×3 grid. Shapes are mentioned in a fixed order (by
kind, then colour, then size) and each one after the first stands in the same row or column
as the one before, so the caption is a function of the picture: a captioner can learn it
exactly. Spanish puts adjectives after the noun and makes them agree in gender, so
translation is not word for word.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

KINDS = ("circle", "square", "triangle", "star")
COLOURS = ("red", "blue", "green", "yellow", "purple", "white")
SIZES = ("small", "", "big")  # "" is the unremarkable middle size

SPANISH_NOUNS = {  # noun, feminine?
    "circle": ("círculo", False),
    "square": ("cuadrado", False),
    "triangle": ("triángulo", False),
    "star": ("estrella", True),
}
SPANISH_COLOURS = {  # masculine, feminine
    "red": ("rojo", "roja"),
    "blue": ("azul", "azul"),
    "green": ("verde", "verde"),
    "yellow": ("amarillo", "amarilla"),
    "purple": ("morado", "morada"),
    "white": ("blanco", "blanca"),
}
SPANISH_SIZES = {"small": ("pequeño", "pequeña"), "big": ("grande", "grande"), "": ("", "")}
RELATIONS = {  # (d_row, d_col) of the next shape seen from the previous one
    "left of": "a la izquierda de",
    "right of": "a la derecha de",
    "above": "encima de",
    "below": "debajo de",
}
RGB = {
    "red": (220, 40, 40),
    "blue": (40, 80, 220),
    "green": (40, 170, 60),
    "yellow": (235, 200, 30),
    "purple": (140, 60, 180),
    "white": (250, 250, 250),
}
BACKGROUND = (70, 70, 70)


@dataclass(frozen=True)
class Shape:
    kind: str
    colour: str
    size: str
    row: int
    col: int

    @property
    def key(self) -> tuple[int, int, int]:
        return KINDS.index(self.kind), COLOURS.index(self.colour), SIZES.index(self.size)


@dataclass(frozen=True)
class Scene:
    shapes: tuple[Shape, ...]

    def relations(self) -> list[str]:
        """How each shape after the first stands relative to the one mentioned before it."""
        out = []
        for prev, cur in zip(self.shapes, self.shapes[1:]):
            # The sentence reads "<prev> <relation> <cur>": prev is left of cur, and so on.
            if prev.row == cur.row:
                out.append("left of" if prev.col < cur.col else "right of")
            else:
                out.append("above" if prev.row < cur.row else "below")
        return out

    def english(self) -> str:
        words = [_english_np(self.shapes[0])]
        for rel, shape in zip(self.relations(), self.shapes[1:]):
            if len(words) > 1:
                words.append("that is")
            words.append(f"{rel} {_english_np(shape)}")
        return " ".join(words)

    def spanish(self) -> str:
        words = [_spanish_np(self.shapes[0])]
        for rel, shape in zip(self.relations(), self.shapes[1:]):
            if len(words) > 1:
                words.append("que está")
            words.append(f"{RELATIONS[rel]} {_spanish_np(shape)}")
        return " ".join(words)

    def render(self, size: int = 64) -> Image.Image:
        image = Image.new("RGB", (size, size), BACKGROUND)
        draw = ImageDraw.Draw(image)
        cell = size / 3
        for shape in self.shapes:
            _draw_shape(draw, shape, cell)
        return image


def english_words() -> list[str]:
    """Every word an English description can use: the captioner's whole vocabulary."""
    relation_words = sorted({w for relation in RELATIONS for w in relation.split()})
    return ["a", "that", "is", *KINDS, *COLOURS, *(s for s in SIZES if s), *relation_words]


def _english_np(shape: Shape) -> str:
    adjectives = " ".join(a for a in (shape.size, shape.colour) if a)
    return f"a {adjectives} {shape.kind}"


def _spanish_np(shape: Shape) -> str:
    noun, feminine = SPANISH_NOUNS[shape.kind]
    colour = SPANISH_COLOURS[shape.colour][feminine]
    size = SPANISH_SIZES[shape.size][feminine]
    article = "una" if feminine else "un"
    return " ".join(w for w in (article, noun, colour, size) if w)


def _draw_shape(draw: ImageDraw.ImageDraw, shape: Shape, cell: float) -> None:
    cx, cy = (shape.col + 0.5) * cell, (shape.row + 0.5) * cell
    r = cell * {"small": 0.2, "": 0.32, "big": 0.46}[shape.size]
    fill = RGB[shape.colour]
    if shape.kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape.kind == "square":
        s = r * 0.85
        draw.rectangle([cx - s, cy - s, cx + s, cy + s], fill=fill)
    elif shape.kind == "triangle":
        draw.polygon([(cx, cy - r), (cx - r, cy + r * 0.8), (cx + r, cy + r * 0.8)], fill=fill)
    else:
        points = []
        for k in range(10):
            radius = r if k % 2 == 0 else r * 0.45
            angle = -math.pi / 2 + k * math.pi / 5
            points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
        draw.polygon(points, fill=fill)


def random_scene(rng: random.Random, max_shapes: int = 3) -> Scene:
    n = rng.randint(1, max_shapes)
    looks: set[tuple[str, str, str]] = set()
    while len(looks) < n:
        looks.add((rng.choice(KINDS), rng.choice(COLOURS), rng.choice(SIZES)))
    ordered = sorted(looks, key=lambda k: (KINDS.index(k[0]), COLOURS.index(k[1]),
                                           SIZES.index(k[2])))
    while True:  # place each shape in the row or column of the one before, on a free cell
        cells = [(rng.randrange(3), rng.randrange(3))]
        for _ in ordered[1:]:
            r, c = cells[-1]
            free = [(rr, cc) for rr in range(3) for cc in range(3)
                    if (rr == r) != (cc == c) and (rr, cc) not in cells]
            if not free:
                break
            cells.append(rng.choice(free))
        if len(cells) == n:
            break
    return Scene(tuple(Shape(k, col, s, r, c) for (k, col, s), (r, c) in zip(ordered, cells)))


def scenes(count: int, seed: int = 0, max_shapes: int = 3) -> list[Scene]:
    """``count`` random scenes, the same ones for the same seed."""
    rng = random.Random(seed)
    return [random_scene(rng, max_shapes) for _ in range(count)]


def scene_key(scene: Scene) -> str:
    """Identity of a scene, to hold out unseen scenes from training."""
    return scene.english() + "|" + ",".join(f"{s.row}{s.col}" for s in scene.shapes)
