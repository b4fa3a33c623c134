import dataclasses
import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch
from helpers import SHARED_DATA, assert_user_error, invoke
from PIL import Image

from seqgen.data.captions import build_caption_tokenizer, caption_words, read_captions, split_images
from seqgen.data.features import FeatureCache, encode_images
from seqgen.data.images import (
    TransformSpec,
    check_images,
    eval_transform,
    load_image,
    train_transform,
)
from seqgen.data.synthetic import english_words, scene_key, scenes
from seqgen.errors import UserError
from seqgen.metrics import corpus_bleu
from seqgen.models.captioner import CaptionConfig, ShowAndTell
from seqgen.models.encoders import SMALL_SPEC, build_encoder, freeze, pool_grid
from seqgen.tasks.caption import feature_cache
from seqgen.tokenizers import UNK_ID

FLICKR = SHARED_DATA / "flickr8k-mini"
HAS_LITE0 = importlib.util.find_spec("efficientnet_lite_pytorch") is not None
TINY = ["--layers", "1", "--hidden", "32", "--embed", "16", "--batch-size", "8", "--quiet"]


@pytest.fixture
def flickr():
    if not FLICKR.exists():
        pytest.skip("../shared/data is not beside the project")
    return FLICKR


@pytest.fixture
def flickr_slice(tmp_path):
    """12 pictures (rendered shapes scenes saved as JPEG) with two captions each, in the
    layout of Kaggle's Flickr8k captions.txt (a header, some captions quoted)."""
    images = tmp_path / "images"
    images.mkdir()
    path = tmp_path / "captions.txt"
    rows = ["image,caption"]
    for i, scene in enumerate(scenes(12, 21)):
        name = f"{1000 + i}_photo.jpg"
        scene.render(96).save(images / name, quality=90)
        rows += [f"{name},{scene.english().capitalize()} .", f'{name},"{scene.english()}"']
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------ caption files
LAYOUTS = {
    "coco": json.dumps({
        "images": [{"id": 1, "file_name": "a.jpg"}, {"id": 2, "file_name": "b.jpg"}],
        "annotations": [{"image_id": 1, "caption": "A dog runs."},
                        {"image_id": 2, "caption": "Two cats sleep"},
                        {"image_id": 1, "caption": "a brown dog"}]}),
    "karpathy": json.dumps({"images": [
        {"filename": "a.jpg", "split": "train", "sentences": [
            {"raw": "A dog runs.", "tokens": ["a", "dog", "runs"]},
            {"raw": "a brown dog", "tokens": ["a", "brown", "dog"]}]},
        {"filename": "b.jpg", "split": "val", "sentences": [
            {"raw": "Two cats sleep", "tokens": ["two", "cats", "sleep"]}]}]}),
    "flickr8k": "a.jpg#0\tA dog runs.\nb.jpg#0\tTwo cats sleep\na.jpg#1\ta brown dog\n",
    "csv": "image,caption\na.jpg,A dog runs.\nb.jpg,Two cats sleep\na.jpg,\"a brown dog\"\n",
    "jsonl": '{"image": "a.jpg", "caption": "A dog runs."}\n'
             '{"image": "b.jpg", "captions": ["Two cats sleep"]}\n'
             '{"image": "a.jpg", "caption": "a brown dog"}\n',
}


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_each_caption_layout_is_detected_and_read(tmp_path, layout):
    path = tmp_path / "captions.data"
    path.write_text(LAYOUTS[layout], encoding="utf-8")
    entries, fmt = read_captions(path)
    assert fmt == layout
    assert [(e.image, e.captions) for e in entries] == [
        ("a.jpg", ["A dog runs.", "a brown dog"]), ("b.jpg", ["Two cats sleep"])]
    assert read_captions(path, layout)[1] == layout  # --format forces the same reader
    if layout == "karpathy":
        train, val, how = split_images(entries)
        assert [e.image for e in train] == ["a.jpg"] and [e.image for e in val] == ["b.jpg"]


