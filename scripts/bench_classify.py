"""Classification and long-lag benchmarks.

    python scripts/bench_classify.py --part nbsvm       # NBSVM-bi, seqgen and a bare bi-LSTM
    python scripts/bench_classify.py --part rt          # Rotten Tomatoes, defaults, dev accuracy
    python scripts/bench_classify.py --part bare        # a bare 50-line bi-LSTM, same budget
    python scripts/bench_classify.py --part encoder     # --encoder-from a language model
    python scripts/bench_classify.py --part throughput  # classify 10,000 sentences
    python scripts/bench_classify.py --part lags        # steps to solve the adding problem

Every part prints its figures; a time-budgeted figure depends on the machine's speed, so the
steps and examples/s are printed beside it. On Rotten Tomatoes every model is chosen on a share
of train.tsv (seqgen's --val-fraction, the same sentences for the bare loop) and dev.tsv is
the test set, read once at the end.
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


# ----------------------------------------------------------------------------- Rotten Tomatoes
HELD_OUT = 0.1  # of train.tsv, to choose on: seqgen's --val-fraction default


def bench_rt(budget: str, extra: list[str]) -> float:
    """seqgen's defaults, choosing best.pt on a held-out tenth of train.tsv; dev accuracy."""
    out = OUT / "rt"
    seqgen("train-classify", str(TRAIN), "--val-fraction", str(HELD_OUT), "--time-budget",
           budget, "--out", str(out), "--overwrite", "--quiet", *extra)
    best, last = dev_report(out / "best.pt"), dev_report(out / "last.pt")
    print(f"seqgen, defaults{' ' + ' '.join(extra) if extra else ''}, {budget}: dev (test) "
          f"accuracy of best.pt {best['accuracy']:.2%}, of the last weights "
          f"{last['accuracy']:.2%}; expected calibration error of best.pt {best['ece']:.1%} "
          f"(temperature {best['temperature']:.2f}; {best['ece_uncalibrated']:.1%} before) "
          f"({run_summary(out)})", flush=True)
    return best["accuracy"]


def dev_report(checkpoint: Path) -> dict:
    return json.loads(seqgen("evaluate-classify", str(DEV), "-c", str(checkpoint), "--json",
                             capture=True))


