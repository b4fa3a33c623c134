"""Language-model benchmarks: trainer overhead, sampling speed, quality, and scale.

    python scripts/bench_lm.py --part throughput     # seqgen trainer vs a bare PyTorch loop
    python scripts/bench_lm.py --part sampling       # carried-state sampling vs bare / re-feeding
    python scripts/bench_lm.py --part profile        # where a training step's time goes
    python scripts/bench_lm.py --part shakespeare    # defaults vs a bare loop, 10 minutes each
    python scripts/bench_lm.py --part sweep          # one change at a time, 2 minutes each
    python scripts/bench_lm.py --part ptb            # word level Penn Treebank, 20 minutes
    python scripts/bench_lm.py --part scale          # tokenise + train on a generated 1 GB file

Every part prints its figures; ratios measured in one process are the stable numbers.
"""

from __future__ import annotations

import argparse
import json
import math
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


# --------------------------------------------------------------------------- throughput
def bench_throughput(steps: int, rounds: int = 5) -> None:
    """Tokens/s of the default model through the seqgen trainer and through a bare loop,
    alternating, ``rounds`` times: this machine's speed drifts by ±15% within a minute, so
    the median of the per-round ratios is the figure."""
    from seqgen.config import LM_BPTT, LM_TRAINING, LMConfig, TrainConfig
    from seqgen.data.text import StreamBatches, tokenize_files
    from seqgen.models.lm import RNNLanguageModel
    from seqgen.progress import ProgressReporter
    from seqgen.tasks.lm import LMTask
    from seqgen.training import Trainer

    corpus = tokenize_files([SHAKESPEARE], {"level": "char"})
    batch, bptt, warm = LM_TRAINING.batch_size, LM_BPTT, 5
    data = StreamBatches(corpus.tokens, batch, bptt)
    config = LMConfig(vocab_size=corpus.tokenizer.vocab_size)  # the train-lm defaults
    tokens = steps * batch * bptt

    def bare_loop() -> float:
        torch.manual_seed(0)
        model = RNNLanguageModel(config)
        opt = torch.optim.AdamW(model.parameters(), lr=LM_TRAINING.lr, weight_decay=0.0)
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
                          eval_every=10**9, lr=LM_TRAINING.lr, device="cpu", quiet=True)
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


# ------------------------------------------------------------------------------ profile
def bench_profile(steps: int) -> None:
    """One training step of the default model, split into forward, backward and optimiser,
    in float32 and (on a CPU that has it) bf16; then the operators that take the time."""
    from torch.profiler import ProfilerActivity, profile

    from seqgen.config import LM_BPTT, LM_TRAINING, LMConfig
    from seqgen.data.text import StreamBatches, tokenize_files
    from seqgen.models.lm import RNNLanguageModel
    from seqgen.precision import cpu_has_bf16

    corpus = tokenize_files([SHAKESPEARE], {"level": "char"})
    batch = LM_TRAINING.batch_size
    data = StreamBatches(corpus.tokens, batch, LM_BPTT)
    torch.manual_seed(0)
    model = RNNLanguageModel(LMConfig(vocab_size=corpus.tokenizer.vocab_size))
    opt = torch.optim.AdamW(model.parameters(), lr=LM_TRAINING.lr)

    def step(i: int, dtype: torch.dtype | None) -> tuple[float, float, float]:
        x, y = data.batch(i)
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
            logits, _ = model(x)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        forward = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        backward = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return forward - start, backward - forward, time.perf_counter() - backward

    dtypes = {"fp32": None, **({"bf16": torch.bfloat16} if cpu_has_bf16() else {})}
    for name, dtype in dtypes.items():
        for i in range(3):
            step(i, dtype)
        parts = [sum(t) / steps for t in zip(*(step(i, dtype) for i in range(steps)))]
        total = sum(parts)
        print(f"profile {name}: forward {parts[0] * 1e3:.0f} ms, backward {parts[1] * 1e3:.0f} ms, "
              f"optimiser {parts[2] * 1e3:.0f} ms a step: {batch * LM_BPTT / total:,.0f} tokens/s",
              flush=True)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(3):
                step(i, dtype)
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        spent = sum(e.self_cpu_time_total for e in events)
        print("  " + ", ".join(f"{e.key} {e.self_cpu_time_total / spent:.0%}"
                               for e in events[:6]), flush=True)


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
def seqgen_json(*args: str) -> dict:
    result = subprocess.run([sys.executable, "-m", "seqgen", *args], check=True,
                            capture_output=True, text=True)
    return json.loads(result.stdout)


