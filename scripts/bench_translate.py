"""Translation benchmarks: trainer overhead, batched beam search, Tatoeba quality, shapes world.

    python scripts/bench_translate.py --part throughput   # seqgen trainer vs a bare PyTorch loop
    python scripts/bench_translate.py --part speed        # beam 5: batched vs one at a time
    python scripts/bench_translate.py --part quality --time-budget 30m   # defaults, dev BLEU
    python scripts/bench_translate.py --part shapes       # shapes world, unseen scenes
    python scripts/bench_translate.py --part joeynmt --time-budget 30m   # JoeyNMT, then seqgen

Every part prints its figures; ratios measured in one process are the stable numbers.
"""

from __future__ import annotations

import argparse
import json
import random
import re
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


# ------------------------------------------------------------------------------ joeynmt
JOEY_VENV = ROOT / "bench-out" / "venv-joeynmt"
JOEY_VERSION = "2.3.0"


def joey_python() -> Path:
    """JoeyNMT in a virtual environment of its own, made on first use: it pins protobuf and
    brings tensorboard, pandas and linters, so it is never one of seqgen's dependencies. The
    environment sees this Python's packages, so both tools run on the same torch."""
    python = JOEY_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(JOEY_VENV)],
                       check=True)
    found = subprocess.run([str(python), "-c", "import joeynmt.helpers, joeynmt; "
                            "print(joeynmt.__version__)"], capture_output=True, text=True)
    if found.returncode or found.stdout.strip() != JOEY_VERSION:
        # joeynmt imports importlib_metadata without declaring it
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"joeynmt=={JOEY_VERSION}",
                        "importlib_metadata"], check=True)
    return python


# JoeyNMT 2.3 passes ReduceLROnPlateau a ``verbose`` that torch 2.7 removed: it is dropped
# before JoeyNMT's own command line runs, so its plateau schedule works as published.
JOEY_MAIN = """
import runpy, torch.optim.lr_scheduler as s
init = s.ReduceLROnPlateau.__init__
s.ReduceLROnPlateau.__init__ = lambda self, *a, verbose=None, **k: init(self, *a, **k)
runpy.run_module("joeynmt", run_name="__main__", alter_sys=True)
"""


def heldout_split(folder: Path, n_sources: int, seed: int) -> tuple[list[str], list[list[str]]]:
    """The same files for both tools: training pairs without the pairs of ``n_sources``
    English sentences, which are held out to choose the checkpoint on, so that dev.tsv is
    scored by both and chosen on by neither. Returns dev's sources and all their references;
    dev's sources (and a first reference, which JoeyNMT's test set needs) are written too."""
    from seqgen.metrics import group_references
    from seqgen.tasks.translate import read_pairs

    folder.mkdir(parents=True, exist_ok=True)
    pairs = read_pairs(TRAIN).pairs
    held = set(random.Random(seed).sample(sorted({s for s, _ in pairs}), n_sources))
    parts = {"train": [p for p in pairs if p[0] not in held],
             "heldout": [p for p in pairs if p[0] in held]}
    sources, references = group_references(read_pairs(DEV).pairs)
    parts["dev"] = [(s, r[0]) for s, r in zip(sources, references)]
    for name, rows in parts.items():
        (folder / f"{name}.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in rows),
                                            encoding="utf-8")
        for side, lang in ((0, "en"), (1, "es")):
            (folder / f"{name}.{lang}").write_text("".join(r[side] + "\n" for r in rows),
                                                   encoding="utf-8")
    print(f"split: {len(parts['train']):,} training pairs, {len(parts['heldout']):,} pairs of "
          f"{n_sources:,} held-out English sentences to choose on, {len(sources):,} dev "
          "sources to score", flush=True)
    return sources, references


def joey_config(data: Path, model_dir: Path, batch_size: int) -> dict:
    """JoeyNMT's recurrent model as its published RNN configurations build it (bidirectional
    LSTM encoder, Luong attention with input feeding, a bridge to the decoder's first state,
    its own initialisers), at seqgen's default sizes (1 layer, 256 wide) and batch, words with
    the Moses tokenizer (undone at the output), beam 5 with its length penalty 1.0."""
    side = {"max_length": 50, "min_length": 1, "lowercase": False, "level": "word",
            "voc_min_freq": 2, "tokenizer_cfg": {"pretokenizer": "moses"}}
    rnn = {"type": "recurrent", "rnn_type": "lstm", "embeddings": {"embedding_dim": 256},
           "hidden_size": 256, "num_layers": 1, "dropout": 0.2}
    return {
        "name": "tatoeba_eng_spa_rnn", "joeynmt_version": JOEY_VERSION,
        "data": {"train": str(data / "train"), "dev": str(data / "heldout"),
                 "test": str(data / "dev"), "dataset_type": "plain",
                 "src": {"lang": "en", **side}, "trg": {"lang": "es", **side}},
        "testing": {"n_best": 1, "beam_size": 5, "beam_alpha": 1.0, "batch_size": 64,
                    "batch_type": "sentence", "eval_metrics": ["bleu"],
                    "max_output_length": 100, "load_model": str(model_dir / "best.ckpt")},
        "training": {"random_seed": 42, "optimizer": "adam", "learning_rate": 1e-3,
                     "learning_rate_min": 1e-6, "clip_grad_norm": 1.0, "batch_size": batch_size,
                     "batch_type": "sentence", "normalization": "tokens",
                     "scheduling": "plateau", "patience": 5, "decrease_factor": 0.5,
                     "epochs": 1000, "validation_freq": 1000, "logging_freq": 100,
                     "early_stopping_metric": "bleu", "model_dir": str(model_dir),
                     "overwrite": True, "shuffle": True, "use_cuda": False, "fp16": False,
                     "keep_best_ckpts": 1, "print_valid_sents": [0, 1, 2]},
        "model": {"encoder": {**rnn, "bidirectional": True},
                  "decoder": {**rnn, "hidden_dropout": 0.2, "input_feeding": True,
                              "init_hidden": "bridge", "attention": "luong"}},
    }


