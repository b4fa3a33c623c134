"""``--overwrite`` replaces a run only once the new one starts training: a mistake found at
any check before that (options, data, sizes, devices) leaves the old run byte for byte."""

import hashlib
from pathlib import Path

import pytest
from helpers import assert_user_error, invoke

from seqgen.data.synthetic import scenes

QUIET = ["--quiet", "--device", "cpu"]
SMALL = ["--hidden", 8, "--embed", 8, *QUIET]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("overwrite")
    lines = [s.english() for s in scenes(80, 4)]
    (root / "corpus.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "one.txt").write_text("a", encoding="utf-8")
    (root / "empty.txt").write_text("", encoding="utf-8")
    (root / "pairs.tsv").write_text("".join(f"{s.english()}\t{s.spanish()}\n"
                                            for s in scenes(40, 5)), encoding="utf-8")
    reviews = "".join(f"{'pos' if 'red' in t else 'neg'}\t{t}\n" for t in lines[:40])
    (root / "reviews.tsv").write_text("label\ttext\n" + reviews, encoding="utf-8")
    (root / "onelabel.tsv").write_text("label\ttext\n" + "".join(
        f"pos\t{t}\n" for t in lines[:10]), encoding="utf-8")
    (root / "otherlabels.tsv").write_text("label\ttext\nmaybe\tso so\n", encoding="utf-8")
    images = root / "images"
    images.mkdir()
    for i, scene in enumerate(scenes(8, 6)):
        scene.render(32).save(images / f"{i}.png")
    (root / "captions.csv").write_text("image,caption\n" + "".join(
        f"{i}.png,{s.english()}\n" for i, s in enumerate(scenes(8, 6))), encoding="utf-8")
    (root / "elsewhere.csv").write_text("image,caption\nnowhere.png,a red circle\n",
                                        encoding="utf-8")
    for command in (
        ["train-lm", root / "corpus.txt", "--out", root / "lm", "--max-steps", 2,
         "--layers", 1, "--batch-size", 4, "--bptt", 8, *SMALL],
        ["train-translate", root / "pairs.tsv", "--out", root / "tr", "--max-steps", 2,
         "--min-freq", 1, "--batch-size", 4, *SMALL],
        ["train-classify", root / "reviews.tsv", "--out", root / "cls", "--max-steps", 2,
         *SMALL],
        ["train-caption", root / "captions.csv", "--images", images, "--out", root / "cap",
         "--max-steps", 2, "--encoder", "small-cnn", "--min-freq", 1, "--val-fraction", 0.25,
         "--batch-size", 4, *SMALL],
        ["experiment", "adding", "--lags", "5,6", "--cells", "rnn", "--max-steps", 2,
         "--hidden", 4, "--out", root / "table", *QUIET],
    ):
        done = invoke(*command)
        assert done.exit_code == 0, done.output
    return root


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


LM = ["train-lm", "{corpus.txt}", "--out", "{lm}", "--overwrite", *QUIET]
TR = ["train-translate", "{pairs.tsv}", "--out", "{tr}", "--overwrite", *QUIET]
CLS = ["train-classify", "{reviews.tsv}", "--out", "{cls}", "--overwrite", *QUIET]
CAP = ["train-caption", "{captions.csv}", "--images", "{images}", "--out", "{cap}",
       "--encoder", "small-cnn", "--overwrite", *QUIET]
TABLE = ["experiment", "adding", "--lags", "5,6", "--cells", "rnn", "--out", "{table}",
         "--overwrite"]

CASES = [
    ("lm", "lm-option", [*LM, "--hidden", "0"], "--hidden must be a positive"),
    ("lm", "lm-device", [*LM[:-2], "--device", "cuda"], "no CUDA GPU"),
    ("lm", "lm-empty-corpus", ["train-lm", "{empty.txt}", *LM[2:]], "empty"),
    ("lm", "lm-short-validation", [*LM, "--val-file", "{one.txt}"], "too short"),
    ("tr", "tr-max-len", [*TR, "--max-len", "1"], "longer than --max-len 1"),
    ("tr", "tr-missing", ["train-translate", "{nothing.tsv}", *TR[2:]], "not found"),
    ("cls", "cls-one-class", ["train-classify", "{onelabel.tsv}", *CLS[2:]],
     "one class only"),
    ("cls", "cls-val-labels", [*CLS, "--val-file", "{otherlabels.tsv}"], "label(s) 'maybe'"),
    ("cls", "cls-vectors", [*CLS, "--init-embeddings", "{nothing.vec}"], "not found"),
    ("cap", "cap-no-images", ["train-caption", "{elsewhere.csv}", *CAP[2:]],
     "no readable image"),
    ("cap", "cap-encoder", [*CAP[:6], "--encoder", "vgg1", "--overwrite", *QUIET],
     "vgg1"),
    ("table", "table-device", [*TABLE, "--device", "cuda"], "no CUDA GPU"),
]


@pytest.mark.parametrize("folder,case,args,text", CASES, ids=[c[1] for c in CASES])
def test_a_failed_check_after_overwrite_leaves_the_old_run(runs, folder, case, args, text):
    before = snapshot(runs / folder)
    assert any(name.endswith("best.pt") for name in before)
    command = [str(runs / a[1:-1]) if a.startswith("{") else a for a in map(str, args)]
    assert_user_error(invoke(*command), text)
    assert snapshot(runs / folder) == before


def test_overwrite_replaces_the_run_once_it_trains(runs, tmp_path):
    import shutil

    out = tmp_path / "lm"
    shutil.copytree(runs / "lm", out)
    old = (out / "metrics.jsonl").read_text()
    done = invoke("train-lm", runs / "corpus.txt", "--out", out, "--overwrite",
                  "--max-steps", 1, "--layers", 1, "--batch-size", 4, "--bptt", 8,
                  "--eval-every", 1, *SMALL)
    assert done.exit_code == 0, done.output
    new = (out / "metrics.jsonl").read_text()
    assert new != old and '"step": 2' not in new  # the old run's rows are gone