def read_tsv(path: Path) -> tuple[list[list[str]], list[int]]:
    rows = [line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    return [text.split() for _, text in rows], [int(label == "pos") for label, _ in rows]


def held_out_split(labels: list[int]) -> tuple[list[int], list[int]]:
    """The training rows seqgen's --val-fraction keeps and holds out (seed 0)."""
    from seqgen.data.labelled import stratified_split

    return stratified_split([str(y) for y in labels], HELD_OUT, 0)


def bench_bare(seconds: float) -> float:
    """The issue's floor: bi-LSTM 1×128, max-pool over time, dropout 0.5, AdamW, batches of
    32, whitespace tokens; the epoch chosen on seqgen's held-out training sentences, then its
    dev accuracy."""
    torch.manual_seed(0)
    all_texts, all_labels = read_tsv(TRAIN)
    kept, held = held_out_split(all_labels)
    texts, labels = [all_texts[i] for i in kept], [all_labels[i] for i in kept]
    val_texts, val_labels = [all_texts[i] for i in held], [all_labels[i] for i in held]
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

    @torch.no_grad()
    def accuracy(rows, gold):
        net.eval()
        x, lengths = batch(rows)
        right = (net(x, lengths).argmax(-1) == torch.tensor(gold)).float().mean()
        net.train()
        return float(right)

    net = Net()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    order = list(range(len(texts)))
    epochs, steps, start = [], 0, time.perf_counter()  # (held-out accuracy, dev accuracy)
    while time.perf_counter() - start < seconds:
        random.Random(len(epochs)).shuffle(order)
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
        epochs.append((accuracy(val_texts, val_labels), accuracy(dev_texts, dev_labels)))
    chosen = max(range(len(epochs)), key=lambda i: epochs[i][0])
    print(f"bare bi-LSTM, {seconds:.0f} s: dev (test) accuracy of the epoch chosen on the "
          f"held-out sentences {epochs[chosen][1]:.2%} (epoch {chosen + 1} of {len(epochs)}), "
          f"of the last {epochs[-1][1]:.2%} ({steps:,} steps, "
          f"{steps * 32 / seconds:,.0f} training examples/s)", flush=True)
    return epochs[chosen][1]


# ----------------------------------------------------------------------------- NBSVM-bi
def ngram_matrix(texts: list[list[str]], index: dict[str, int], grow: bool) -> torch.Tensor:
    """Binarised unigram and bigram indicators (N, V), sparse; ``grow`` adds unseen n-grams."""
    rows, cols = [], []
    for i, words in enumerate(texts):
        grams = set(words) | {f"{a} {b}" for a, b in zip(words, words[1:])}
        for gram in grams:
            if grow and gram not in index:
                index[gram] = len(index)
            if gram in index:
                rows.append(i)
                cols.append(index[gram])
    return torch.sparse_coo_tensor([rows, cols], torch.ones(len(rows)), (len(texts), len(index)),
                                   check_invariants=True).coalesce()


def nbsvm(texts: list[list[str]], labels: list[int], alpha: float = 1.0, c: float = 1.0,
          beta: float = 0.25) -> tuple[dict[str, int], torch.Tensor, torch.Tensor, float]:
    """Wang & Manning (2012), with their published settings (no tuning here): the naive-Bayes
    log-count ratio r scales each binary feature, an L2-regularised squared-hinge SVM is fitted
    on the scaled features (full-batch L-BFGS in place of liblinear), and its weights are
    interpolated towards their mean magnitude by β. Returns the n-gram index, r, w and b."""
    index: dict[str, int] = {}
    x = ngram_matrix(texts, index, grow=True)
    y = torch.tensor(labels, dtype=torch.float32)
    p = alpha + torch.sparse.mm(x.t(), y[:, None])[:, 0]
    q = alpha + torch.sparse.mm(x.t(), (1 - y)[:, None])[:, 0]
    r = (p / p.sum()).log() - (q / q.sum()).log()
    scaled = torch.sparse_coo_tensor(x.indices(), r[x.indices()[1]], x.shape).coalesce()
    sign = 2 * y - 1
    w = torch.zeros(len(index), requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    optimiser = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        margin = torch.sparse.mm(scaled, w[:, None])[:, 0] + b
        loss = 0.5 * w.pow(2).sum() + c * (1 - sign * margin).clamp_min(0).pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    w = w.detach()
    w = (1 - beta) * w.abs().mean() + beta * w
    return index, r, w, float(b.detach())


def bench_nbsvm() -> float:
    start = time.perf_counter()
    texts, labels = read_tsv(TRAIN)
    index, r, w, b = nbsvm(texts, labels)
    fitted = time.perf_counter() - start
    dev_texts, dev_labels = read_tsv(DEV)
    x = ngram_matrix(dev_texts, index, grow=False)
    predicted = (torch.sparse.mm(x, (r * w)[:, None])[:, 0] + b > 0).long()
    accuracy = float((predicted == torch.tensor(dev_labels)).float().mean())
    print(f"NBSVM-bi (Wang & Manning 2012: α 1, C 1, β 0.25) on all of train.tsv, "
          f"{len(index):,} uni+bigrams, fitted in {fitted:.0f} s: dev (test) accuracy "
          f"{accuracy:.2%} (published: 79.4% in 10-fold cross-validation)", flush=True)
    return accuracy


def bench_side_by_side(budget: str, extra: list[str], seeds: list[int]) -> None:
    """NBSVM-bi, seqgen's defaults (once per seed: seeds differ by up to two points) and the
    bare bi-LSTM on the same split, one after the other, and who is ahead."""
    from seqgen.config import parse_duration

    peer = bench_nbsvm()
    ours = [bench_rt(budget, [*extra, "--seed", str(seed)]) for seed in seeds]
    bare = bench_bare(parse_duration(budget))
    mean = sum(ours) / len(ours)
    each = f" (seeds {', '.join(map(str, seeds))}: " + ", ".join(
        f"{a:.2%}" for a in ours) + ")" if len(seeds) > 1 else ""
    print(f"dev (test) accuracy: seqgen {mean:.2%}{each}, NBSVM-bi {peer:.2%} "
          f"({mean - peer:+.2%}), bare bi-LSTM {bare:.2%} ({mean - bare:+.2%})", flush=True)


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
    seqgen("train-classify", str(TRAIN), "--val-fraction", str(HELD_OUT), "--time-budget",
           budget, "--encoder-from", str(lm / "best.pt"), "--out", str(out), "--overwrite",
           "--quiet")
    print(f"--encoder-from a 1×128 word LM ({lm_budget} on {corpus.stat().st_size / 1e6:.1f} MB "
          f"of unlabelled text, {run_summary(lm, 'tokens')}), then {budget}: dev accuracy "
          f"{dev_report(out / 'best.pt')['accuracy']:.2%} ({run_summary(out)})")


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
    parser.add_argument("--part", choices=["nbsvm", "rt", "bare", "encoder", "throughput",
                                           "lags"], required=True)
    parser.add_argument("--time-budget", default="5m",
                        help="nbsvm, rt, bare, encoder: training (each model's)")
    parser.add_argument("--seeds", default="1234",
                        help="nbsvm: seqgen's seeds, comma-separated (their mean is compared)")
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
    parser.add_argument("train_options", nargs="*",
                        help="nbsvm, rt: extra train-classify options, after --")
    args = parser.parse_args()
    from seqgen.config import parse_duration

    if args.part == "nbsvm":
        bench_side_by_side(args.time_budget, args.train_options,
                           [int(seed) for seed in args.seeds.split(",")])
    elif args.part == "rt":
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
