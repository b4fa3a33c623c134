"""Classification and long-lag benchmarks.

    python scripts/bench_classify.py --part rt          # Rotten Tomatoes, defaults, dev accuracy
    python scripts/bench_classify.py --part bare        # a bare 50-line bi-LSTM, same budget
    python scripts/bench_classify.py --part encoder     # --encoder-from a language model
    python scripts/bench_classify.py --part throughput  # classify 10,000 sentences
    python scripts/bench_classify.py --part lags        # steps to solve the adding problem

Every part prints its figures; a time-budgeted figure depends on the machine's speed, so the
steps and examples/s are printed beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench-out" / "classify"
RT = DATA / "rt-polarity"
TRAIN, DEV = RT / "train.tsv", RT / "dev.tsv"


def seqgen(*args: str, capture: bool = False) -> str:
    """Run the CLI as a user would."""
    print("$ seqgen " + " ".join(args), flush=True)
    done = subprocess.run([sys.executable, "-m", "seqgen", *args], check=True, text=True,
                          stdout=subprocess.PIPE if capture else None)
    return done.stdout if capture else ""


def run_summary(out: Path, unit: str = "examples") -> str:
    """Steps and training examples (or tokens) per second of a finished run."""
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"]
    rate = sum(r["tokens_per_s"] for r in train) / max(1, len(train))
    return f"{rows[-1]['step']:,} steps, {rate:,.0f} training {unit}/s"


def dev_accuracy(checkpoint: Path) -> float:
    report = json.loads(seqgen("evaluate-classify", str(DEV), "-c", str(checkpoint), "--json",
                               capture=True))
    return report["accuracy"]


# ----------------------------------------------------------------------------- Rotten Tomatoes
def bench_rt(budget: str, extra: list[str]) -> None:
    out = OUT / "rt"
    seqgen("train-classify", str(TRAIN), "--val-file", str(DEV), "--time-budget", budget,
           "--out", str(out), "--overwrite", "--quiet", *extra)
    print(f"Rotten Tomatoes, defaults{' ' + ' '.join(extra) if extra else ''}, {budget}: dev "
          f"accuracy of best.pt {dev_accuracy(out / 'best.pt'):.2%}, of the last weights "
          f"{dev_accuracy(out / 'last.pt'):.2%} ({run_summary(out)}); target >= 78%, bare "
          "bi-LSTM 75.2%")


def read_tsv(path: Path) -> tuple[list[list[str]], list[int]]:
    rows = [line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    return [text.split() for _, text in rows], [int(label == "pos") for label, _ in rows]


def bench_bare(seconds: float) -> None:
    """The issue's floor: bi-LSTM 1×128, max-pool over time, dropout 0.5, AdamW, batches of
    32, whitespace tokens; dev accuracy after each epoch (the best and the last)."""
    torch.manual_seed(0)
    texts, labels = read_tsv(TRAIN)
    dev_texts, dev_labels = read_tsv(DEV)
    vocab = {w: i + 2 for i, w in enumerate(Counter(w for t in texts for w in t))}

    def batch(rows):
        ids = [[vocab.get(w, 1) for w in t] or [1] for t in rows]
        x = torch.zeros(len(ids), max(map(len, ids)), dtype=torch.long)
        for i, row in enumerate(ids):
            x[i, :len(row)] = torch.tensor(row)
        return x, torch.tensor([len(r) for r in ids])

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(len(vocab) + 2, 128, padding_idx=0)
            self.rnn = torch.nn.LSTM(128, 128, batch_first=True, bidirectional=True)
            self.drop = torch.nn.Dropout(0.5)
            self.out = torch.nn.Linear(256, 2)

        def forward(self, x, lengths):
            packed = torch.nn.utils.rnn.pack_padded_sequence(
                self.drop(self.emb(x)), lengths, batch_first=True, enforce_sorted=False)
            h, _ = torch.nn.utils.rnn.pad_packed_sequence(self.rnn(packed)[0], batch_first=True)
            mask = torch.arange(h.size(1)) < lengths[:, None]
            return self.out(self.drop(h.masked_fill(~mask[..., None], -math.inf).max(1).values))

    net = Net()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    order = list(range(len(texts)))
    accuracies, steps, start = [], 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        random.Random(len(accuracies)).shuffle(order)
        net.train()
        for k in range(0, len(order), 32):
            if time.perf_counter() - start >= seconds:
                break
            rows = order[k:k + 32]
            x, lengths = batch([texts[i] for i in rows])
            loss = torch.nn.functional.cross_entropy(net(x, lengths),
                                                     torch.tensor([labels[i] for i in rows]))
            opt.zero_grad()
            loss.backward()
            opt.step()
            steps += 1
        net.eval()
        with torch.no_grad():
            x, lengths = batch(dev_texts)
            right = (net(x, lengths).argmax(-1) == torch.tensor(dev_labels)).float().mean()
        accuracies.append(float(right))
    print(f"bare bi-LSTM, {seconds:.0f} s: dev accuracy best {max(accuracies):.2%}, last "
          f"{accuracies[-1]:.2%} ({steps:,} steps, {len(accuracies)} epochs checked)")


# ----------------------------------------------------------------------------- --encoder-from
def bench_encoder(lm_budget: str, budget: str, with_ptb: bool) -> None:
    """A word-level LM on unlabelled text (the training reviews' sentences with their labels
    dropped; with ``with_ptb``, Penn Treebank's training text too), then the classifier
    started from it."""
    corpus = OUT / "unlabelled.txt"
    corpus.parent.mkdir(parents=True, exist_ok=True)
    texts, _ = read_tsv(TRAIN)
    extra = (DATA / "ptb" / "ptb.train.txt").read_text(encoding="utf-8") if with_ptb else ""
    corpus.write_text("\n".join(" ".join(t) for t in texts) + "\n" + extra, encoding="utf-8")
    lm = OUT / "lm"
    seqgen("train-lm", str(corpus), "--level", "word", "--pretokenized", "--min-freq", "2",
           "--layers", "1", "--hidden", "128", "--embed", "128", "--dropout", "0.3", "--bptt",
           "35", "--time-budget", lm_budget, "--out", str(lm), "--overwrite", "--quiet")
    out = OUT / "encoder"
    seqgen("train-classify", str(TRAIN), "--val-file", str(DEV), "--time-budget", budget,
           "--encoder-from", str(lm / "best.pt"), "--out", str(out), "--overwrite", "--quiet")
    print(f"--encoder-from a 1×128 word LM ({lm_budget} on {corpus.stat().st_size / 1e6:.1f} MB "
          f"of unlabelled text, {run_summary(lm, 'tokens')}), then {budget}: dev accuracy "
          f"{dev_accuracy(out / 'best.pt'):.2%} ({run_summary(out)})")


# ----------------------------------------------------------------------------- throughput
def bench_throughput(checkpoint: Path, n: int) -> None:
    from seqgen.tasks.classify import load_classifier

    texts, _ = read_tsv(TRAIN)
    sentences = [" ".join(t) for t in texts]
    sentences = (sentences * (n // len(sentences) + 1))[:n]
    classifier, _ = load_classifier(checkpoint, "cpu")
    classifier.probabilities(sentences[:256])  # warm-up
    start = time.perf_counter()
    batched = classifier.probabilities(sentences, batch_size=256)
    batched_s = time.perf_counter() - start
    few = sentences[:500]
    start = time.perf_counter()
    single = torch.cat([classifier.probabilities([s], batch_size=1) for s in few])
    single_s = time.perf_counter() - start
    same = float((single.argmax(-1) == batched[:500].argmax(-1)).float().mean())
    listed = OUT / "sentences.txt"
    listed.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    start = time.perf_counter()
    seqgen("classify", "--input", str(listed), "-c", str(checkpoint), capture=True)
    cli_s = time.perf_counter() - start
    print(f"classify {n:,} sentences: batched (256) {n / batched_s:,.0f} sentences/s; one at a "
          f"time {len(few) / single_s:,.0f} sentences/s ({len(few) / single_s:.0f} → "
          f"{(n / batched_s) / (len(few) / single_s):.1f}× batched); the same labels "
          f"{same:.1%}; `seqgen classify --input` end to end (start-up and loading "
          f"included) {cli_s:.1f} s = {n / cli_s:,.0f} sentences/s")


# ----------------------------------------------------------------------------- long lags
def bench_lags(task: str, lags: str, cells: str, budget: str) -> None:
    seqgen("experiment", task, "--lags", lags, "--cells", cells, "--time-budget", budget,
           "--out", str(OUT / "lags"), "--overwrite", "--quiet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["rt", "bare", "encoder", "throughput", "lags"],
                        required=True)
    parser.add_argument("--time-budget", default="5m", help="rt, bare, encoder: training")
    parser.add_argument("--lm-budget", default="4m", help="encoder: language model training")
    parser.add_argument("--with-ptb", action="store_true",
                        help="encoder: add Penn Treebank to the unlabelled text")
    parser.add_argument("--sentences", type=int, default=10_000, help="throughput")
    parser.add_argument("--checkpoint", type=Path, default=OUT / "rt" / "best.pt",
                        help="throughput: the model (default: the rt part's)")
    parser.add_argument("--task", default="adding", help="lags: adding, copy or order")
    parser.add_argument("--lags", default="10,50,100")
    parser.add_argument("--cells", default="rnn,gru,lstm,irnn")
    parser.add_argument("--run-budget", default="3m", help="lags: the budget of each run")
    parser.add_argument("train_options", nargs="*", help="rt: extra train-classify options")
    args = parser.parse_args()
    from seqgen.config import parse_duration

    if args.part == "rt":
        bench_rt(args.time_budget, args.train_options)
    elif args.part == "bare":
        bench_bare(parse_duration(args.time_budget))
    elif args.part == "encoder":
        bench_encoder(args.lm_budget, args.time_budget, args.with_ptb)
    elif args.part == "throughput":
        bench_throughput(args.checkpoint, args.sentences)
    else:
        bench_lags(args.task, args.lags, args.cells, args.run_budget)


if __name__ == "__main__":
    main()
