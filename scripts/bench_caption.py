"""Captioning benchmarks.

    python scripts/bench_caption.py --part cache        # epoch time, feature cache vs none
    python scripts/bench_caption.py --part throughput   # decoder training: trainer vs bare loop
    python scripts/bench_caption.py --part quality      # Flickr8k-mini, lite0, defaults, 15 min
    python scripts/bench_caption.py --part shapes       # exact match on unseen shapes scenes
    python scripts/bench_caption.py --part speed        # caption images/s, batched vs one by one
    python scripts/bench_caption.py --part photos       # photos unlike Flickr's: sentences?

Data comes from ../shared/data (beside the project). Budgets are flags; figures are printed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seqgen.config import TrainConfig, parse_duration  # noqa: E402
from seqgen.data.captions import (  # noqa: E402
    CaptionBatches,
    build_caption_tokenizer,
    encode_caption,
    read_captions,
    split_images,
)
from seqgen.data.features import FeatureCache, encode_images  # noqa: E402
from seqgen.data.images import eval_transform, train_transform  # noqa: E402
from seqgen.models.captioner import CaptionConfig, ShowAndTell  # noqa: E402
from seqgen.models.encoders import build_encoder, freeze, pool_grid  # noqa: E402
from seqgen.tasks.caption import CaptionTask, validation_data  # noqa: E402
from seqgen.tokenizers import PAD_ID  # noqa: E402

FLICKR = ROOT.parent / "shared" / "data" / "flickr8k-mini"


def flickr_train(n_images: int | None = None):
    entries, _ = read_captions(FLICKR / "dataset_flickr8k.json")
    train, val, _ = split_images(entries)
    return (train[:n_images] if n_images else train), val


def decoder_step(model, optimizer, batch, clip=5.0) -> int:
    images, inputs, targets = batch
    logits = model(images, inputs)
    loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD_ID,
                           reduction="sum")
    n = int((targets != PAD_ID).sum())
    optimizer.zero_grad(set_to_none=True)
    (loss / n).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    optimizer.step()
    return n


def part_cache(args) -> None:
    """One epoch over N images' captions with a frozen encoder: encoder run per batch (no
    cache) vs features read back from the on-disk cache (a re-run)."""
    train, _ = flickr_train(args.images)
    tokenizer = build_caption_tokenizer([c for e in train for c in e.captions], 1)
    pairs = [(i, encode_caption(tokenizer, c)) for i, e in enumerate(train) for c in e.captions]
    paths = [FLICKR / "images" / e.image for e in train]
    encoder, info = build_encoder(args.encoder)
    freeze(encoder)
    transform = eval_transform(info.spec)
    config = CaptionConfig(tokenizer.vocab_size, info.feature_dim, info.name)

    def epoch(images, label):
        torch.manual_seed(0)
        model = ShowAndTell(config, encoder)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], 2e-3)
        data = CaptionBatches(images, pairs, 32, transform=train_transform(info.spec, False))
        start = time.perf_counter()
        for batch in data.batches(0):
            decoder_step(model.train(), optimizer, batch)
        seconds = time.perf_counter() - start
        print(f"{label}: {seconds:.2f}s per epoch ({len(pairs)} captions, {len(paths)} images)")
        return seconds

    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(Path(tmp), f"{info.name}|{info.weights_id}")
        start = time.perf_counter()
        encode_images(encoder, paths, transform, torch.device("cpu"), info.grid_shape,
                      cache=cache)
        print(f"first run, filling the cache: {time.perf_counter() - start:.2f}s")
        slow = epoch(paths, "no feature cache (encoder in every batch)")
        start = time.perf_counter()
        grids, _, hits = encode_images(encoder, paths, transform, torch.device("cpu"),
                                       info.grid_shape, cache=cache)
        feats = pool_grid(encoder, grids.float())
        load = time.perf_counter() - start
        fast = epoch(feats, "feature cache (read back from disk)") + load
        print(f"  (of which reading {hits} cached features: {load:.2f}s)")
    print(f"cache speed-up per epoch: {slow / fast:.1f}x  (target >= 10x)")


def part_throughput(args) -> None:
    """Decoder training tokens/s through the shared Trainer vs a bare PyTorch loop, on the
    same batches (real Flickr captions, random 1280-d features)."""
    from seqgen.training import Trainer

    torch.set_num_threads(args.threads)
    train, _ = flickr_train()
    tokenizer = build_caption_tokenizer([c for e in train for c in e.captions], 3)
    pairs = [(i, encode_caption(tokenizer, c)) for i, e in enumerate(train) for c in e.captions]
    feats = torch.randn(len(train), 1280)
    config = CaptionConfig(tokenizer.vocab_size, 1280, hidden=args.hidden, embed=args.embed)
    data = CaptionBatches(feats, pairs, args.batch_size, seed=0)
    steps = args.steps
    batches = []
    for epoch in range(100):
        for batch in data.batches(epoch):
            batches.append(batch)
            if len(batches) == steps + 10:
                break
        if len(batches) == steps + 10:
            break
    tokens = sum(int((b[2] != PAD_ID).sum()) for b in batches[10:])

    results = {}
    for round_ in range(args.rounds):
        # Bare loop: pre-built batches, AdamW, clipping, nothing else.
        torch.manual_seed(0)
        model = ShowAndTell(config).train()
        optimizer = torch.optim.AdamW(model.parameters(), 2e-3)
        for batch in batches[:10]:
            decoder_step(model, optimizer, batch)
        start = time.perf_counter()
        for batch in batches[10:]:
            decoder_step(model, optimizer, batch)
        bare = tokens / (time.perf_counter() - start)

        with tempfile.TemporaryDirectory() as tmp:
            torch.manual_seed(0)
            model = ShowAndTell(config)
            train_config = TrainConfig(out_dir=tmp, batch_size=args.batch_size,
                                       max_steps=steps + 10, eval_every=10**9, device="cpu",
                                       quiet=True, seed=0, clip=5.0, lr=2e-3, log_every=10**9,
                                       select_metric="loss")
            task = CaptionTask(tokenizer)
            val = validation_data(feats[:4], [["a"]] * 4, ["x"] * 4, tokenizer)
            trainer = Trainer(model, task, data, val, train_config, {"task": "caption"})
            # Time only the steps after the first 10, as for the bare loop: from the 11th
            # loss call to the last one, counting the tokens of the steps in between.
            stamps, counts = [], []
            original = task.loss

            def timed_loss(model, batch, carry, stamps=stamps, counts=counts,
                           original=original, task=task):
                stamps.append(time.perf_counter())
                counts.append(task.count_targets(batch))
                return original(model, batch, carry)

            task.loss = timed_loss
            trainer.fit()
            ours = sum(counts[10:-1]) / (stamps[-1] - stamps[10])
        results.setdefault("bare", []).append(bare)
        results.setdefault("trainer", []).append(ours)
        print(f"round {round_ + 1}: bare loop {bare:,.0f} tok/s, seqgen trainer {ours:,.0f} "
              f"tok/s, ratio {ours / bare:.3f}")
    bare = sorted(results["bare"])[len(results["bare"]) // 2]
    ours = sorted(results["trainer"])[len(results["trainer"]) // 2]
    print(f"median: bare {bare:,.0f} tok/s, trainer {ours:,.0f} tok/s, ratio {ours / bare:.3f} "
          "(target >= 0.9)")


def part_quality(args) -> None:
    """Flickr8k-mini, efficientnet-lite0, the train-caption defaults, a time budget; then
    BLEU of beam-3 (and greedy) captions of the validation images."""
    from seqgen.cli import app

    out = Path(args.out)
    command = ["train-caption", str(FLICKR / "dataset_flickr8k.json"), "--images",
               str(FLICKR / "images"), "--encoder", "efficientnet-lite0", "--time-budget",
               args.budget, "--out", str(out), "--overwrite", "--device", args.device,
               "--attention", args.attention, *(["--start", args.start] if args.start else [])]
    print("seqgen " + " ".join(command))
    start = time.perf_counter()
    try:
        app(command, standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise
    print(f"training took {time.perf_counter() - start:.0f}s wall")
    from seqgen.tasks.caption import evaluate_captions

    for beam in (3, 1):
        m = evaluate_captions(out / "best.pt", FLICKR / "dataset_flickr8k.json",
                              FLICKR / "images", split="val", beam=beam, device=args.device)
        print(f"beam {beam}: BLEU-1 {m['bleu1']:.1f}  BLEU-2 {m['bleu2']:.1f}  BLEU-3 "
              f"{m['bleu3']:.1f}  BLEU-4 {m['bleu4']:.1f}  on {m['images']} val images; "
              f"{m['distinct']:.0%} distinct captions, {m['complete']:.0%} complete sentences")
        if beam == 3:
            for ex in m["examples"][:3]:
                print(f"  {ex['image']}: {ex['caption']}  (ref: {ex['references'][0]})")
    print("floor to beat: BLEU-1 ~49 / BLEU-4 ~11 (bare pooled-lite0 1x256 LSTM, greedy, 4 min)")


def part_speed(args) -> None:
    """Images per second for `caption` on a folder of photos: batched vs one at a time, with
    the checkpoint of the quality part (--out)."""
    from seqgen.tasks.caption import caption_files, load_captioner

    model, tokenizer, spec, _ = load_captioner(Path(args.out) / "best.pt", args.device)
    paths = sorted((FLICKR / "images").glob("*.jpg"))[:args.images]
    timings = {}
    for label, batch in (("batched (16)", 16), ("one at a time", 1)):
        start = time.perf_counter()
        results, _ = caption_files(model, tokenizer, spec, paths, beam=3, batch_size=batch)
        timings[label] = len(results) / (time.perf_counter() - start)
        print(f"{label}: {timings[label]:.1f} images/s ({len(results)} photos, beam 3, "
              f"attention {model.config.attention})")
    print(f"batched / one at a time: {timings['batched (16)'] / timings['one at a time']:.2f}x")


def part_photos(args) -> None:
    """Photos unlike Flickr's (tests/photos: scikit-image's samples; ../shared/data/photos):
    is each caption a complete sentence, does it name what a fitting caption would, and does
    the novelty check call the photo unfamiliar? With the checkpoint of the quality part."""
    import json

    from seqgen.metrics import sentence_flaws
    from seqgen.tasks.caption import caption_files, load_captioner

    listed = json.loads((ROOT / "tests" / "photos" / "photos.json").read_text())
    photos = [(ROOT / "tests" / "photos" / name, info["words"])
              for name, info in listed["photos"].items()]
    photos += [(FLICKR.parent / "photos" / name, words) for name, words in listed["shared"].items()]
    model, tokenizer, spec, _ = load_captioner(Path(args.out) / "best.pt", args.device)
    results, _ = caption_files(model, tokenizer, spec, [p for p, _ in photos], beam=3)
    complete = named = unfamiliar = 0
    for (path, words), r in zip(photos, results):
        caption = r.captions[0][0]
        flaws = sentence_flaws(caption, r.ended[0])
        hit = any(w in caption.split() for w in words)
        far = r.novelty or {}
        complete += not flaws
        named += hit
        unfamiliar += bool(far.get("unfamiliar"))
        print(f"  {path.name:<14} {caption}" + (f"  [{'; '.join(flaws)}]" if flaws else "")
              + ("  (names it)" if hit else "")
              + (f"  distance {far['distance']:.3f}{' unfamiliar' if far['unfamiliar'] else ''}"
                 if far else ""))
    n = len(results)
    print(f"complete sentences {complete}/{n}, naming the main object {named}/{n}, "
          f"called unfamiliar {unfamiliar}/{n}"
          + (f" (the farthest validation image: {model.novelty.threshold:.3f})"
             if model.novelty else ""))


def part_shapes(args) -> None:
    """Small CNN captioner on shapes scenes drawn on the fly; exact match on unseen scenes."""
    from seqgen.demo import (
        held_out_scenes,
        shapes_caption_config,
        shapes_exact_match,
        train_shapes_captioner,
        write_scene_images,
    )

    out = Path(args.out)
    unseen_scenes = held_out_scenes(args.unseen, args.seed + 2)
    unseen = write_scene_images(out / "unseen", unseen_scenes)
    config = shapes_caption_config(out / "caption", parse_duration(args.budget), args.device,
                                   args.seed, args.quiet)
    if args.lr:
        config = config.replace(lr=args.lr)
    if args.scene_batch:
        config = config.replace(batch_size=args.scene_batch)
    start = time.perf_counter()
    train_shapes_captioner(out / "caption", config, unseen_scenes, attention=args.attention)
    print(f"training took {time.perf_counter() - start:.0f}s wall")
    exact, rows = shapes_exact_match(out / "caption" / "best.pt", unseen, args.device)
    for image, caption, truth in [r for r in rows if r[1] != r[2]][:5]:
        print(f"  miss {Path(image).name}: {caption!r} (truth {truth!r})")
    print(f"shapes exact match on {len(rows)} unseen scenes: {exact:.1%} (target >= 95%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["cache", "throughput", "quality", "shapes", "speed",
                                           "photos"],
                        required=True)
    parser.add_argument("--images", type=int, default=100,
                        help="cache: images in the epoch; speed: photos captioned")
    parser.add_argument("--encoder", default="efficientnet-lite0", help="cache: encoder")
    parser.add_argument("--steps", type=int, default=200, help="throughput: timed steps")
    parser.add_argument("--rounds", type=int, default=3, help="throughput: repetitions")
    parser.add_argument("--threads", type=int, default=1, help="throughput: torch threads")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--embed", type=int, default=256)
    parser.add_argument("--budget", default=None,
                        help="quality: training time (default 15m); shapes: (default 40m)")
    parser.add_argument("--unseen", type=int, default=200, help="shapes: unseen scenes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default=None, help="checkpoint folder")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--lr", type=float, default=None, help="shapes: learning rate")
    parser.add_argument("--scene-batch", type=int, default=None,
                        help="shapes: scenes per batch (default 64)")
    parser.add_argument("--attention", default="soft", choices=["none", "soft"],
                        help="shapes, quality: the decoder")
    parser.add_argument("--start", default=None, choices=["image", "zero"],
                        help="quality: the decoder's first state (default: train-caption's)")
    args = parser.parse_args()
    if args.part == "quality":
        args.budget = args.budget or "15m"
        args.out = args.out or "bench-out/caption-quality"
    elif args.part == "shapes":
        args.budget = args.budget or "40m"
        args.out = args.out or "bench-out/caption-shapes"
    elif args.part in ("speed", "photos"):
        args.out = args.out or "bench-out/caption-quality"
    {"cache": part_cache, "throughput": part_throughput, "quality": part_quality,
     "shapes": part_shapes, "speed": part_speed, "photos": part_photos}[args.part](args)


if __name__ == "__main__":
    main()
