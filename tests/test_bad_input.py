"""Every mistake a user can make ends in one line on stderr naming it, exit code 2, no
traceback, and leaves the user's files as they were. A table that grows: add a row per case.

Each row: an id, the command line (``{name}`` fills in prepared files and folders), and a
piece of the one line expected."""

import hashlib
import json
from pathlib import Path

import pytest
import torch
from helpers import assert_user_error, invoke
from PIL import Image

from seqgen.data.synthetic import scenes

TINY_LM = ["--layers", "1", "--hidden", "16", "--embed", "8", "--batch-size", "4",
           "--bptt", "8", "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def user(tmp_path_factory):
    """A user's folder: data of every kind, trained checkpoints, broken files."""
    root = tmp_path_factory.mktemp("user")
    lines = [s.english() for s in scenes(200, 4)]
    (root / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "short.txt").write_text("hi\n", encoding="utf-8")
    (root / "one.txt").write_text("a", encoding="utf-8")
    (root / "empty.txt").write_text("", encoding="utf-8")
    (root / "binary.txt").write_bytes(bytes(range(256)) * 8)
    (root / "latin.txt").write_bytes("café au lait\n".encode("latin-1") * 50)
    (root / "no-text").mkdir()
    (root / "a-file").write_text("not a folder\n")
    pairs = [(s.english(), s.spanish()) for s in scenes(60, 5)]
    (root / "pairs.tsv").write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
    (root / "notab.tsv").write_text("Go.\tVe.\nno tab here\n", encoding="utf-8")
    (root / "src.txt").write_text("one\ntwo\n", encoding="utf-8")
    (root / "tgt.txt").write_text("uno\n", encoding="utf-8")
    images = root / "images"
    images.mkdir()
    for i, scene in enumerate(scenes(12, 6)):
        scene.render(32).save(images / f"{i}.png")
    (images / "broken.png").write_bytes(b"not a picture")
    caption_rows = "".join(f"{i}.png,{s.english()}\n" for i, s in enumerate(scenes(12, 6)))
    (root / "captions.csv").write_text("image,caption\n" + caption_rows, encoding="utf-8")
    (root / "labels.csv").write_text("image,label\n0.png,red\n", encoding="utf-8")
    (root / "odd.json").write_text('{"pictures": []}', encoding="utf-8")
    reviews = "".join(f"{'pos' if 'red' in t else 'neg'}\t{t}\n" for t in lines[:40])
    (root / "reviews.tsv").write_text("label\ttext\n" + reviews, encoding="utf-8")
    (root / "badrow.tsv").write_text("label\ttext\npos\tfine\nneg\n", encoding="utf-8")
    (root / "otherlabels.tsv").write_text("label\ttext\nmaybe\tso so\n", encoding="utf-8")
    long = ["unique_id,ds,y"] + [f"{name},{t},{10 + (t % 7) + i}" for i, name in
                                 enumerate("ab") for t in range(60)]
    (root / "series.csv").write_text("\n".join(long) + "\n", encoding="utf-8")
    (root / "short-series.csv").write_text("\n".join(long + [f"c,{t},1" for t in range(5)])
                                           + "\n", encoding="utf-8")
    (root / "other-ids.csv").write_text("unique_id,ds,y\nz,0,1\n", encoding="utf-8")
    (root / "tiny-series.csv").write_text("unique_id,ds,y\na,0,1\na,1,2\n", encoding="utf-8")
    (root / "daily.csv").write_text("date,rail,bus,name\n" + "".join(
        f"2021-01-{d:02d},{100 + d},{80 + d},x{d}\n" for d in range(1, 29)), encoding="utf-8")
    cache = ["--cache-dir", str(root / "cache")]
    for command in (
        ["train-lm", root / "corpus.txt", "--out", root / "lm", "--max-steps", 3, *TINY_LM,
         *cache],
        ["train-translate", root / "pairs.tsv", "--out", root / "tr", "--max-steps", 3,
         "--min-freq", 1, "--hidden", 16, "--embed", 8, "--batch-size", 4, "--quiet",
         "--device", "cpu"],
        ["train-caption", root / "captions.csv", "--images", images, "--out", root / "cap",
         "--max-steps", 2, "--encoder", "small-cnn", "--min-freq", 1, "--val-fraction", 0.25,
         "--hidden", 16, "--embed", 8, "--batch-size", 4, "--quiet", "--device", "cpu",
         *cache],
        ["train-classify", root / "reviews.tsv", "--out", root / "cls", "--max-steps", 2,
         "--hidden", 8, "--embed", 8, "--quiet", "--device", "cpu"],
        ["train-forecast", root / "series.csv", "--out", root / "fc", "--max-steps", 2,
         "--horizon", 4, "--input-size", 12, "--layers", 1, "--hidden", 8, "--quiet",
         "--device", "cpu"],
    ):
        done = invoke(*command)
        assert done.exit_code == 0, done.output
    lm = torch.load(root / "lm" / "best.pt", weights_only=True)
    lying = {
        "huge.pt": {**lm, "model_config": {**lm["model_config"], "hidden": 10**9}},
        "heavy.pt": {**lm, "model_config": {**lm["model_config"], "hidden": 60000,
                                             "layers": 64}},
        "words.pt": {**lm, "tokenizer": {"level": "char", "itos": "abc"}},
        "vocab.pt": {**lm, "tokenizer": {**lm["tokenizer"],
                                         "itos": lm["tokenizer"]["itos"][:-1]}},
        "label.pt": {**torch.load(root / "tr" / "best.pt", weights_only=True), "task": "lm"},
        "weights.pt": {**lm, "model_state": {"x": torch.zeros(2)}},
        "typed.pt": {**lm, "model_config": {**lm["model_config"], "layers": "two"}},
        "level.pt": {**lm, "tokenizer": {"level": "bytes"}},
        "proto.pt": {**lm, "tokenizer": {"level": "subword", "model_proto": "bm90IGEgbW9kZWw="}},
    }
    for name, data in lying.items():
        torch.save(data, root / name)
    torch.save({"format_version": 1, "task": "lm", "f": json.dumps}, root / "pickle.pt")
    (root / "garbage.pt").write_text("not a checkpoint")
    return root


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and "cache" not in p.parts}


