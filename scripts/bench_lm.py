"""Language-model benchmarks: trainer overhead, sampling speed, quality, and scale.

    python scripts/bench_lm.py --part throughput     # seqgen trainer vs a bare PyTorch loop
    python scripts/bench_lm.py --part sampling       # carried-state sampling vs bare / re-feeding
    python scripts/bench_lm.py --part shakespeare    # char level, 10-minute budget, defaults
    python scripts/bench_lm.py --part ptb            # word level Penn Treebank, 20 minutes
    python scripts/bench_lm.py --part scale          # tokenise + train on a generated 1 GB file

Every part prints its figures; ratios measured in one process are the stable numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench-out"
SHAKESPEARE = DATA / "tinyshakespeare" / "input.txt"


def seqgen(*args: str) -> None:
    """Run the CLI as a user would."""
    cmd = [sys.executable, "-m", "seqgen", *args]
    print("$ seqgen " + " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def best_metrics(out_dir: Path) -> dict:
    data = torch.load(out_dir / "best.pt", map_location="cpu", weights_only=True)
    return {"step": data["trainer_state"]["step"], **data["trainer_state"]["best_metrics"]}


# --------------------------------------------------------------------------- throughput
def bench_throughput(steps: int, rounds: int = 5) -> None:
    """Tokens/s of the default model through the seqgen trainer and through a bare loop,
    alternating, ``rounds`` times: this machine's speed drifts by ±15% within a minute, so
    the median of the per-round ratios is the figure."""
    from seqgen.config import LMConfig, TrainConfig
    from seqgen.data.text import StreamBatches, tokenize_files
    from seqgen.models.lm import RNNLanguageModel
    from seqgen.progress import ProgressReporter
    from seqgen.tasks.lm import LMTask
    from seqgen.training import Trainer

    corpus = tokenize_files([SHAKESPEARE], {"level": "char"})
    batch, bptt, warm = 32, 64, 5
    data = StreamBatches(corpus.tokens, batch, bptt)
    config = LMConfig(vocab_size=corpus.tokenizer.vocab_size)  # the train-lm defaults
    tokens = steps * batch * bptt

    def bare_loop() -> float:
        torch.manual_seed(0)
        model = RNNLanguageModel(config)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
        state = None
        start = 0.0
        for i, (x, y) in enumerate(data.batches()):
            if i == warm:
                start = time.perf_counter()
            if i == warm + steps:
                break
            logits, state = model(x, state)
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            state = tuple(s.detach() for s in state)
        return tokens / (time.perf_counter() - start)

    def seqgen_trainer() -> float:
        torch.manual_seed(0)
        model = RNNLanguageModel(config)
        out = OUT / "throughput"
        for name in ("best.pt", "last.pt", "metrics.jsonl"):
            (out / name).unlink(missing_ok=True)
        task = LMTask(corpus.tokenizer)
        stamps: list[float] = []
        loss = task.loss

        def timed(model, batch, carry):  # the time between the starts of two steps
            stamps.append(time.perf_counter())
            return loss(model, batch, carry)

        task.loss = timed
        cfg = TrainConfig(out_dir=str(out), batch_size=batch, max_steps=warm + steps + 1,
                          eval_every=None, lr=3e-3, device="cpu", quiet=True)
        Trainer(model, task, data, corpus.tokens[:2000], cfg, {"task": "lm"},
                ProgressReporter(quiet=True)).fit()
        return tokens / (stamps[warm + steps] - stamps[warm])

    ratios = []
    for r in range(rounds):
        bare, ours = bare_loop(), seqgen_trainer()
        ratios.append(ours / bare)
        print(f"round {r + 1}: bare loop {bare:,.0f} tok/s, seqgen trainer {ours:,.0f} tok/s, "
              f"ratio {ours / bare:.3f}", flush=True)
    ratios.sort()
    print(f"throughput ({torch.get_num_threads()} threads, {steps} steps a round): median "
          f"ratio {ratios[len(ratios) // 2]:.3f} (range {ratios[0]:.3f}–{ratios[-1]:.3f}; "
          "target >= 1.0)")


# ----------------------------------------------------------------------------- sampling
def bench_sampling(checkpoint: Path | None, length: int) -> None:
    from seqgen.config import LMConfig
    from seqgen.models.lm import RNNLanguageModel
    from seqgen.tasks.lm import load_lm, sample_tokens
    from seqgen.tokenizers import CharTokenizer

    if checkpoint and checkpoint.exists():
        model, tokenizer, _ = load_lm(checkpoint, "cpu")
    else:
        tokenizer = CharTokenizer.from_chars(SHAKESPEARE.read_text(encoding="utf-8"))
        model = RNNLanguageModel(LMConfig(vocab_size=tokenizer.vocab_size)).eval()
    prime = "ROMEO:"

    def ours() -> float:
        start = time.perf_counter()
        for _ in sample_tokens(model, tokenizer, prime, length, 0.8, seed=0):
            pass
        return length / (time.perf_counter() - start)

    @torch.no_grad()
    def bare() -> float:
        start = time.perf_counter()
        g = torch.Generator().manual_seed(0)
        ids = torch.tensor([tokenizer.encode(prime)])
        logits, state = model(ids)
        logits = logits[:, -1]
        for _ in range(length):
            token = torch.multinomial((logits / 0.8).softmax(-1), 1, generator=g)
            out, state = model(token, state)
            logits = out[:, -1]
        return length / (time.perf_counter() - start)

    @torch.no_grad()
    def refeed(n: int) -> float:
        start = time.perf_counter()
        g = torch.Generator().manual_seed(0)
        ids = torch.tensor([tokenizer.encode(prime)])
        for _ in range(n):
            logits, _ = model(ids)
            token = torch.multinomial((logits[:, -1] / 0.8).softmax(-1), 1, generator=g)
            ids = torch.cat([ids, token], dim=1)
        return n / (time.perf_counter() - start)

    with torch.inference_mode():
        ours()  # warm-up
        a, b = ours(), bare()
        c = refeed(length)
    print(f"sampling {length} tokens: seqgen {a:,.0f} tok/s, bare incremental loop {b:,.0f} tok/s "
          f"(ratio {a / b:.3f}, target >= 0.9), re-feeding the prefix {c:,.0f} tok/s "
          f"(carried state is {a / c:.1f}x faster)")


# ------------------------------------------------------------------------------ quality
def bench_shakespeare(budget: str) -> None:
    out = OUT / "shakespeare"
    seqgen("train-lm", str(SHAKESPEARE), "--time-budget", budget, "--out", str(out),
           "--overwrite")
    m = best_metrics(out)
    print(f"shakespeare (char, defaults, {budget}): best validation loss {m['loss']:.4f} "
          f"nats/char ({m['bpc']:.3f} bits/char) at step {m['step']} (target <= 1.55)")
    seqgen("sample", "--checkpoint", str(out / "best.pt"), "--temp", "0.8", "--prime",
           "ROMEO:", "--length", "300", "--seed", "1")


def bench_ptb(budget: str) -> None:
    out = OUT / "ptb"
    ptb = DATA / "ptb"
    seqgen("train-lm", str(ptb / "ptb.train.txt"), "--val-file", str(ptb / "ptb.valid.txt"),
           "--level", "word", "--pretokenized", "--time-budget", budget, "--out", str(out),
           "--overwrite", "--embed", "512", "--hidden", "512", "--tie-weights",
           "--dropout", "0.4", "--bptt", "35", "--batch-size", "32", "--lr", "3e-3")
    m = best_metrics(out)
    result = subprocess.run(
        [sys.executable, "-m", "seqgen", "evaluate-lm", str(ptb / "ptb.test.txt"),
         "--checkpoint", str(out / "best.pt"), "--json"],
        check=True, capture_output=True, text=True)
    test = json.loads(result.stdout)
    print(f"ptb (word, {budget}): validation perplexity {m['ppl']:.1f}, "
          f"test perplexity {test['ppl']:.1f}")


# -------------------------------------------------------------------------------- scale
def make_big_file(path: Path, size: int) -> None:
    if path.exists() and path.stat().st_size >= size:
        return
    text = SHAKESPEARE.read_text(encoding="utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    with open(path, "w", encoding="utf-8") as handle:
        i = 0
        while written < size:
            piece = text if i % 2 == 0 else text.upper()  # vary the content a little
            handle.write(piece)
            written += len(piece.encode("utf-8"))
            i += 1


def scale_child(path: str, level: str, steps: int) -> None:
    """Runs in a fresh process so its peak RSS is its own."""
    from seqgen.config import LMConfig
    from seqgen.data.text import StreamBatches, resolve_text_files, tokenize_files
    from seqgen.models.lm import RNNLanguageModel

    cache = OUT / "scale-cache"
    start = time.perf_counter()
    corpus = tokenize_files(resolve_text_files([path]), {"level": level}, cache_dir=cache)
    seconds = time.perf_counter() - start
    rss_tok = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    data = StreamBatches(corpus.tokens, 32, 128)
    model = RNNLanguageModel(LMConfig(vocab_size=corpus.tokenizer.vocab_size))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    state = None
    for i in range(steps):
        x, y = data.batch(i * (len(data) // steps))  # spread over the whole file
        logits, state = model(x, None)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    size_mb = os.path.getsize(path) / 1e6
    print(json.dumps({"level": level, "mb": size_mb, "seconds": seconds,
                      "mb_per_s": size_mb / seconds, "tokens": len(corpus.tokens),
                      "cached": corpus.cached, "peak_rss_mb_after_tokenising": rss_tok,
                      "peak_rss_mb": rss, "loss": float(loss)}))


def bench_scale(size_gb: float, levels: list[str]) -> None:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"seqgen-bench-{size_gb:g}gb.txt"
    make_big_file(path, int(size_gb * 1e9))
    import shutil

    for level in levels:
        shutil.rmtree(OUT / "scale-cache", ignore_errors=True)
        for run in ("first run", "cached run"):
            result = subprocess.run(
                [sys.executable, __file__, "--scale-child", str(path), "--level", level],
                check=True, capture_output=True, text=True)
            r = json.loads(result.stdout.strip().splitlines()[-1])
            print(f"scale ({level}, {r['mb']:.0f} MB, {run}): {r['seconds']:.1f}s "
                  f"({r['mb_per_s']:.1f} MB/s), {r['tokens']:,} tokens, peak RAM "
                  f"{r['peak_rss_mb_after_tokenising']:.0f} MB after tokenising, "
                  f"{r['peak_rss_mb']:.0f} MB after 10 training steps of the default model "
                  f"(target < 2048), loss {r['loss']:.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", action="append",
                        choices=["throughput", "sampling", "shakespeare", "ptb", "scale"])
    parser.add_argument("--steps", type=int, default=30, help="throughput: timed steps")
    parser.add_argument("--rounds", type=int, default=5, help="throughput: rounds")
    parser.add_argument("--length", type=int, default=500, help="sampling: tokens")
    parser.add_argument("--shakespeare-budget", default="10m")
    parser.add_argument("--ptb-budget", default="20m")
    parser.add_argument("--size-gb", type=float, default=1.0)
    parser.add_argument("--levels", default="char", help="scale: comma-separated levels")
    parser.add_argument("--scale-child", help=argparse.SUPPRESS)
    parser.add_argument("--level", default="char", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scale_child:
        scale_child(args.scale_child, args.level, 10)
        return
    OUT.mkdir(exist_ok=True)
    parts = args.part or ["throughput", "sampling", "shakespeare", "ptb", "scale"]
    for part in parts:
        if part == "throughput":
            bench_throughput(args.steps, args.rounds)
        elif part == "sampling":
            bench_sampling(OUT / "shakespeare" / "best.pt", args.length)
        elif part == "shakespeare":
            bench_shakespeare(args.shakespeare_budget)
        elif part == "ptb":
            bench_ptb(args.ptb_budget)
        elif part == "scale":
            bench_scale(args.size_gb, args.levels.split(","))


if __name__ == "__main__":
    main()
