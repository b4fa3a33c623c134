"""Soft attention: the shared attention module, Show, Attend and Tell, its regulariser, its
maps, and decoding with it."""

import pytest
import torch
from helpers import assert_user_error, invoke
from PIL import Image

from seqgen.config import CaptionConfig
from seqgen.data.batching import pad_batch
from seqgen.data.captions import build_caption_tokenizer, caption_tensors, encode_caption
from seqgen.data.images import eval_transform
from seqgen.data.synthetic import scenes
from seqgen.models.attention import SCORES, Attention
from seqgen.models.captioner import ShowAttendTell, attention_penalty
from seqgen.models.encoders import build_encoder
from seqgen.tasks.caption import CaptionTask, decode_images, plot_caption_attention
from seqgen.tokenizers import PAD_ID


@pytest.mark.parametrize("score", SCORES)
def test_attention_weights_sum_to_one_and_masked_places_get_none(score):
    torch.manual_seed(0)
    attention = Attention(score, memory_size=6, query_size=5, size=7)
    memory = torch.randn(3, 4, 6)
    mask = torch.tensor([[True] * 4, [True, True, False, False], [False, True, True, True]])
    context, weights = attention(torch.randn(3, 2, 5), memory, attention.keys(memory), mask)
    assert weights.shape == (3, 2, 4) and context.shape == (3, 2, 6)
    assert torch.allclose(weights.sum(-1), torch.ones(3, 2))
    assert (weights[~mask.unsqueeze(1).expand_as(weights)] == 0).all()
    assert (weights[mask.unsqueeze(1).expand_as(weights)] > 0).all()
    assert torch.allclose(context, weights @ memory)


def test_the_attention_penalty_is_zero_exactly_when_each_region_sums_to_one_over_time():
    # Four words, four regions: each region fully attended once.
    once_each = torch.eye(4).unsqueeze(0)
    words = torch.ones(1, 4)
    assert attention_penalty(once_each, words) == 0
    # Steps of padding never count, whatever their attention.
    padded = torch.cat([once_each, torch.full((1, 2, 4), 0.25)], dim=1)
    assert attention_penalty(padded, torch.tensor([[1.0] * 4 + [0.0] * 2])) == 0
    # Spread differently over time: a region looked at twice, another never.
    uneven = torch.tensor([[[1.0, 0, 0, 0], [1.0, 0, 0, 0], [0, 0, 1.0, 0], [0, 0, 0, 1.0]]])
    assert attention_penalty(uneven, words) == pytest.approx(2.0)
    uniform = torch.full((1, 2, 4), 0.25)
    assert attention_penalty(uniform, torch.ones(1, 2)) == pytest.approx(4 * 0.5 ** 2)


def _scenes_batch(n: int, seed: int, tokenizer=None):
    shown = scenes(n, seed)
    captions = [s.english() for s in shown]
    tokenizer = tokenizer or build_caption_tokenizer(captions)
    inputs, targets = (pad_batch(side)[0] for side in zip(
        *(caption_tensors(encode_caption(tokenizer, c), 20) for c in captions)))
    return shown, captions, tokenizer, inputs, targets


def test_a_tiny_attention_captioner_overfits_a_few_scenes_exactly():
    torch.manual_seed(0)
    shown, captions, tokenizer, inputs, targets = _scenes_batch(6, 5)
    encoder, info = build_encoder("small-cnn")
    transform = eval_transform(info.spec)
    images = torch.stack([transform(s.render(64)) for s in shown])
    model = ShowAttendTell(CaptionConfig(tokenizer.vocab_size, info.feature_dim, "small-cnn",
                                         embed=32, hidden=64, dropout=0.0, attention="soft",
                                         grid_dim=info.grid_shape[0]), encoder)
    task = CaptionTask(tokenizer, alpha_c=1.0)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-2)
    n_targets = int((targets != PAD_ID).sum())
    for _ in range(150):
        loss, _ = task.loss(model.train(), (images, inputs, targets), None)
        optimizer.zero_grad()
        (loss / n_targets).backward()
        optimizer.step()
    for beam in (1, 3):
        hyps = decode_images(model, images, beam=beam)
        assert [tokenizer.decode(h[0].tokens) for h in hyps] == captions


def _soft_model(vocab: int, regions: int = 9, dim: int = 6, layers: int = 1):
    torch.manual_seed(1)
    return ShowAttendTell(CaptionConfig(vocab, dim, "small-cnn", embed=8, hidden=12,
                                        layers=layers, dropout=0.0, attention="soft",
                                        grid_dim=dim)).eval()


@pytest.mark.parametrize("layers", [1, 2])
def test_teacher_forcing_with_attention_matches_step_by_step_decoding(layers):
    model = _soft_model(14, layers=layers)
    regions = torch.randn(3, 9, 6)
    inputs = torch.randint(4, 14, (3, 5))
    forced, weights = model(regions, inputs, return_attention=True)
    assert weights.shape == (3, 5, 9) and torch.allclose(weights.sum(-1), torch.ones(3, 5))
    state = model.start(regions)
    for t in range(5):
        logits, state = model.step(inputs[:, t], state)
        assert torch.allclose(logits, forced[:, t], atol=1e-5)


def test_batched_beam_with_attention_equals_one_image_at_a_time():
    model = _soft_model(14)
    regions = torch.randn(5, 9, 6)
    batched = decode_images(model, regions, beam=3, n_best=2, max_len=8)
    for i in range(5):
        alone = decode_images(model, regions[i:i + 1], beam=3, n_best=2, max_len=8)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in batched[i]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in batched[i]],
                                                          abs=1e-4)