def test_csv_without_header_and_forced_wrong_format(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("a.jpg,a dog\nb.jpg,a cat\n", encoding="utf-8")
    entries, fmt = read_captions(path)
    assert fmt == "csv" and [e.image for e in entries] == ["a.jpg", "b.jpg"]
    with pytest.raises(UserError, match="coco"):
        read_captions(path, "coco")


def test_the_three_real_flickr_layouts_agree(flickr):
    read = {name: {e.image: e.captions for e in read_captions(flickr / name)[0]}
            for name in ("Flickr8k.token.txt", "captions.txt", "dataset_flickr8k.json")}
    assert len(read["captions.txt"]) == 866
    assert read["Flickr8k.token.txt"] == read["captions.txt"] == read["dataset_flickr8k.json"]
    entries, _ = read_captions(flickr / "dataset_flickr8k.json")
    train, val, how = split_images(entries)
    assert (len(train), len(val), how) == (753, 113, "split field")


def test_caption_words_are_lowercased_without_punctuation():
    assert caption_words("A dog, running (fast)!  Isn't it ?") == \
        ["a", "dog", "running", "fast", "isn't", "it"]
    tok = build_caption_tokenizer(["a dog", "A dog .", "a cat"], min_freq=2)
    assert tok.itos[4:] == ["a", "dog"]
    assert tok.decode(tok.encode("a dog")) == "a dog"


def test_held_out_fraction_without_split_field():
    from seqgen.data.captions import ImageCaptions

    entries = [ImageCaptions(f"{i}.jpg", ["x"]) for i in range(40)]
    train, val, _ = split_images(entries, 0.1, seed=3)
    assert len(val) == 4 and len(train) == 36
    assert not {e.image for e in train} & {e.image for e in val}
    assert split_images(entries, 0.1, seed=3)[1] == val


# ------------------------------------------------------------------ images
def test_image_modes_and_exif_rotation_become_upright_rgb(tmp_path):
    cases = {
        "gray.png": Image.new("L", (30, 20), 128),
        "cmyk.jpg": Image.new("CMYK", (30, 20), (0, 255, 0, 0)),
        "alpha.png": Image.new("RGBA", (30, 20), (255, 0, 0, 0)),
        "palette.png": Image.new("P", (30, 20), 3),
    }
    for name, image in cases.items():
        image.save(tmp_path / name)
        loaded = load_image(tmp_path / name)
        assert loaded.mode == "RGB" and loaded.size == (30, 20), name
    assert load_image(tmp_path / "alpha.png").getpixel((0, 0)) == (255, 255, 255)
    rotated = Image.new("RGB", (30, 20))
    exif = rotated.getexif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    rotated.save(tmp_path / "rotated.jpg", exif=exif)
    assert load_image(tmp_path / "rotated.jpg").size == (20, 30)


def test_unreadable_images_are_counted(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "ok.png")
    (tmp_path / "bad.jpg").write_bytes(b"not an image at all")
    checked = check_images(tmp_path, ["ok.png", "bad.jpg", "missing.png"])
    assert [p.name for p in checked.paths] == ["ok.png"]
    assert checked.skipped == ["bad.jpg", "missing.png"]


def test_augmentation_repeats_by_position_and_a_flip_mirrors_the_caption(tmp_path):
    from seqgen.data.captions import CaptionBatches, encode_caption, mirror_ids
    from seqgen.data.synthetic import Scene, Shape

    # A red circle in the left column, a blue square in the right one: "left of".
    scene = Scene((Shape("circle", "red", "big", 1, 0), Shape("square", "blue", "big", 1, 2)))
    assert scene.english() == "a big red circle left of a big blue square"
    scene.render(96).save(tmp_path / "scene.png")
    tokenizer = build_caption_tokenizer([scene.english(), "right"])
    pairs = [(0, encode_caption(tokenizer, scene.english()))] * 32
    spec = TransformSpec(64, 64, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    data = CaptionBatches([tmp_path / "scene.png"], pairs, 32, seed=3,
                          transform=train_transform(spec, augment=True),
                          mirror=mirror_ids(tokenizer))
    images, inputs, _ = data.batch(list(range(32)), epoch=1, number=5)
    again = data.batch(list(range(32)), epoch=1, number=5)
    assert torch.equal(images, again[0]) and torch.equal(inputs, again[1])
    assert not torch.equal(images[0], images[1])  # random crops differ within a batch
    red = (images[:, 0] > 0.5) & (images[:, 2] < 0)  # (B, H, W) red pixels
    blue = (images[:, 2] > 0.5) & (images[:, 0] < 0)
    columns = torch.arange(images.size(-1)).float()

    def centre(mask):
        return (mask.sum(1).float() * columns).sum(-1) / mask.sum((1, 2)).clamp(min=1)

    red_is_left = centre(red) < centre(blue)
    says_left = inputs.eq(tokenizer.stoi["left"]).any(1)
    says_right = inputs.eq(tokenizer.stoi["right"]).any(1)
    assert 0 < int(red_is_left.sum()) < 32  # some images were flipped, some were not
    assert torch.equal(says_left, red_is_left) and torch.equal(says_right, ~red_is_left)
    # Without augmentation, training images get exactly the caption-time transform.
    plain, flipped = train_transform(spec, augment=False)(load_image(tmp_path / "scene.png"),
                                                          torch.Generator())
    assert not flipped
    assert torch.equal(plain, eval_transform(spec)(load_image(tmp_path / "scene.png")))


def test_cached_features_equal_fresh_ones(tmp_path, flickr):
    paths = sorted((flickr / "images").glob("*.jpg"))[:4]
    name = "efficientnet-lite0" if HAS_LITE0 else "small-cnn"
    encoder, info = build_encoder(name, pretrained=HAS_LITE0)
    freeze(encoder)
    transform = eval_transform(info.spec)
    cache = FeatureCache(tmp_path, f"{info.name}|{info.weights_id}")
    cpu, shape = torch.device("cpu"), info.grid_shape
    fresh, failed, hits = encode_images(encoder, paths, transform, cpu, shape)
    first, _, hits_first = encode_images(encoder, paths, transform, cpu, shape, cache=cache)
    again, _, hits_again = encode_images(encoder, paths, transform, cpu, shape, cache=cache)
    assert failed == [] and (hits_first, hits_again) == (0, 4)
    # The cache holds each image's grid, in float16; pooling it gives the encoder's features.
    assert fresh.shape == (4, *shape) and again.dtype == torch.float16
    assert torch.equal(fresh, again) and torch.equal(first, again)
    with torch.no_grad():
        pooled = encoder(torch.stack([transform(load_image(p)) for p in paths]))
        assert torch.allclose(pool_grid(encoder, again.float()), pooled, atol=2e-2, rtol=1e-2)
    if HAS_LITE0:
        assert shape == (1280, 7, 7) and info.feature_dim == 1280
    # An edited image is encoded again; other encoder weights never see these features.
    edited = tmp_path / "edited.jpg"
    shutil.copy(paths[0], edited)
    encode_images(encoder, [edited], transform, cpu, shape, cache=cache)
    load_image(paths[1]).save(edited)
    _, _, hits = encode_images(encoder, [edited], transform, cpu, shape, cache=cache)
    assert hits == 0
    other = FeatureCache(tmp_path, f"{info.name}|other-weights")
    _, _, hits = encode_images(encoder, paths, transform, cpu, shape, cache=other)
    assert hits == 0


def test_a_changed_grid_shape_never_reuses_cached_grids(tmp_path):
    encoder, info = build_encoder("small-cnn")
    freeze(encoder)
    wider = dataclasses.replace(info, grid_shape=(64, 8, 8))
    assert feature_cache(tmp_path, encoder, info).dir != feature_cache(tmp_path, encoder,
                                                                       wider).dir
    # Within one folder, an entry of another shape is encoded again, never read as this one.
    path = tmp_path / "scene.png"
    next(iter(scenes(1, 0))).render(64).save(path)
    cache = feature_cache(tmp_path, encoder, info)
    cache.put(path, np.zeros((64, 8, 8), dtype=np.float16))
    grids, _, hits = encode_images(encoder, [path], eval_transform(info.spec),
                                   torch.device("cpu"), info.grid_shape, cache=cache)
    assert hits == 0 and grids.shape == (1, 64, 4, 4) and grids.abs().sum() > 0


@pytest.mark.skipif(not HAS_LITE0, reason="efficientnet-lite0 extra not installed")
def test_lite0_gives_1280_by_7_by_7_maps():
    encoder, info = build_encoder("efficientnet-lite0")
    maps = encoder.net.extract_features(torch.zeros(1, 3, 224, 224))
    assert maps.shape == (1, 1280, 7, 7) and info.spec.crop == 224


# ------------------------------------------------------------------ model
def test_fused_teacher_forcing_matches_step_by_step_decoding():
    torch.manual_seed(0)
    model = ShowAndTell(CaptionConfig(vocab_size=12, feature_dim=10, embed=8, hidden=16,
                                      layers=2, dropout=0.0)).eval()
    feats = torch.randn(3, 10)
    inputs = torch.randint(4, 12, (3, 5))
    fused = model(feats, inputs)
    state = model.start(feats)
    for t in range(5):
        logits, state = model.step(inputs[:, t], state)
        assert torch.allclose(logits, fused[:, t], atol=1e-5)


def test_bleu_uses_all_references():
    assert corpus_bleu(["a dog runs"], [["a cat sleeps", "a dog runs"]], 3, tokenize="none") \
        == pytest.approx(100)
    assert corpus_bleu(["a dog runs"], [["a cat sleeps"]], 1, tokenize="none") < 50


def test_tiny_captioner_overfits_shapes_scenes_exactly():
    from seqgen.data.batching import pad_batch
    from seqgen.data.captions import caption_tensors, encode_caption
    from seqgen.tasks.caption import decode_images
    from seqgen.tokenizers import PAD_ID

    torch.manual_seed(0)
    captions = [s.english() for s in scenes(8, 5)]
    tokenizer = build_caption_tokenizer(captions)
    encoder, info = build_encoder("small-cnn", feature_dim=64)
    freeze(encoder)
    transform = eval_transform(info.spec)
    with torch.no_grad():
        feats = encoder(torch.stack([transform(s.render(32)) for s in scenes(8, 5)]))
    inputs, targets = (pad_batch(side)[0] for side in
                       zip(*(caption_tensors(encode_caption(tokenizer, c), 20) for c in captions)))
    model = ShowAndTell(CaptionConfig(tokenizer.vocab_size, info.feature_dim, "small-cnn",
                                      embed=32, hidden=64, dropout=0.0), encoder)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 1e-2)
    for _ in range(200):
        loss = torch.nn.functional.cross_entropy(model(feats, inputs).flatten(0, 1),
                                                 targets.flatten(), ignore_index=PAD_ID)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for beam in (1, 3):
        hyps = decode_images(model, feats, beam=beam)
        assert [tokenizer.decode(h[0].tokens) for h in hyps] == captions


# ------------------------------------------------------------------ command line
@pytest.fixture
def trained(tmp_path, flickr_slice):
    out = tmp_path / "caption"
    result = invoke("train-caption", flickr_slice, "--encoder", "small-cnn", "--out", out,
                    "--max-steps", 6, "--eval-every", 3, "--min-freq", 2, "--val-fraction",
                    0.2, "--device", "cpu", *TINY)
    assert result.exit_code == 0, result.output
    return out


def test_train_caption_evaluate_end_to_end(trained, flickr_slice):
    assert {p.name for p in trained.iterdir()} >= {"best.pt", "last.pt", "metrics.jsonl"}
    images = sorted((flickr_slice.parent / "images").glob("*.jpg"))[:2]
    ckpt = trained / "best.pt"
    result = invoke("caption", images[0], "-c", ckpt)
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 1 and result.stdout.strip()

    result = invoke("caption", *images, "-c", ckpt, "--beam", 3, "--n-best", 3, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [d["image"] for d in data] == [str(p) for p in images]
    assert all(len(d["captions"]) == 3 for d in data)
    logprobs = [c["logprob"] for c in data[0]["captions"]]
    assert all(lp <= 0 for lp in logprobs)

    sampled = invoke("caption", images[0], "-c", ckpt, "--temp", 0.8, "--seed", 1, "--json")
    again = invoke("caption", images[0], "-c", ckpt, "--temp", 0.8, "--seed", 1, "--json")
    assert sampled.exit_code == 0 and sampled.stdout == again.stdout

    result = invoke("evaluate-caption", flickr_slice, "-c", ckpt, "--json", "--beam", 2)
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["images"] == 12 and metrics["split"] == "all"
    assert 0 <= metrics["bleu4"] <= metrics["bleu1"] <= 100
    result = invoke("evaluate-caption", flickr_slice, "-c", ckpt, "--limit", 2)
    assert result.exit_code == 0 and "BLEU-4" in result.stdout

    result = invoke("info", ckpt)
    assert result.exit_code == 0 and "caption" in result.stdout


def test_resume_continues_a_caption_run(trained, flickr_slice):
    result = invoke("train-caption", flickr_slice, "--encoder", "small-cnn", "--out", trained,
                    "--max-steps", 8, "--resume", "--device", "cpu", *TINY)
    assert result.exit_code == 0, result.output
    state = torch.load(trained / "last.pt", weights_only=True)["trainer_state"]
    assert state["step"] == 8
    again = invoke("train-caption", flickr_slice, "--encoder", "small-cnn", "--out", trained,
                   "--max-steps", 8, "--device", "cpu", *TINY)
    assert_user_error(again, "--resume")


def test_unreadable_images_are_skipped_with_a_count(tmp_path, flickr_slice):
    entries, _ = read_captions(flickr_slice)
    (flickr_slice.parent / "images" / entries[0].image).write_bytes(b"\xff\xd8broken")
    result = invoke("train-caption", flickr_slice, "--encoder", "small-cnn", "--out",
                    tmp_path / "c", "--max-steps", 1, "--min-freq", 1, "--device", "cpu",
                    "--layers", 1, "--hidden", 16, "--embed", 8)
    assert result.exit_code == 0, result.output
    assert "skipped 1 unreadable images" in " ".join(result.stderr.split())
    good = flickr_slice.parent / "images" / entries[1].image
    result = invoke("caption", good, flickr_slice.parent / "images" / entries[0].image,
                    "-c", tmp_path / "c" / "best.pt")
    assert result.exit_code == 0
    broken = flickr_slice.parent / "images" / entries[0].image
    assert result.stderr.strip() == f"skipped {broken}: not an image"


@pytest.mark.skipif(not HAS_LITE0, reason="efficientnet-lite0 extra not installed")
def test_lite0_training_uses_the_feature_cache_on_a_second_run(tmp_path, flickr_slice):
    args = ["train-caption", flickr_slice, "--encoder", "efficientnet-lite0", "--max-steps", 2,
            "--min-freq", 1, "--device", "cpu", "--cache-dir", tmp_path / "cache",
            "--layers", 1, "--hidden", 16, "--embed", 8, "--batch-size", 8]
    first = invoke(*args, "--out", tmp_path / "a")
    assert first.exit_code == 0, first.output
    assert "0 of 12 from the cache" in " ".join(first.stderr.split())
    second = invoke(*args, "--out", tmp_path / "b")
    assert "12 of 12 from the cache" in " ".join(second.stderr.split())
    result = invoke("caption", next((flickr_slice.parent / "images").glob("*.jpg")),
                    "-c", tmp_path / "b" / "best.pt")
    assert result.exit_code == 0 and result.stdout.strip()


def test_torchvision_backbone_without_cached_weights_says_where_to_put_them(monkeypatch,
                                                                          tmp_path):
    import torchvision

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    monkeypatch.setattr(torchvision.models.ResNet18_Weights.IMAGENET1K_V1, "get_state_dict",
                        offline, raising=False)
    with pytest.raises(UserError, match=r"hub[/\\]checkpoints"):
        build_encoder("resnet18", pretrained=True)
    encoder, info = build_encoder("resnet18", pretrained=False)
    assert info.feature_dim == 512
    # A local state dict (--encoder-weights) loads instead.
    weights = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18().state_dict(), weights)
    _, info = build_encoder("resnet18", weights_file=weights)
    assert info.pretrained and info.weights_id.startswith("file:")


def test_held_out_scenes_are_distinct_and_saved_as_images(tmp_path):
    from seqgen.demo import held_out_scenes, write_scene_images

    held = held_out_scenes(30, seed=1)
    assert len({scene_key(s) for s in held}) == 30
    files = write_scene_images(tmp_path, held[:5], size=32)
    assert [c for _, c in files] == [s.english() for s in held[:5]]
    assert all(Image.open(p).size == (32, 32) for p, _ in files)


def test_fresh_scene_batches_repeat_by_position_and_skip_held_out_scenes():
    from seqgen.data.scene_batches import FreshSceneBatches

    tokenizer = build_caption_tokenizer([" ".join(english_words())])
    first = FreshSceneBatches(tokenizer, SMALL_SPEC, 16, batches_per_epoch=3, seed=4)
    held = frozenset(scene_key(s) for s in first.scenes(0, 1)[:8])
    data = FreshSceneBatches(tokenizer, SMALL_SPEC, 16, batches_per_epoch=3, seed=4, exclude=held)
    batches = list(data.batches())
    assert len(batches) == 3
    images, inputs, targets = batches[1]
    assert images.shape == (16, 3, 64, 64) and inputs.size(0) == targets.size(0) == 16
    assert all(scene_key(s) not in held for e in (0, 1) for b in range(3)
               for s in data.scenes(e, b))
    # Resuming in the middle of an epoch draws the very same scenes.
    again = list(data.batches(0, start=1))[0]
    assert all(torch.equal(a, b) for a, b in zip(again, batches[1]))
    assert [s.english() for s in data.scenes(1, 0)] != [s.english() for s in data.scenes(0, 0)]
    assert UNK_ID not in targets


def test_scene_batches_match_the_caption_time_transform():
    from seqgen.data.scene_batches import scene_images

    shown = scenes(4, 9)
    transform = eval_transform(SMALL_SPEC)
    expected = torch.stack([transform(s.render(SMALL_SPEC.crop)) for s in shown])
    assert torch.allclose(scene_images(shown, SMALL_SPEC), expected, atol=1e-6)


def test_demo_captioning_runs_and_reports_exact_match(tmp_path):
    from rich.console import Console

    from seqgen.demo import demo_captioning

    console = Console(file=open(tmp_path / "out.txt", "w"), width=100)  # noqa: SIM115
    exact, seconds = demo_captioning(tmp_path, 1.0, "cpu", 0, console, console, n_unseen=4)
    console.file.close()
    text = (tmp_path / "out.txt").read_text()
    marks = [line.lstrip()[0] for line in text.splitlines() if line.lstrip()[:1] in "✓✗"
             and line.strip()]
    assert len(marks) == 4  # each unseen scene shown, marked right or wrong
    assert exact == marks.count("✓") / 4
    assert f"{exact:.0%} of 4 unseen scenes captioned exactly" in text
    assert seconds >= 1.0 and "stopped: its time cap of 1 s" in text
    assert (tmp_path / "caption" / "best.pt").exists()


@pytest.mark.parametrize("name,text", [
    ("one-line.jsonl", '{"image": "a.jpg", "caption": "A dog runs."}\n'),
    ("caption-first.csv", 'caption,image\n"A dog runs.",a.jpg\n'),
    ("kaggle-names.csv", 'file,comment\na.jpg,"A dog runs."\n'),
    ("extra-columns.csv", 'id,text,filename,split\n7,"A dog runs.",a.jpg,train\n'),
])
def test_caption_files_are_read_by_their_header_names(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    entries, _ = read_captions(path)
    assert [(e.image, e.captions) for e in entries] == [("a.jpg", ["A dog runs."])]


def test_a_random_frozen_encoder_never_reuses_another_runs_features(tmp_path):
    from seqgen.models.encoders import weights_digest
    from seqgen.tasks.caption import EncoderOptions, feature_cache, prepare_encoder

    def cache_for(seed):
        encoder, info, trainable = prepare_encoder(EncoderOptions("resnet18", pretrained=False),
                                                   seed=seed)
        assert not trainable  # frozen: features are cached
        return feature_cache(tmp_path, encoder, info), weights_digest(encoder)

    (first, digest), (again, _), (other, other_digest) = cache_for(1), cache_for(1), cache_for(2)
    assert first.dir == again.dir  # the same weights share their features
    assert first.dir != other.dir and digest != other_digest