LM = ["train-lm", "{corpus.txt}", "--out", "{new}"]
TR = ["train-translate", "{pairs.tsv}", "--out", "{new}"]
CAP = ["train-caption", "{captions.csv}", "--images", "{images}", "--out", "{new}",
       "--encoder", "small-cnn"]
SAMPLE = ["sample", "-c", "{lm/best.pt}"]
TRANSLATE = ["translate", "-c", "{tr/best.pt}", "I am cold."]
CAPTION = ["caption", "{images/0.png}", "-c", "{cap/best.pt}"]
CLS = ["train-classify", "{reviews.tsv}", "--out", "{new}"]
CLASSIFY = ["classify", "-c", "{cls/best.pt}", "a red circle"]
EXPERIMENT = ["experiment", "adding", "--out", "{new}"]
FC = ["train-forecast", "{series.csv}", "--out", "{new}"]

CASES = [
    # train-lm: model and optimiser values, checked before the corpus is read
    ("layers-0", [*LM, "--layers", "0"], "--layers must be a positive"),
    ("hidden-0", [*LM, "--hidden", "0"], "--hidden must be a positive"),
    ("embed-0", [*LM, "--embed", "0"], "--embed must be a positive"),
    ("dropout-1.5", [*LM, "--dropout", "1.5"], "--dropout must be in [0, 1)"),
    ("dropout-negative", [*LM, "--dropout", "-0.1"], "--dropout must be in [0, 1)"),
    ("hidden-absurd", [*LM, "--hidden", "1000000000"], "--hidden 1000000000 is too large"),
    ("model-too-big", [*LM, "--hidden", "60000", "--layers", "64"], "GB to train"),
    ("lr-nan", [*LM, "--lr", "nan"], "--lr must be a positive number"),
    ("lr-inf", [*LM, "--lr", "inf"], "--lr must be a positive number"),
    ("lr-negative", [*LM, "--lr", "-0.1"], "--lr must be a positive number"),
    ("warmup-negative", [*LM, "--warmup", "-5"], "--warmup must be"),
    ("clip-negative", [*LM, "--clip", "-1"], "--clip must be a number >= 0"),
    ("weight-decay-negative", [*LM, "--weight-decay", "-1"], "--weight-decay"),
    ("momentum-1.5", [*LM, "--optimizer", "sgd", "--momentum", "1.5"], "--momentum"),
    ("cell", [*LM, "--cell", "lstmx"], "unknown --cell 'lstmx'"),
    ("device", [*LM, "--device", "tpu"], "unknown --device 'tpu'"),
    ("device-cuda", [*LM, "--device", "cuda"], "no CUDA GPU is available"),
    ("precision", [*LM, "--precision", "fp8"], "unknown --precision 'fp8'"),
    ("init-lstm", [*LM, "--init", "identity"], "--init identity (IRNN) is for plain RNNs"),
    ("init-name", [*LM, "--init", "xavier"], "unknown --init 'xavier'"),
    ("optimizer", [*LM, "--optimizer", "adam"], "unknown --optimizer 'adam'"),
    ("schedule", [*LM, "--schedule", "warm"], "unknown --schedule 'warm'"),
    ("bptt-0", [*LM, "--bptt", "0"], "--bptt must be positive"),
    ("batch-0", [*LM, "--batch-size", "0"], "--batch-size must be a positive"),
    ("val-fraction-1.5", [*LM, "--val-fraction", "1.5"], "--val-fraction must be between"),
    ("val-fraction-0", [*LM, "--val-fraction", "0"], "--val-fraction must be between"),
    ("budget-word", [*LM, "--time-budget", "soon"], "cannot read duration 'soon'"),
    ("budget-0", [*LM, "--time-budget", "0"], "--time-budget must be a positive"),
    ("max-steps-0", [*LM, "--max-steps", "0"], "--max-steps must be a positive"),
    ("epochs-negative", [*LM, "--epochs", "-1"], "--epochs must be a positive"),
    ("eval-every-0", [*LM, "--eval-every", "0"], "--eval-every must be a positive"),
    ("patience-0", [*LM, "--patience", "0"], "--patience must be a positive"),
    # train-lm: tokenizer options
    ("level", [*LM, "--level", "bytes"], "unknown --level 'bytes'"),
    ("lowercase-char", [*LM, "--lowercase"], "--lowercase works at --level word"),
    ("encoding", [*LM, "--encoding", "klingon"], "unknown --encoding 'klingon'"),
    ("vocab-size-3", [*LM, "--level", "subword", "--vocab-size", "3"], "--vocab-size must"),
    ("subword-type", [*LM, "--level", "subword", "--subword-type", "wordpiece"],
     "unknown --subword-type"),
    ("max-vocab-2", [*LM, "--level", "word", "--max-vocab", "2"], "--max-vocab must be"),
    ("min-freq-0", [*LM, "--level", "word", "--min-freq", "0"], "--min-freq must be"),
    # train-lm: output places
    ("out-is-file", [*LM[:3], "{a-file}"], "is a file, not a folder"),
    ("out-under-file", [*LM[:3], "{a-file}/run"], "is a file, not a folder"),
    ("out-unwritable", [*LM[:3], "/sys/seqgen-run"], "cannot write to --out"),
    ("out-used", [*LM[:3], "{lm}"], "already holds a run"),
    ("resume-overwrite", [*LM, "--resume", "--overwrite"], "pass one of them"),
    ("resume-nothing", [*LM, "--resume"], "holds no last.pt"),
    ("resume-other-size", [*LM[:3], "{lm}", "--resume", "--hidden", "32"],
     "--hidden 32 differs from the run"),
    # train-lm: corpora
    ("corpus-missing", ["train-lm", "{missing.txt}", "--out", "{new}"], "no such file"),
    ("corpus-binary", ["train-lm", "{binary.txt}", "--out", "{new}"], "binary file"),
    ("corpus-empty", ["train-lm", "{empty.txt}", "--out", "{new}"], "the corpus is empty"),
    ("corpus-latin", ["train-lm", "{latin.txt}", "--out", "{new}"], "pass --encoding"),
    ("corpus-folder", ["train-lm", "{no-text}", "--out", "{new}"], "holds no .txt files"),
    ("corpus-short", ["train-lm", "{short.txt}", "--out", "{new}", "--batch-size", "64"],
     "too short"),
    ("val-file-missing", [*LM, "--val-file", "{missing.txt}"], "no such file"),
    # sample
    ("temp-nan", [*SAMPLE, "--temp", "nan"], "--temp must be a number >= 0"),
    ("temp-inf", [*SAMPLE, "--temp", "inf"], "--temp must be a number >= 0"),
    ("temp-negative", [*SAMPLE, "--temp", "-1"], "--temp must be a number >= 0"),
    ("top-p-0", [*SAMPLE, "--top-p", "0"], "--top-p must be in (0, 1]"),
    ("top-p-1.5", [*SAMPLE, "--top-p", "1.5"], "--top-p must be in (0, 1]"),
    ("top-k-negative", [*SAMPLE, "--top-k", "-1"], "--top-k must be >= 0"),
    ("length-0", [*SAMPLE, "--length", "0"], "--length and --num-samples must be positive"),
    ("samples-0", [*SAMPLE, "-n", "0"], "--length and --num-samples must be positive"),
    ("sample-precision", [*SAMPLE, "--precision", "fp8"], "unknown --precision"),
    # checkpoints that are missing, broken, or lie
    ("ckpt-missing", ["sample", "-c", "{missing.pt}"], "checkpoint not found"),
    ("ckpt-garbage", ["sample", "-c", "{garbage.pt}"], "not a readable seqgen checkpoint"),
    ("ckpt-pickle", ["sample", "-c", "{pickle.pt}"], "holds arbitrary Python objects"),
    ("ckpt-other-task", ["sample", "-c", "{tr/best.pt}"], "is a translate checkpoint"),
    ("ckpt-absurd-size", ["sample", "-c", "{huge.pt}"], "model configuration is not valid"),
    ("ckpt-too-heavy", ["sample", "-c", "{heavy.pt}"], "GB to run"),
    ("ckpt-bad-type", ["sample", "-c", "{typed.pt}"], "model configuration is not valid"),
    ("ckpt-tokenizer", ["sample", "-c", "{words.pt}"], "tokenizer is not valid"),
    ("ckpt-tokenizer-level", ["sample", "-c", "{level.pt}"], "unknown tokenizer level"),
    ("ckpt-sentencepiece", ["sample", "-c", "{proto.pt}"], "sentencepiece model does not load"),
    ("ckpt-vocab", ["sample", "-c", "{vocab.pt}"], "its tokenizer has"),
    ("ckpt-mislabelled", ["sample", "-c", "{label.pt}"], "does not hold a valid"),
    ("ckpt-weights", ["sample", "-c", "{weights.pt}"], "weights do not fit"),
    ("info-garbage", ["info", "{garbage.pt}"], "not a readable seqgen checkpoint"),
    ("info-missing", ["info", "{missing.pt}"], "checkpoint not found"),
    # evaluate-lm
    ("evaluate-missing", ["evaluate-lm", "{missing.txt}", "-c", "{lm/best.pt}"],
     "no such file"),
    ("evaluate-streams", ["evaluate-lm", "{corpus.txt}", "-c", "{lm/best.pt}", "--streams",
                          "0"], "--streams must be positive"),
    ("evaluate-batch", ["evaluate-lm", "{corpus.txt}", "-c", "{lm/best.pt}", "--batch-size",
                        "0"], "--batch-size must be positive"),
    ("evaluate-one-char", ["evaluate-lm", "{one.txt}", "-c", "{lm/best.pt}"], "too short"),
    # train-translate
    ("pairs-no-tab", ["train-translate", "{notab.tsv}", "--out", "{new}"],
     "notab.tsv, line 2: no tab"),
    ("pairs-missing", ["train-translate", "{missing.tsv}", "--out", "{new}"], "file not found"),
    ("pairs-none", ["train-translate", "--out", "{new}"], "give a TSV file"),
    ("pairs-unaligned", ["train-translate", "--source-file", "{src.txt}", "--target-file",
                         "{tgt.txt}", "--out", "{new}"], "must be line-aligned"),
    ("attention-dot", [*TR, "--attention", "dot"], "unknown --attention 'dot'"),
    ("attention-bahdanau", [*TR, "--attention", "bahdanau"], "called concat now"),
    ("feeding-no-attention", [*TR, "--attention", "none", "--input-feeding"],
     "--input-feeding needs attention"),
    ("teacher-forcing-1.5", [*TR, "--teacher-forcing", "1.5"], "--teacher-forcing must be"),
    ("decay-without-rate", [*TR, "--teacher-forcing-decay", "linear"],
     "--teacher-forcing-decay needs --teacher-forcing below 1"),
    ("decay-name", [*TR, "--teacher-forcing", "0.5", "--teacher-forcing-decay", "cubic"],
     "unknown --teacher-forcing-decay"),
    ("label-smoothing-1", [*TR, "--label-smoothing", "1"], "--label-smoothing must be"),
    ("select", [*TR, "--select", "bleu4"], "unknown --select"),
    ("max-len-0", [*TR, "--max-len", "0"], "--max-len must be"),
    ("lowercase-subword", [*TR, "--level", "subword", "--lowercase"],
     "--lowercase works at --level word"),
    ("val-bleu-0", [*TR, "--val-bleu-sentences", "0"], "--val-bleu-sentences must be"),
    ("translate-hidden-0", [*TR, "--hidden", "0"], "--hidden must be a positive"),
    ("translate-out-file", [*TR[:3], "{a-file}"], "is a file, not a folder"),
    # translate
    ("beam-0", [*TRANSLATE, "--beam", "0"], "--beam, --n-best and --batch-size must be"),
    ("n-best-over-beam", [*TRANSLATE, "--beam", "2", "--n-best", "3"], "needs --beam"),
    ("alpha-negative", [*TRANSLATE, "--alpha", "-1"], "--alpha must be a number >= 0"),
    ("alpha-nan", [*TRANSLATE, "--alpha", "nan"], "--alpha must be a number >= 0"),
    ("max-len-ratio-0", [*TRANSLATE, "--max-len-ratio", "0"], "--max-len-ratio must be"),
    ("translate-input-missing", ["translate", "-c", "{tr/best.pt}", "--input",
                                 "{missing.txt}"], "file not found"),
    ("translate-args-and-input", [*TRANSLATE, "--input", "{src.txt}"], "not both"),
    ("translate-lm-checkpoint", ["translate", "-c", "{lm/best.pt}", "hi"],
     "is a lm checkpoint"),
    # train-caption
    ("caption-format", [*CAP, "--format", "xml"], "unknown --format 'xml'"),
    ("caption-encoder", [*CAP[:6], "--encoder", "vgg99"], "unknown --encoder 'vgg99'"),
    ("caption-file-missing", ["train-caption", "{missing.csv}", "--out", "{new}"],
     "caption file not found"),
    ("caption-no-images", [*CAP[:3], "{no-text}", *CAP[4:]], "no readable image"),
    ("caption-val-fraction", [*CAP, "--val-fraction", "0"], "--val-fraction must be between"),
    ("caption-val-images", [*CAP, "--val-images", "0"], "--val-images must be a positive"),
    ("caption-no-caption-column", ["train-caption", "{labels.csv}", "--images", "{images}",
                                   "--out", "{new}", "--encoder", "small-cnn"],
     "names no caption column"),
    ("caption-odd-json", ["train-caption", "{odd.json}", "--out", "{new}"],
     "neither COCO captions"),
    ("caption-dropout", [*CAP, "--dropout", "2"], "--dropout must be in [0, 1)"),
    ("caption-attention", [*CAP, "--attention", "hard"], "unknown --attention 'hard'"),
    ("caption-alpha-c", [*CAP, "--alpha-c", "-1"], "--alpha-c must be a number >= 0"),
    # caption
    ("caption-beam-0", [*CAPTION, "--beam", "0"], "--beam, --n-best and --max-len must be"),
    ("caption-temp-nan", [*CAPTION, "--temp", "nan"], "--temp must be a number >= 0"),
    ("caption-alpha", [*CAPTION, "--alpha", "-2"], "--alpha must be a number >= 0"),
    ("caption-n-best", [*CAPTION, "--beam", "2", "--n-best", "3"], "--n-best 3 needs"),
    ("caption-not-image", ["caption", "{images/broken.png}", "-c", "{cap/best.pt}"],
     "broken.png: not an image"),
    ("caption-missing-image", ["caption", "{images/nope.png}", "-c", "{cap/best.pt}"],
     "nope.png: not found"),
    ("caption-no-repeat", [*CAPTION, "--no-repeat-ngram", "-1"],
     "--no-repeat-ngram must be a whole number >= 0"),
    ("caption-plot-under-a-file", [*CAPTION, "--plot-attention", "{a-file}/maps.png"],
     "cannot write"),
    ("translate-no-repeat", [*TRANSLATE, "--no-repeat-ngram", "-2"],
     "--no-repeat-ngram must be a whole number >= 0"),
    ("sample-no-repeat", [*SAMPLE, "--no-repeat-ngram", "-1"],
     "--no-repeat-ngram must be a whole number >= 0"),
    # train-classify
    ("classify-pool", [*CLS, "--pool", "sum"], "unknown --pool 'sum'"),
    ("classify-weights", [*CLS, "--class-weights", "inverse"], "unknown --class-weights"),
    ("classify-select", [*CLS, "--select", "bleu"], "unknown --select 'bleu'"),
    ("classify-bad-row", ["train-classify", "{badrow.tsv}", "--out", "{new}"],
     "badrow.tsv, line 3: 1 field(s)"),
    ("classify-no-data", ["train-classify", "--out", "{new}"], "give a CSV/TSV file"),
    ("classify-class-option", ["train-classify", "--class", "pos", "--out", "{new}"],
     "write it as LABEL=FILE"),
    ("classify-one-class-file", ["train-classify", "--class", "pos={src.txt}", "--out",
                                 "{new}"], "at least two classes"),
    ("classify-columns", ["train-classify", "{captions.csv}", "--out", "{new}"],
     "which column holds the label"),
    ("classify-vectors-missing", [*CLS, "--init-embeddings", "{missing.txt}"],
     "file not found"),
    ("classify-vectors-and-lm", [*CLS, "--init-embeddings", "{src.txt}", "--encoder-from",
                                 "{lm/best.pt}"], "pass one"),
    ("classify-encoder-sizes", [*CLS, "--encoder-from", "{lm/best.pt}", "--hidden", "64"],
     "leave out --hidden"),
    ("classify-encoder-task", [*CLS, "--encoder-from", "{tr/best.pt}"],
     "is a translate checkpoint"),
    ("classify-val-labels", [*CLS, "--val-file", "{otherlabels.tsv}"], "'maybe'"),
    # classify, evaluate-classify
    ("classify-top-0", [*CLASSIFY, "--top", "0"], "--top must be a positive"),
    ("classify-lm-checkpoint", ["classify", "-c", "{lm/best.pt}", "hi"], "is a lm checkpoint"),
    ("classify-input-missing", ["classify", "-c", "{cls/best.pt}", "--input", "{missing.txt}"],
     "file not found"),
    ("evaluate-classify-labels", ["evaluate-classify", "{otherlabels.tsv}", "-c",
                                  "{cls/best.pt}"], "'maybe'"),
    # experiment
    ("experiment-name", ["experiment", "juggle", "--out", "{new}"],
     "unknown experiment 'juggle'"),
    ("experiment-lag", ["experiment", "order", "--lag", "3", "--out", "{new}"],
     "--lag must be a whole number of at least 10"),
    ("experiment-lags", [*EXPERIMENT, "--lags", "ten"], "give whole numbers"),
    ("experiment-cell", [*EXPERIMENT, "--cells", "rnn,transformer"],
     "unknown cell 'transformer'"),
    ("experiment-plot", [*EXPERIMENT, "--plot", "{new}.png"], "pass --grad-norms too"),
    ("experiment-init", [*EXPERIMENT, "--init", "identity"], "for plain RNNs"),
    ("experiment-resume", [*EXPERIMENT, "--resume"], "do not resume"),
    # train-forecast, forecast, evaluate-forecast
    ("fc-horizon-0", [*FC, "--horizon", "0"], "--horizon must be a positive whole number"),
    ("fc-input-too-long", [*FC, "--input-size", "500"], "series 'a' has 60 values"),
    ("fc-unknown-column", ["train-forecast", "{daily.csv}", "--target", "nope", "--out",
                           "{new}"], "no column 'nope'"),
    ("fc-text-target", ["train-forecast", "{daily.csv}", "--target", "name", "--out",
                        "{new}"], "does not hold numbers"),
    ("fc-short-series", ["train-forecast", "{short-series.csv}", "--out", "{new}",
                         "--horizon", "2", "--input-size", "4"], "series 'c' has 5 values"),
    ("fc-quantiles", [*FC, "--quantiles", "0.1,1.5"], "--quantiles must be"),
    ("fc-quantiles-text", [*FC, "--quantiles", "low,high"], "give numbers separated"),
    ("fc-decoder", [*FC, "--model", "wavenet", "--decoder", "seq2seq"],
     "--decoder seq2seq is for the recurrent models"),
    ("fc-decoder-name", [*FC, "--decoder", "attention"], "unknown --decoder 'attention'"),
    ("fc-model", [*FC, "--model", "prophet"], "unknown --model 'prophet'"),
    ("fc-receptive-field", [*FC, "--model", "wavenet", "--dilations", "1", "--input-size",
                            "24"], "the WaveNet sees 2 steps back"),
    ("fc-fill", [*FC, "--fill", "mean"], "unknown --fill 'mean'"),
    ("fc-scale", [*FC, "--scale", "minmax"], "unknown --scale 'minmax'"),
    ("fc-loss", [*FC, "--loss", "hinge"], "unknown --loss 'hinge'"),
    ("fc-select", [*FC, "--select", "accuracy"], "unknown --select 'accuracy'"),
    ("fc-synthetic", ["train-forecast", "--synthetic", "waves", "--out", "{new}"],
     "unknown --synthetic 'waves'"),
    ("fc-file-and-synthetic", [*FC, "--synthetic", "sines"], "not both"),
    ("fc-no-data", ["train-forecast", "--out", "{new}"], "give a data file"),
    ("fc-recursive-covariates", ["train-forecast", "{daily.csv}", "--target", "rail",
                                 "--covariates", "bus", "--decoder", "recursive", "--out",
                                 "{new}", "--input-size", "7"], "feeds back only the target"),
    ("fc-val-size", [*FC, "--horizon", "4", "--val-size", "2"],
     "--val-size must be at least the horizon"),
    ("fc-val-series", [*FC, "--val-series", "2"], "leaves no series to train on"),
    ("fc-season", [*FC, "--season", "0"], "--season must be a positive"),
    ("fc-dropout", [*FC, "--dropout", "2"], "--dropout must be in [0, 1)"),
    ("fc-teacher-forcing", [*FC, "--teacher-forcing", "1.5"], "--teacher-forcing must be"),
    ("esn-units", [*FC, "--model", "esn", "--units", "0"], "--units must be a positive"),
    ("esn-too-many-units", [*FC, "--model", "esn", "--units", "50000"], "--units 50000 is too"),
    ("esn-leak", [*FC, "--model", "esn", "--leak-rate", "1.5"], "--leak-rate must be in"),
    ("esn-density", [*FC, "--model", "esn", "--density", "0"], "--density must be in"),
    ("esn-radius", [*FC, "--model", "esn", "--spectral-radius", "nan"],
     "--spectral-radius must be a number >= 0"),
    ("esn-washout", [*FC, "--model", "esn", "--washout", "-1"], "--washout must be a whole"),
    ("esn-ridge", [*FC, "--model", "esn", "--ridge", "lots"], "--ridge 'lots': give a number"),
    ("esn-seq2seq", [*FC, "--model", "esn", "--decoder", "seq2seq"],
     "an echo state network reads out the horizon directly"),
    ("forecast-no-data", ["forecast", "-c", "{fc/best.pt}"], "give the series to forecast"),
    ("forecast-task", ["forecast", "{series.csv}", "-c", "{lm/best.pt}"],
     "is a lm checkpoint, not a forecast one"),
    ("forecast-show", ["forecast", "{series.csv}", "-c", "{fc/best.pt}", "--show", "-1"],
     "--show must be 0 or more"),
    ("forecast-short-history", ["forecast", "{tiny-series.csv}", "-c", "{fc/best.pt}"],
     "has 2 values before its forecast: the model reads 12"),
    ("evaluate-forecast-test", ["evaluate-forecast", "{series.csv}", "-c", "{fc/best.pt}",
                                "--test", "{other-ids.csv}"],
     "the test file has series the data does not: z"),
    # serve, data, plot
    ("serve-missing", ["serve", "{missing.pt}"], "checkpoint not found"),
    ("serve-port", ["serve", "{lm/best.pt}", "--port", "0"], "--port must be between"),
    ("serve-upload", ["serve", "{lm/best.pt}", "--max-upload", "lots"], "cannot read size"),
    ("data-unknown", ["data", "get", "imagenet"], "unknown dataset 'imagenet'"),
    ("data-timeout", ["data", "get", "ptb", "--timeout", "0"], "--timeout must be"),
    ("data-images", ["data", "get", "ptb", "--with-images"], "is for coco-captions"),
    ("plot-missing", ["plot", "{missing.jsonl}"], "file not found"),
]