def test_the_attention_plot_has_one_panel_per_word(tmp_path):
    pytest.importorskip("matplotlib")
    shown, captions, tokenizer, _, _ = _scenes_batch(20, 3)
    # A caption that leaves the last row of panels part empty (five panels a row).
    pick = next(i for i, c in enumerate(captions) if len(c.split()) > 5
                and len(c.split()) % 5)
    shown, captions = shown[pick:], captions[pick:]
    encoder, info = build_encoder("small-cnn")
    model = ShowAttendTell(CaptionConfig(tokenizer.vocab_size, info.feature_dim, "small-cnn",
                                         embed=8, hidden=16, attention="soft",
                                         grid_dim=info.grid_shape[0]), encoder).eval()
    photo = tmp_path / "scene.png"
    shown[0].render(64).save(photo)
    tokens = encode_caption(tokenizer, captions[0])
    panels = plot_caption_attention(model, tokenizer, info.spec, photo, tokens,
                                    tmp_path / "attention.png")
    assert panels == len(captions[0].split()) == len(tokens)
    with Image.open(tmp_path / "attention.png") as plot:
        assert plot.format == "PNG" and plot.width > 64 * 4


@pytest.fixture
def scene_captions(tmp_path):
    """A caption CSV of 12 rendered scenes."""
    folder = tmp_path / "scenes"
    (folder / "images").mkdir(parents=True)
    rows = ["image,caption"]
    for i, scene in enumerate(scenes(12, 9)):
        scene.render(64).save(folder / "images" / f"s{i}.png")
        rows.append(f"s{i}.png,{scene.english()}")
    (folder / "captions.csv").write_text("\n".join(rows) + "\n")
    return folder / "captions.csv"


def test_caption_plots_attention_from_the_command_line(tmp_path, scene_captions):
    pytest.importorskip("matplotlib")
    tiny = ["--encoder", "small-cnn", "--max-steps", 3, "--min-freq", 1, "--val-fraction",
            0.25, "--device", "cpu", "--hidden", 16, "--embed", 8, "--batch-size", 4]
    soft, plain = tmp_path / "soft", tmp_path / "plain"
    assert invoke("train-caption", scene_captions, "--out", soft, *tiny).exit_code == 0
    images = sorted((scene_captions.parent / "images").glob("*.png"))[:2]
    result = invoke("caption", *images, "-c", soft / "best.pt", "--plot-attention",
                    tmp_path / "maps.png", "--no-repeat-ngram", 2)
    assert result.exit_code == 0, result.output
    assert {p.name for p in tmp_path.glob("maps-*.png")} == {"maps-s0.png", "maps-s1.png"}
    # A model without attention says so, in one line, before decoding anything.
    result = invoke("train-caption", scene_captions, "--out", plain, "--attention", "none",
                    *tiny)
    assert result.exit_code == 0, result.output
    result = invoke("caption", images[0], "-c", plain / "best.pt", "--plot-attention",
                    tmp_path / "none.png")
    assert_user_error(result, "no attention")
    assert not (tmp_path / "none.png").exists()


def test_the_training_loss_adds_the_weighted_regulariser_and_validation_leaves_it_out():
    from seqgen.tasks.supervised import masked_token_loss

    _, _, tokenizer, inputs, targets = _scenes_batch(4, 2)
    model = _soft_model(tokenizer.vocab_size)
    regions = torch.randn(4, 9, 6)
    logits, weights = model(regions, inputs, return_attention=True)
    words = masked_token_loss(logits, targets)
    penalty = attention_penalty(weights, targets != PAD_ID)
    for alpha_c in (0.0, 0.5, 2.0):
        loss, _ = CaptionTask(tokenizer, alpha_c=alpha_c).loss(model, (regions, inputs,
                                                                        targets), None)
        assert loss.item() == pytest.approx((words + alpha_c * penalty).item(), rel=1e-5)
    forced, _ = CaptionTask.teacher_forced(model, (regions, inputs, targets))
    assert torch.allclose(forced, logits)


@pytest.mark.parametrize("name", ["resnet18", "convnext_tiny", "densenet121",
                                  "mobilenet_v3_small"])
def test_pooling_the_grid_gives_what_the_encoder_gives(name):
    from seqgen.models.encoders import image_grid, pool_grid

    torch.manual_seed(0)
    encoder, info = build_encoder(name, pretrained=False)
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        grid = image_grid(encoder, images)
        assert grid.dim() == 4 and grid.size(1) == info.grid_shape[0]
        assert torch.allclose(pool_grid(encoder, grid), encoder(images).flatten(1), atol=1e-5)


def test_a_run_of_an_earlier_version_resumes_as_show_and_tell(tmp_path, scene_captions):
    tiny = ["--encoder", "small-cnn", "--min-freq", 1, "--val-fraction", 0.25, "--device",
            "cpu", "--hidden", 16, "--embed", 8, "--batch-size", 4, "--out", tmp_path / "run"]
    result = invoke("train-caption", scene_captions, "--attention", "none", "--max-steps", 2,
                    *tiny)
    assert result.exit_code == 0, result.output
    last = tmp_path / "run" / "last.pt"
    saved = torch.load(last, weights_only=False)
    for name in ("attention", "alpha_c"):  # what runs of earlier versions did not record
        del saved["run"][name]
    torch.save(saved, last)
    result = invoke("train-caption", scene_captions, "--max-steps", 4, "--resume", *tiny)
    assert result.exit_code == 0, result.output
    resumed = torch.load(last, weights_only=False)
    assert resumed["trainer_state"]["step"] == 4
    assert resumed["model_config"]["attention"] == "none"
