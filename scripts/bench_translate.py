"""Translation benchmarks: trainer overhead, batched beam search, Tatoeba quality, shapes world.

    python scripts/bench_translate.py --part throughput   # seqgen trainer vs a bare PyTorch loop
    python scripts/bench_translate.py --part speed        # beam 5: batched vs one at a time
    python scripts/bench_translate.py --part quality --time-budget 30m   # defaults, dev BLEU
    python scripts/bench_translate.py --part shapes       # shapes world, unseen scenes

Every part prints its figures; ratios measured in one process are the stable numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench-out" / "translate"
TRAIN = DATA / "tatoeba-eng-spa" / "train.tsv"
DEV = DATA / "tatoeba-eng-spa" / "dev.tsv"


def seqgen(*args: str, capture: bool = False) -> str:
    """Run the CLI as a user would."""
    cmd = [sys.executable, "-m", "seqgen", *args]
    print("$ seqgen " + " ".join(args), flush=True)
    done = subprocess.run(cmd, check=True, text=True,
                          stdout=subprocess.PIPE if capture else None)
    return done.stdout if capture else ""


def tatoeba_data(batch_size: int):
    from seqgen.tasks.translate import PairOptions, prepare_translate_data, read_pairs

    return prepare_translate_data(read_pairs(TRAIN).pairs, read_pairs(DEV).pairs, PairOptions(),
                                  batch_size, seed=0, val_bleu_sentences=50)


def default_model(data):
    from seqgen.models.seq2seq import Seq2Seq, Seq2SeqConfig

    torch.manual_seed(0)
    return Seq2Seq(Seq2SeqConfig(src_vocab=data.src_tokenizer.vocab_size,
                                 tgt_vocab=data.tgt_tokenizer.vocab_size))


# --------------------------------------------------------------------------- throughput
def bench_throughput(steps: int, batch: int = 64) -> None:
    from seqgen.config import TrainConfig
    from seqgen.progress import ProgressReporter
    from seqgen.tasks.supervised import masked_token_loss
    from seqgen.tasks.translate import TranslateTask
    from seqgen.training import Trainer

    data = tatoeba_data(batch)
    window = 10
    print(f"training pairs {len(data.train.sources):,}, vocab {data.src_tokenizer.vocab_size} → "
          f"{data.tgt_tokenizer.vocab_size}, batch {batch}, {steps} timed steps, "
          f"{torch.get_num_threads()} threads")

    def bare_loop() -> float:
        model = default_model(data).train()
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
        rates, tokens, start = [], 0, time.perf_counter()
        for i, (src, lens, tgt) in enumerate(data.train.batches(0)):
            if i == window + steps:
                break
            n = int((tgt[:, 1:] != 0).sum())
            logits = model(src, lens, tgt[:, :-1])
            loss = masked_token_loss(logits, tgt[:, 1:]) / n
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            tokens += n
            if (i + 1) % window == 0:
                now = time.perf_counter()
                rates.append(tokens / (now - start))
                tokens, start = 0, now
        return statistics.median(rates[1:])  # the first window is warm-up

    def seqgen_trainer() -> float:
        model = default_model(data)
        out = OUT / "throughput"
        for name in ("best.pt", "last.pt", "metrics.jsonl"):
            (out / name).unlink(missing_ok=True)
        cfg = TrainConfig(out_dir=str(out), batch_size=batch, max_steps=window + steps,
                          eval_every=10**9, log_every=window, lr=2e-3, weight_decay=0.01,
                          device="cpu", quiet=True)
        task = TranslateTask(data.src_tokenizer, data.tgt_tokenizer)
        Trainer(model, task, data.train, data.val, cfg, {"task": "translate"},
                ProgressReporter(quiet=True)).fit()
        rates = [json.loads(line)["tokens_per_s"] for line in
                 (out / "metrics.jsonl").read_text().splitlines() if '"train"' in line]
        return statistics.median(rates[1:])

    bare = bare_loop()
    ours = seqgen_trainer()
    bare = (bare + bare_loop()) / 2
    print(f"throughput: bare loop {bare:,.0f} target tok/s, seqgen trainer {ours:,.0f} "
          f"target tok/s, ratio {ours / bare:.3f} (target >= 0.9)")


# -------------------------------------------------------------------------------- speed
def bench_speed(checkpoint: Path, n_sentences: int, beam: int) -> None:
    from seqgen.metrics import group_references
    from seqgen.tasks.translate import Translator, load_translator, read_pairs

    if checkpoint.exists():
        translator, _ = load_translator(checkpoint, "cpu")
        print(f"model: {checkpoint}")
    else:
        data = tatoeba_data(64)
        translator = Translator(default_model(data).eval(), data.src_tokenizer,
                                data.tgt_tokenizer)
        print(f"model: untrained default model ({checkpoint} not found; train one for "
              "realistic output lengths)")
    sources, _ = group_references(read_pairs(DEV).pairs)
    sources = sources[:n_sentences]

    def timed(batch_size: int):
        start = time.perf_counter()
        if batch_size == 1:
            out = [translator.translate([s], beam, 0.6, batch_size=1)[0][0].text for s in sources]
        else:
            out = [r[0].text for r in translator.translate(sources, beam, 0.6,
                                                          batch_size=batch_size)]
        return time.perf_counter() - start, out

    translator.translate(sources[:8], beam)  # warm-up
    batched_s, batched = timed(64)
    single_s, single = timed(1)
    same = sum(a == b for a, b in zip(batched, single)) / len(sources)
    print(f"beam {beam} on {len(sources)} dev sentences: one at a time {single_s:.1f}s "
          f"({len(sources) / single_s:.1f} sent/s), batched (64) {batched_s:.1f}s "
          f"({len(sources) / batched_s:.1f} sent/s), speed-up {single_s / batched_s:.1f}x "
          f"(target >= 5x); identical outputs {same:.1%}")


# ------------------------------------------------------------------------------ quality
def bench_quality(time_budget: str, extra: list[str]) -> None:
    out = OUT / "quality"
    seqgen("train-translate", str(TRAIN), "--val-file", str(DEV), "--time-budget", time_budget,
           "--out", str(out), "--overwrite", *extra)
    for beam in (5, 1):
        metrics = json.loads(seqgen("evaluate-translate", str(DEV), "-c", str(out / "best.pt"),
                                    "--beam", str(beam), "--json", capture=True))
        print(f"dev ({metrics['sentences']} sources, {metrics['references']} references), "
              f"beam {beam}: BLEU {metrics['bleu']:.2f}, lowercased BLEU "
              f"{metrics['bleu_lowercase']:.2f}, chrF {metrics['chrf']:.2f}  (floor to beat: "
              "BLEU ~21, bare bi-GRU 256 + Luong, greedy, 20 min)")
        if beam == 5:
            for ex in metrics["examples"]:
                print(f"  {ex['source']}  →  {ex['output']}   (ref: {ex['reference']})")


# ------------------------------------------------------------------------------- shapes
def bench_shapes(budget: float, seed: int) -> None:
    from rich.console import Console

    from seqgen.demo import demo_translation

    rate, _ = demo_translation(OUT / "shapes", budget, "cpu", seed, Console(), Console(stderr=True))
    print(f"shapes world English→Spanish: exact match on unseen scenes {rate:.1%} after "
          f"{budget:.0f}s (target >= 95%)")


def main() -> None:
    from seqgen.config import parse_duration

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["throughput", "speed", "quality", "shapes", "all"],
                        default="all")
    parser.add_argument("--steps", type=int, default=60, help="throughput: timed steps")
    parser.add_argument("--checkpoint", type=Path, default=OUT / "quality" / "best.pt",
                        help="speed: model to decode with (default: the quality run's)")
    parser.add_argument("--sentences", type=int, default=300,
                        help="speed: dev sentences translated")
    parser.add_argument("--beam", type=int, default=5, help="speed: beam size")
    parser.add_argument("--time-budget", default="30m", help="quality: training budget")
    parser.add_argument("--shapes-budget", default="60s", help="shapes: training budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("train_options", nargs="*",
                        help="quality: extra train-translate options, after --")
    args = parser.parse_args()
    parts = ["throughput", "speed", "quality", "shapes"] if args.part == "all" else [args.part]
    if "quality" in parts and "speed" in parts:
        parts = ["throughput", "quality", "speed", "shapes"]  # speed uses the quality model
    for part in parts:
        print(f"== {part}", flush=True)
        if part == "throughput":
            bench_throughput(args.steps)
        elif part == "speed":
            bench_speed(args.checkpoint, args.sentences, args.beam)
        elif part == "quality":
            bench_quality(args.time_budget, args.train_options)
        else:
            bench_shapes(parse_duration(args.shapes_budget), args.seed)


if __name__ == "__main__":
    main()