def fill(args, user, tmp_path):
    out = []
    for arg in args:
        text = str(arg)
        if text.startswith("{") and "}" in text:
            name, rest = text[1:].split("}", 1)
            text = str(tmp_path / "new-run" if name == "new" else user / name) + rest
        out.append(text)
    return out


@pytest.mark.parametrize("args,message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_users_mistake_is_one_line_and_exit_2(user, tmp_path, monkeypatch, args, message):
    monkeypatch.setenv("SEQGEN_CACHE", str(tmp_path / "cache"))
    # As on a CPU with bfloat16 instructions, where train-lm says it chose bf16.
    monkeypatch.setattr("seqgen.tasks.lm.cpu_has_bf16", lambda: True)
    before = snapshot(user)
    result = invoke(*fill(args, user, tmp_path))
    assert_user_error(result, message)
    assert snapshot(user) == before  # nothing the user had was touched
    if args[:2] == LM[:2]:  # options are checked before the corpus is tokenised
        assert not list((tmp_path / "cache").glob("*.bin"))


def test_the_table_covers_every_command():
    commands = {c[1][0] for c in CASES}
    assert commands >= {"train-lm", "sample", "evaluate-lm", "info", "train-translate",
                        "translate", "train-caption", "caption", "train-classify", "classify",
                        "evaluate-classify", "experiment", "train-forecast", "forecast",
                        "evaluate-forecast"}
    assert len(CASES) >= 50 and len({c[0] for c in CASES}) == len(CASES)


def test_a_truncated_image_in_the_training_set_is_skipped_and_counted(user, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    for path in (user / "images").glob("*.png"):
        (images / path.name).write_bytes(path.read_bytes())
    picture = tmp_path / "whole.jpg"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(picture, quality=95)
    data = picture.read_bytes()
    (images / "0.png").unlink()
    (images / "0.jpg").write_bytes(data[: len(data) // 2])  # verify() passes, decoding fails
    captions = (user / "captions.csv").read_text().replace("0.png,", "0.jpg,")
    (tmp_path / "captions.csv").write_text(captions)
    for encoder in ("small-cnn", "resnet18"):  # decoded images; frozen-encoder features
        result = invoke("train-caption", tmp_path / "captions.csv", "--images", images,
                        "--out", tmp_path / encoder, "--max-steps", 1, "--encoder", encoder,
                        "--no-pretrained", "--min-freq", 1, "--val-fraction", 0.25,
                        "--hidden", 8, "--embed", 8, "--device", "cpu", "--cache-dir",
                        tmp_path / "cache")
        assert result.exit_code == 0, result.output
        assert "skipped 2 unreadable images" in " ".join(result.stderr.split())  # + broken