def split_text(source: Path, name: str, val_share: float = 0.05) -> tuple[Path, Path]:
    """The first 95% of a text to train on, the last 5% to validate: files a user would have."""
    text = source.read_text(encoding="utf-8")
    cut = len(text) - int(len(text) * val_share)
    train, val = OUT / f"{name}-train.txt", OUT / f"{name}-val.txt"
    train.write_text(text[:cut], encoding="utf-8")
    val.write_text(text[cut:], encoding="utf-8")
    return train, val


def run_seqgen_lm(out: Path, train: Path, val: Path, budget: str, *options: str,
                  test: Path | None = None) -> dict:
    """train-lm with a validation file and a time budget, then evaluate-lm on the
    validation (and test) text as a user would; steps and tokens/s from metrics.jsonl."""
    seqgen("train-lm", str(train), "--val-file", str(val), "--time-budget", budget, "--out",
           str(out), "--overwrite", "--quiet", *options)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    rates = sorted(r["tokens_per_s"] for r in rows if r["kind"] == "train")
    scored = seqgen_json("evaluate-lm", str(val), "-c", str(out / "best.pt"), "--json")
    figures = {"steps": max(r["step"] for r in rows),
               "tok_s": rates[len(rates) // 2] if rates else 0.0,
               "val_loss": scored["loss"], "val_ppl": scored["ppl"],
               "validations": sum(r["kind"] == "val" for r in rows)}
    if test is not None:
        tested = seqgen_json("evaluate-lm", str(test), "-c", str(out / "best.pt"), "--json")
        figures.update(test_loss=tested["loss"], test_ppl=tested["ppl"])
    return figures


def bare_loop_lm(train: Path, val: Path, seconds: float, level: str = "char", embed: int = 128,
                 hidden: int = 512, layers: int = 2, dropout: float = 0.1, batch: int = 32,
                 bptt: int = 128, lr: float = 3e-3, tie: bool = False,
                 test: Path | None = None) -> dict:
    """The simplest loop a PyTorch user would write: an embedding, an LSTM and a linear
    layer, carried state, AdamW with a linear decay over the time budget, clipping at 1, no
    validation until the end; then each text scored as one carried stream."""
    from torch import nn

    def words(text: str) -> list[str]:
        return list(text) if level == "char" else text.replace("\n", " <eos> ").split()

    train_words = words(train.read_text(encoding="utf-8"))
    vocab = {w: i for i, w in enumerate(sorted(set(train_words)))}
    unk = vocab.setdefault("<unk>", len(vocab))

    def ids(items: list[str]) -> torch.Tensor:
        return torch.tensor([vocab.get(w, unk) for w in items])

    data = ids(train_words)
    n = (len(data) - 1) // batch
    x_all, y_all = data[:n * batch].view(batch, n), data[1:n * batch + 1].view(batch, n)

    class LM(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(len(vocab), embed)
            self.rnn = nn.LSTM(embed, hidden, layers, dropout=dropout, batch_first=True)
            self.drop = nn.Dropout(dropout)
            self.out = nn.Linear(hidden, len(vocab))
            if tie:
                self.out.weight = self.emb.weight

        def forward(self, x, state=None):
            h, state = self.rnn(self.drop(self.emb(x)), state)
            return self.out(self.drop(h)), state

    torch.manual_seed(0)
    model = LM()
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    state, steps, start, i = None, 0, time.perf_counter(), 0
    while (elapsed := time.perf_counter() - start) < seconds:
        for group in opt.param_groups:
            group["lr"] = lr * (1 - elapsed / seconds)
        if i + 1 >= n:
            i, state = 0, None
        x, y = x_all[:, i:i + bptt], y_all[:, i:i + bptt]
        logits, state = model(x, state)
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        state = tuple(s.detach() for s in state)
        i, steps = i + bptt, steps + 1
    train_seconds = time.perf_counter() - start

    @torch.no_grad()
    def score(path: Path) -> float:
        model.eval()
        tokens = ids(words(path.read_text(encoding="utf-8"))).unsqueeze(0)
        total, state = 0.0, None
        for k in range(0, tokens.size(1) - 1, 256):
            logits, state = model(tokens[:, k:k + 256], state)
            target = tokens[:, k + 1:k + 257]
            total += float(F.cross_entropy(logits[:, :target.size(1)].flatten(0, 1),
                                           target.flatten(), reduction="sum"))
        return total / (tokens.size(1) - 1)

    figures = {"steps": steps, "tok_s": steps * batch * bptt / train_seconds,
               "val_loss": score(val)}
    if test is not None:
        figures["test_loss"] = score(test)
    return figures


def show(name: str, figures: dict) -> None:
    parts = [f"{figures['steps']:,} steps", f"{figures['tok_s']:,.0f} tok/s",
             f"validation {figures['val_loss']:.4f} nats/token"]
    if "test_loss" in figures:
        parts.append(f"test perplexity {math.exp(figures['test_loss']):.1f}")
    if "validations" in figures:
        parts.append(f"{figures['validations']} validations")
    print(f"{name}: " + ", ".join(parts), flush=True)


def bench_shakespeare(budget: str) -> None:
    """seqgen's defaults and the bare loop, on the same split, budget and machine."""
    train, val = split_text(SHAKESPEARE, "ts")
    seconds = parse_seconds(budget)
    bare = bare_loop_lm(train, val, seconds)
    show(f"bare loop ({budget})", bare)
    ours = run_seqgen_lm(OUT / "shakespeare", train, val, budget)
    show(f"seqgen defaults ({budget})", ours)
    print(f"shakespeare: seqgen {ours['val_loss']:.4f} vs bare loop {bare['val_loss']:.4f} "
          f"nats/char: ahead by {bare['val_loss'] - ours['val_loss']:.4f} (target >= 0.03; "
          "seqgen <= 1.45)", flush=True)
    seqgen("sample", "--checkpoint", str(OUT / "shakespeare" / "best.pt"), "--temp", "0.8",
           "--prime", "ROMEO:", "--length", "300", "--seed", "1")


# Short runs that change one thing at a time from the defaults (README: LM sweep).
SWEEP = [
    [], ["--bptt", "128"], ["--bptt", "32"], ["--dropout", "0.1"], ["--dropout", "0"],
    ["--lr", "5e-3"], ["--lr", "2e-3"], ["--batch-size", "16"], ["--batch-size", "64"],
    ["--weight-decay", "0.1"], ["--clip", "5"], ["--schedule", "constant"],
    ["--hidden", "384"], ["--hidden", "768"], ["--layers", "1", "--hidden", "768"],
    ["--layers", "3"], ["--embed", "64"], ["--embed", "256"], ["--eval-every", "200"],
]


def bench_sweep(budget: str, configs: list[list[str]]) -> None:
    train, val = split_text(SHAKESPEARE, "ts")
    for options in configs:
        figures = run_seqgen_lm(OUT / "sweep", train, val, budget, *options)
        show(f"sweep {budget} {' '.join(options) or '(defaults)'}", figures)


def bench_ptb(budget: str) -> None:
    """Penn Treebank, word level, with the README's options; a bare loop of the same kind."""
    ptb = DATA / "ptb"
    options = ["--level", "word", "--pretokenized", "--embed", "512", "--hidden", "512",
               "--tie-weights", "--dropout", "0.4", "--bptt", "35"]
    seconds = parse_seconds(budget)
    bare = bare_loop_lm(ptb / "ptb.train.txt", ptb / "ptb.valid.txt", seconds, level="word",
                        embed=512, dropout=0.4, bptt=35, tie=True, test=ptb / "ptb.test.txt")
    show(f"ptb bare loop ({budget})", bare)
    ours = run_seqgen_lm(OUT / "ptb", ptb / "ptb.train.txt", ptb / "ptb.valid.txt", budget,
                         *options, test=ptb / "ptb.test.txt")
    show(f"ptb seqgen ({budget}, {' '.join(options)})", ours)


def parse_seconds(budget: str) -> float:
    from seqgen.config import parse_duration

    return float(parse_duration(budget))


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
                        choices=["throughput", "sampling", "profile", "shakespeare", "sweep",
                                 "ptb", "scale"])
    parser.add_argument("--steps", type=int, default=30,
                        help="throughput, profile: timed steps")
    parser.add_argument("--rounds", type=int, default=5, help="throughput: rounds")
    parser.add_argument("--length", type=int, default=500, help="sampling: tokens")
    parser.add_argument("--shakespeare-budget", default="10m")
    parser.add_argument("--sweep-budget", default="2m")
    parser.add_argument("--sweep", action="append", default=None,
                        help="sweep: one option set, e.g. --sweep='--bptt 128' (repeatable)")
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
    parts = args.part or ["throughput", "sampling", "shakespeare", "ptb", "scale"]  # no sweep
    for part in parts:
        if part == "throughput":
            bench_throughput(args.steps, args.rounds)
        elif part == "profile":
            bench_profile(args.steps)
        elif part == "sampling":
            bench_sampling(OUT / "shakespeare" / "best.pt", args.length)
        elif part == "shakespeare":
            bench_shakespeare(args.shakespeare_budget)
        elif part == "sweep":
            configs = [c.split() for c in args.sweep] if args.sweep else SWEEP
            bench_sweep(args.sweep_budget, configs)
        elif part == "ptb":
            bench_ptb(args.ptb_budget)
        elif part == "scale":
            bench_scale(args.size_gb, args.levels.split(","))


if __name__ == "__main__":
    main()