def joey_summary(log: Path) -> str:
    steps = [int(m) for m in re.findall(r"Step:\s+(\d+)", log.read_text())]
    rates = [float(m) for m in re.findall(r"Tokens per Sec:\s+([\d.]+)", log.read_text())]
    return (f"{max(steps, default=0):,} steps, "
            f"{statistics.mean(rates[1:] or rates or [0]):,.0f} target tokens/s")


def bench_joeynmt(time_budget: str, n_heldout: int, seed: int, extra: list[str]) -> None:
    """JoeyNMT for the budget, then seqgen's defaults for the same budget, one after the
    other on the same split; both decode dev.tsv's sources with their own beam search and
    are scored by sacrebleu against all of dev's references, detokenised."""
    import yaml  # JoeyNMT's own dependency

    from seqgen.config import parse_duration
    from seqgen.metrics import corpus_bleu, corpus_chrf

    folder = OUT / "joeynmt"
    sources, references = heldout_split(folder / "data", n_heldout, seed)
    python = joey_python()
    budget = parse_duration(time_budget)
    model_dir = folder / "model"
    config = folder / "config.yaml"
    # PyYAML, which JoeyNMT reads with, takes JSON's 1e-06 for a string: write YAML
    config.write_text(yaml.safe_dump(joey_config(folder / "data", model_dir, 64)))
    print(f"$ timeout -s INT {budget:.0f} joeynmt train {config}", flush=True)
    start = time.perf_counter()
    with open(folder / "train.out", "w") as log:
        subprocess.run(["timeout", "-s", "INT", f"{budget:.0f}", str(python), "-c", JOEY_MAIN,
                        "train", str(config), "--skip-test"], check=False, stdout=log,
                       stderr=subprocess.STDOUT)
    joey_wall = time.perf_counter() - start
    if not (model_dir / "best.ckpt").exists():  # stopped before its first validation
        print("JoeyNMT never validated: decoding its last weights", flush=True)
        settings = joey_config(folder / "data", model_dir, 64)
        settings["testing"]["load_model"] = str(model_dir / "latest.ckpt")
        config.write_text(yaml.safe_dump(settings))
    start = time.perf_counter()
    with open(folder / "test.out", "w") as log:
        subprocess.run([str(python), "-c", JOEY_MAIN, "test", str(config), "-o",
                        str(folder / "joeynmt")], check=True, stdout=log,
                       stderr=subprocess.STDOUT)
    joey_decode = time.perf_counter() - start
    joey_out = (folder / "joeynmt.test").read_text(encoding="utf-8").splitlines()

    out = folder / "seqgen"
    start = time.perf_counter()
    seqgen("train-translate", str(folder / "data" / "train.tsv"), "--val-file",
           str(folder / "data" / "heldout.tsv"), "--time-budget", time_budget, "--out", str(out),
           "--overwrite", "--quiet", *extra)
    ours_wall = time.perf_counter() - start
    start = time.perf_counter()
    ours_out = seqgen("translate", "--input", str(folder / "data" / "dev.en"), "-c",
                      str(out / "best.pt"), "--beam", "5", capture=True).splitlines()
    ours_decode = time.perf_counter() - start
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"]
    ours_rate = statistics.mean(r["tokens_per_s"] for r in train[1:] or train)
    for name, output, wall, decode, summary in (
            (f"JoeyNMT {JOEY_VERSION}", joey_out, joey_wall, joey_decode,
             joey_summary(model_dir / "train.log")),
            ("seqgen", ours_out, ours_wall, ours_decode,
             f"{rows[-1]['step']:,} steps, {ours_rate:,.0f} target tokens/s")):
        if len(output) != len(sources):
            raise SystemExit(f"{name} gave {len(output)} lines for {len(sources)} sources")
        print(f"{name}: dev BLEU {corpus_bleu(output, references):.2f}, chrF "
              f"{corpus_chrf(output, references):.2f} (beam 5, {len(sources):,} sources, all "
              f"their references); training {wall / 60:.1f} min wall, {summary}; decoding "
              f"{decode:.0f} s", flush=True)


def main() -> None:
    from seqgen.config import parse_duration

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", default="all", choices=["throughput", "speed", "quality",
                                                          "shapes", "joeynmt", "all"])
    parser.add_argument("--steps", type=int, default=60, help="throughput: timed steps")
    parser.add_argument("--checkpoint", type=Path, default=OUT / "quality" / "best.pt",
                        help="speed: model to decode with (default: the quality run's)")
    parser.add_argument("--sentences", type=int, default=300,
                        help="speed: dev sentences translated")
    parser.add_argument("--beam", type=int, default=5, help="speed: beam size")
    parser.add_argument("--time-budget", default="30m",
                        help="quality, joeynmt: training budget (each tool's, in joeynmt)")
    parser.add_argument("--heldout", type=int, default=1000,
                        help="joeynmt: English training sentences held out to choose on")
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
        elif part == "joeynmt":
            bench_joeynmt(args.time_budget, args.heldout, args.seed, args.train_options)
        else:
            bench_shapes(parse_duration(args.shapes_budget), args.seed)


if __name__ == "__main__":
    main()
