"""A caption of a user's own photo is a sentence, and says when the photo is unlike the
training images."""

import json
from pathlib import Path

import pytest
import torch
from helpers import SHARED_DATA, invoke

from seqgen.data.captions import CaptionHabits, build_caption_tokenizer
from seqgen.data.novelty import Novelty
from seqgen.data.synthetic import scenes
from seqgen.decoding import ban_end_after, ban_repeat_of_last, beam_search, sample_search
from seqgen.metrics import sentence_flaws

PHOTOS = Path(__file__).parent / "photos"
BOS, EOS = 2, 3


def photos() -> list[Path]:
    shared = SHARED_DATA / "photos"
    return sorted(PHOTOS.glob("*.jpg")) + sorted(shared.glob("*.jpg"))


@pytest.mark.parametrize("caption,flaw", [
    ("a dog runs on the grass", None),
    ("a man in a red shirt and a woman in a blue dress", None),  # "a" four times is English
    ("peace liberty helping helping", "twice in a row"),
    ("a dog and a dog and a dog", "three times"),
    ("a man is running on a red", "ends on 'red'"),
    ("a girl sits on a", "ends on 'a'"),
    ("", "empty"),
])
def test_sentence_flaws_name_what_is_wrong(caption, flaw):
    flaws = sentence_flaws(caption)
    assert "cut at the length limit" in sentence_flaws("cow neon cigarette", ended=False)
    assert (not flaws) if flaw is None else any(flaw in f for f in flaws)


def test_habits_are_learned_from_the_training_captions():
    captions = ["a dog runs", "a red ball", "a dog and a dog", "the red dog runs", "a ball"]
    tokenizer = build_caption_tokenizer(captions)
    habits = CaptionHabits.learn(tokenizer, captions)
    ids = tokenizer.stoi
    assert {ids["a"], ids["red"], ids["and"], ids["the"]} <= habits.no_end_after
    assert ids["dog"] not in habits.no_end_after and ids["ball"] not in habits.no_end_after
    assert habits.max_uses[ids["dog"]] == 1 and habits.max_uses[ids["a"]] == 1
    assert CaptionHabits.from_dict(habits.to_dict()) == habits


def preferring(favourite: dict[int, int], end: float, vocab: int = 8):
    """A model that gives ``favourite[last token]`` (else the last token itself) 4.0 and
    ending ``end``."""

    def step(tokens, state):
        logits = torch.zeros(len(tokens), vocab)
        for row, token in enumerate(tokens.tolist()):
            logits[row, favourite.get(token, token)] = 4.0
        logits[:, EOS] = end
        return logits, state

    return step


def test_a_word_never_follows_itself():
    step = preferring({BOS: 4}, end=3.0)  # says 4 4 4 4 … without the ban
    hyp = sample_search(ban_repeat_of_last(step), None, 1, BOS, EOS, 10)[0]
    assert hyp.tokens == [4] and hyp.finished


def test_nothing_ends_right_after_a_non_ending_word():
    step = preferring({BOS: 4, 4: 6, 6: 7}, end=5.0)  # would end at once without the ban
    hyp = sample_search(ban_end_after(step, EOS, {BOS, 4}), None, 1, BOS, EOS, 10)[0]
    assert hyp.tokens == [4, 6] and hyp.finished


def test_no_token_comes_more_often_than_its_limit():
    step = preferring({BOS: 4, 4: 5, 5: 4}, end=-1.0)
    hyp = sample_search(step, None, 1, BOS, EOS, 10, max_uses={4: 2, 5: 1})[0]
    assert hyp.tokens.count(4) <= 2 and hyp.tokens.count(5) <= 1


def test_a_finished_beam_beats_a_longer_one_cut_at_the_limit():
    # 4 → 4 → 4 … scores better per token than ending, but never ends within 3 tokens.
    def step(tokens, state):
        logits = torch.full((len(tokens), 6), -10.0)
        logits[:, 4] = 0.0
        logits[:, EOS] = -3.0
        return logits, state

    best = beam_search(step, lambda s, i: s, None, 1, BOS, EOS, 3, beam_size=3)[0][0]
    assert best.finished and len(best.tokens) < 3


def test_novelty_tells_an_unfamiliar_input_from_the_validation_set():
    torch.manual_seed(0)
    kinds = torch.randn(4, 16)  # four kinds of image, all seen in training

    def draw(n: int) -> torch.Tensor:
        return kinds[torch.arange(n) % 4] + 0.1 * torch.randn(n, 16)

    train, val = draw(200), draw(20)
    novelty = Novelty.fit(train.unsqueeze(1).repeat(1, 4, 1), val)  # regions or pooled
    far, near = novelty.distances(torch.stack([torch.randn(16), val[0]]))
    assert novelty.describe(float(far))["unfamiliar"]
    assert not novelty.describe(float(near))["unfamiliar"]
    assert Novelty.from_dict(novelty.to_dict()).val_distances == novelty.val_distances


@pytest.fixture
def scene_captions(tmp_path):
    """Pictures of shapes scenes with their English captions (Kaggle's captions.txt)."""
    images = tmp_path / "images"
    images.mkdir()
    rows = ["image,caption"]
    for i, scene in enumerate(scenes(24, 3)):
        scene.render(96).save(images / f"{i}.jpg", quality=90)
        rows.append(f"{i}.jpg,{scene.english()}")
    path = tmp_path / "captions.txt"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_photos_unlike_the_training_set_get_sentences_and_a_note(tmp_path, scene_captions):
    out = tmp_path / "run"
    result = invoke("train-caption", scene_captions, "--encoder", "resnet18", "--no-pretrained",
                    "--out", out, "--max-steps", 200, "--eval-every", 100, "--min-freq", 1,
                    "--val-fraction", 0.2, "--hidden", "32", "--embed", "16", "--batch-size",
                    8, "--cache-dir", tmp_path / "cache", "--device", "cpu", "--quiet")
    assert result.exit_code == 0, result.output
    result = invoke("caption", *photos(), "-c", out / "best.pt", "--json")
    assert result.exit_code == 0, result.output
    captioned = json.loads(result.stdout)
    assert len(captioned) == len(photos())
    for item in captioned:
        caption = item["captions"][0]
        assert not sentence_flaws(caption["caption"], caption["ended"]), (item["image"], caption)
        assert 0 <= item["novelty"]["percentile"] <= 1
    # (How well it tells them apart is for a pretrained encoder: scripts/bench_caption.py.)
    for item in captioned:
        assert (item["image"] in result.stderr) == item["novelty"]["unfamiliar"]

    familiar = invoke("caption", scene_captions.parent / "images" / "0.jpg", "-c",
                      out / "best.pt")
    assert familiar.exit_code == 0 and "farther" not in familiar.stderr


def test_the_soft_decoder_starts_from_zeros_unless_asked_to_start_from_the_image():
    from seqgen.models.captioner import CaptionConfig, ShowAttendTell

    regions = torch.randn(2, 9, 12)
    config = CaptionConfig(20, 12, "small-cnn", embed=8, hidden=16, attention="soft",
                           grid_dim=12, start="zero")
    zero = ShowAttendTell(config)
    _, _, h, c = zero.start(regions)
    assert not h.any() and not c.any() and zero.init_h is None
    image = ShowAttendTell(CaptionConfig(**{**config.__dict__, "start": "image"}))
    _, _, h, _ = image.start(regions)
    assert h.abs().sum() > 0 and not torch.equal(h[:, 0], h[:, 1])
