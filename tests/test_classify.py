"""Sentence classification: the data layouts, the model's pooling, training to an exact fit,
pretrained starts, and the three commands end to end."""

import json

import pytest
import torch
from helpers import SHARED_DATA, assert_user_error, invoke

from seqgen.calibration import expected_calibration_error, fit_temperature, with_temperature
from seqgen.config import ClassifierConfig
from seqgen.data.labelled import (
    LabelledData,
    ordered_labels,
    read_labelled,
    split_labelled,
)
from seqgen.data.vectors import read_vectors
from seqgen.errors import UserError
from seqgen.metrics import classification_scores
from seqgen.models.classifier import ClassifierEnsemble, SequenceClassifier
from seqgen.tasks.classify import ClassifyTask, balanced_weights, load_classifier

TINY = ["--hidden", "16", "--embed", "16", "--quiet", "--device", "cpu"]

# A separable toy set: the sentiment word decides, the rest is shared filler.
GOOD = ["great", "wonderful", "superb", "lovely", "brilliant"]
BAD = ["awful", "dreadful", "boring", "terrible", "dull"]


def toy_rows():
    fillers = ["the film was {}", "a {} story", "{} acting and a plot", "it is {} indeed",
               "what a {} ending"]
    rows = [("pos", f.format(w)) for f in fillers for w in GOOD]
    rows += [("neg", f.format(w)) for f in fillers for w in BAD]
    return rows


@pytest.fixture
def toy_tsv(tmp_path):
    path = tmp_path / "toy.tsv"
    path.write_text("label\ttext\n" + "".join(f"{y}\t{t}\n" for y, t in toy_rows()),
                    encoding="utf-8")
    return path


# ------------------------------------------------------------------------- layouts
def test_a_tsv_keeps_quotes_as_text_and_a_csv_reads_quoted_fields(tmp_path):
    tsv = tmp_path / "a.tsv"
    tsv.write_text('label\ttext\nneg\tthis is no " waterboy ! "\npos\tfine\n', encoding="utf-8")
    data = read_labelled(tsv)
    assert data.texts == ['this is no " waterboy ! "', "fine"] and data.labels == ["neg", "pos"]
    csv = tmp_path / "b.csv"
    csv.write_text('id,review,sentiment\n1,"good, even great",positive\n'
                   '2,"a ""bad"" one",negative\n', encoding="utf-8")
    data = read_labelled(csv)  # columns found by name, wherever they are
    assert data.texts == ["good, even great", 'a "bad" one']
    assert data.labels == ["positive", "negative"]
    chosen = read_labelled(csv, text_column="id", label_column="sentiment")
    assert chosen.texts == ["1", "2"]


def test_one_file_per_class_in_cp1252_keeps_the_ellipsis_inside_its_line(tmp_path):
    pos, neg = tmp_path / "rt.pos", tmp_path / "rt.neg"
    pos.write_bytes(b"a remarkable film \x85 because you get it .\r\nwarm and funny .\n\n")
    neg.write_bytes(b"dull .\n")
    data = read_labelled(classes={"pos": pos, "neg": neg}, encoding="cp1252")
    assert data.texts == ["a remarkable film … because you get it .", "warm and funny .",
                          "dull ."]
    assert data.labels == ["pos", "pos", "neg"]
    with pytest.raises(UserError, match="not utf-8 text.*--encoding"):
        read_labelled(classes={"pos": pos, "neg": neg})


def test_a_folder_per_class_reads_one_example_per_file(tmp_path):
    for label, texts in {"pos": ["loved it<br /><br />truly", "fine"], "neg": ["meh"]}.items():
        (tmp_path / label).mkdir()
        for i, text in enumerate(texts):
            (tmp_path / label / f"{i}_7.txt").write_text(text, encoding="utf-8")
    (tmp_path / "unsup").mkdir()  # IMDB's unlabelled reviews
    (tmp_path / "unsup" / "0_0.txt").write_text("no label", encoding="utf-8")
    (tmp_path / "urls_pos.txt").write_text("http://x\n", encoding="utf-8")
    data = read_labelled(tmp_path)
    assert sorted(zip(data.labels, data.texts)) == [
        ("neg", "meh"), ("pos", "fine"), ("pos", "loved it truly")]
    assert any("unsup" in note for note in data.notes)
    (tmp_path / "neg" / "9_1.txt").write_text(" \n", encoding="utf-8")
    with pytest.raises(UserError, match="9_1.txt: empty example"):
        read_labelled(tmp_path)
    assert read_labelled(tmp_path, skip_bad_lines=True).skipped == 1


def test_bad_rows_are_named_with_file_and_line(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("label\ttext\npos\tok\nneg\n\npos\t \n", encoding="utf-8")
    with pytest.raises(UserError, match=r"bad.tsv, line 3: 1 field\(s\)"):
        read_labelled(path)
    kept = read_labelled(path, skip_bad_lines=True)
    assert kept.texts == ["ok"] and kept.skipped == 2
    (tmp_path / "h.csv").write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(UserError, match="which column holds the label"):
        read_labelled(tmp_path / "h.csv")


def test_the_held_out_share_is_stratified(toy_tsv):
    data = read_labelled(toy_tsv)
    train, val = split_labelled(data, 0.2, seed=3)
    assert sorted(val.labels) == ["neg"] * 5 + ["pos"] * 5
    assert len(train) + len(val) == len(data) and not set(train.texts) & set(val.texts)
    small = LabelledData(["a", "b", "c", "d"], ["x", "x", "y", "y"])
    train, val = split_labelled(small, 0.9, seed=0)  # each class keeps a training example
    assert sorted(train.labels) == sorted(val.labels) == ["x", "y"]


def test_the_real_rotten_tomatoes_layouts_agree():
    root = SHARED_DATA / "rt-polarity"
    if not root.is_dir():
        pytest.skip("../shared/data is not here")
    table = read_labelled(root / "train.tsv")
    raw = read_labelled(classes={"pos": root / "train-raw.pos", "neg": root / "train-raw.neg"},
                        encoding="cp1252")
    assert len(table) == len(raw) == 8530
    assert sorted(table.labels) == sorted(raw.labels)


# ------------------------------------------------------------------------- the model
@pytest.mark.parametrize("pool", ["last", "mean", "max", "attention"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_pooling_reads_only_the_real_steps(pool, cell):
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(3, vocab_size=20, cell=cell, embed=8,
                                                hidden=8, layers=2, pool=pool)).eval()
    short = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0, 0], [8, 9, 10, 11, 12, 13]])
    alone = model(short, torch.tensor([3]))
    together = model(padded, torch.tensor([3, 6]))
    assert torch.allclose(alone[0], together[0], atol=1e-6)


def test_last_pooling_takes_the_top_layers_state_at_each_texts_own_end():
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(2, vocab_size=20, embed=8, hidden=6, layers=2,
                                                pool="last")).eval()
    tokens = torch.tensor([[5, 6, 7, 0, 0], [8, 9, 10, 11, 12]])
    lengths = torch.tensor([3, 5])
    out, last = model.encode(model.embed(tokens), lengths)
    assert torch.allclose(last[0, :6], out[0, 2, :6]) and torch.allclose(last[1, :6],
                                                                         out[1, 4, :6])
    assert torch.allclose(last[:, 6:], out[:, 0, 6:])  # the backward direction ends at 0


def test_class_weights_balance_the_classes_and_enter_the_loss():
    assert balanced_weights([0, 0, 0, 1], 2) == [4 / 6, 2.0]
    model = SequenceClassifier(ClassifierConfig(2, vocab_size=10, embed=4, hidden=4))
    batch = (torch.tensor([[4, 5], [6, 7]]), torch.tensor([2, 2]), torch.tensor([0, 1]))
    torch.manual_seed(0)
    model.eval()
    plain = ClassifyTask(["a", "b"], None).loss(model, batch, None)[0]
    weighted = ClassifyTask(["a", "b"], None, [1.0, 3.0]).loss(model, batch, None)[0]
    logits = model(batch[0], batch[1])
    each = torch.nn.functional.cross_entropy(logits, batch[2], reduction="none")
    assert torch.allclose(plain, each.sum())
    assert torch.allclose(weighted, each[0] + 3 * each[1])


def test_scores_count_only_the_classes_that_occur_and_labels_sort_by_number():
    scores = classification_scores([1, 1, 2], [1, 1, 1], 3)
    assert scores["confusion"] == [[0, 0, 0], [0, 2, 1], [0, 0, 0]]
    assert scores["accuracy"] == 2 / 3
    assert abs(scores["macro_f1"] - (0.8 + 0.0) / 2) < 1e-9  # class 0 occurs nowhere
    assert classification_scores([0, 0], [0, 0], 2)["macro_f1"] == 1.0
    assert ordered_labels(["10", "2", "1", "1.0"]) == ["1", "1.0", "2", "10"]
    assert ordered_labels(["neg", "pos", "10"]) == ["10", "neg", "pos"]


def test_word_vectors_are_read_for_the_vocabulary_only(tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text("3 2\nthe 0.5 1.5\nGood 2 2\n. . . 7 7\ngood 3 3\nzebra 9 9\n",
                    encoding="utf-8")  # GloVe 840B has tokens with spaces
    vectors, found = read_vectors(path, ["<pad>", "the", "good", "Bad", "bad", ". . ."])
    assert found.tolist() == [False, True, True, False, False, True]
    assert vectors[5].tolist() == [7.0, 7.0]
    assert vectors[1].tolist() == [0.5, 1.5] and vectors[2].tolist() == [3.0, 3.0]
    vectors, found = read_vectors(path, ["GOOD", "good"])  # a lowercased match, exact wins
    assert vectors[0].tolist() == [2.0, 2.0] and vectors[1].tolist() == [3.0, 3.0]
    (tmp_path / "ragged.txt").write_text("the 1 2\ngood 1\n", encoding="utf-8")
    with pytest.raises(UserError, match="ragged.txt, line 2: 1 numbers"):
        read_vectors(tmp_path / "ragged.txt", ["the", "good"])


# ------------------------------------------------------------------------- training and use
def test_ensemble_members_train_on_their_own_losses_and_predict_their_mean():
    torch.manual_seed(0)
    model = ClassifierEnsemble(ClassifierConfig(3, vocab_size=10, embed=4, hidden=4,
                                                members=3))
    model.eval()
    batch = (torch.tensor([[4, 5, 6], [6, 7, 0]]), torch.tensor([3, 2]), torch.tensor([0, 2]))
    each = [m(batch[0], batch[1]) for m in model.members]
    assert not torch.allclose(each[0], each[1])  # each member starts from its own weights
    mean = torch.stack([logits.softmax(-1) for logits in each]).mean(0)
    assert torch.allclose(model(batch[0], batch[1]).softmax(-1), mean, atol=1e-6)
    # the loss is the members' mean cross-entropy, not that of their mixture
    task = ClassifyTask(["a", "b", "c"], None, members=3)
    own = sum(ClassifyTask(["a", "b", "c"], None).loss(m, batch, None)[0]
              for m in model.members) / 3
    assert torch.allclose(task.loss(model, batch, None)[0], own)
    mixture = torch.nn.functional.nll_loss(mean.log(), batch[2], reduction="sum")
    assert not torch.allclose(own, mixture)


def test_a_tiny_classifier_learns_a_separable_set_exactly(toy_tsv, tmp_path):
    out = tmp_path / "run"
    result = invoke("train-classify", toy_tsv, "--val-file", toy_tsv, "--out", out,
                    "--max-steps", 150, "--batch-size", 10, "--lr", 0.01, "--dropout", 0,
                    "--eval-every", 50, *TINY)
    assert result.exit_code == 0, result.output
    saved = torch.load(out / "best.pt", weights_only=True)  # by default, three members
    assert saved["model_config"]["members"] == 3
    assert {k.split(".")[1] for k in saved["model_state"]} == {"0", "1", "2"}
    assert isinstance(load_classifier(out / "best.pt", "cpu")[0].model, ClassifierEnsemble)
    evaluated = invoke("evaluate-classify", toy_tsv, "-c", out / "best.pt", "--json")
    report = json.loads(evaluated.stdout)
    assert report["accuracy"] == 1.0 and report["macro_f1"] == 1.0
    assert report["confusion"] == [[25, 0], [0, 25]] and report["labels"] == ["neg", "pos"]
    shown = invoke("evaluate-classify", toy_tsv, "-c", out / "best.pt")
    assert "accuracy 100.00%" in shown.stdout and "true \\ predicted" in shown.stdout

    said = invoke("classify", "a superb story", "what a dreadful ending", "-c",
                  out / "best.pt", "--top", 2)
    lines = said.stdout.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["pos", "neg"]
    first = lines[0].split("\t")
    assert first[2] == "neg" and abs(float(first[1]) + float(first[3]) - 1) < 2e-3
    piped = invoke("classify", "-c", out / "best.pt", "--json",
                   input="the film was lovely\n\nit is boring indeed\n")
    rows = [json.loads(line) for line in piped.stdout.splitlines()]
    assert rows[0]["labels"][0]["label"] == "pos" and rows[1] == {}
    assert rows[2]["labels"][0]["label"] == "neg" and len(rows[2]["labels"]) == 1
    info = invoke("info", out / "best.pt")
    assert "classes" in info.stdout and "neg, pos" in info.stdout
    resumed = invoke("train-classify", toy_tsv, "--val-file", toy_tsv, "--out", out,
                     "--max-steps", 160, "--resume", "--quiet", "--device", "cpu")
    assert resumed.exit_code == 0, resumed.output
    assert torch.load(out / "last.pt", weights_only=True)["model_config"]["members"] == 3
    assert_user_error(invoke("train-classify", toy_tsv, "--members", 0, "--out",
                             tmp_path / "x"), "--members must be")


def test_the_most_confidently_wrong_examples_come_first(toy_tsv, tmp_path):
    out = tmp_path / "run"
    assert invoke("train-classify", toy_tsv, "--out", out, "--max-steps", 150, "--batch-size",
                  10, "--lr", 0.01, "--dropout", 0, "--val-fraction", 0.2, *TINY
                  ).exit_code == 0
    flipped = tmp_path / "flipped.tsv"
    flipped.write_text("label\ttext\nneg\ta superb story\nneg\tthe film was great\n"
                       "pos\tit is dull indeed\n", encoding="utf-8")
    report = json.loads(invoke("evaluate-classify", flipped, "-c", out / "best.pt",
                               "--json").stdout)
    wrong = report["confidently_wrong"]
    assert report["accuracy"] == 0.0 and len(wrong) == 3
    assert report["confusion"] == [[0, 2], [1, 0]]  # rows: the true class (neg, pos)
    assert [c["support"] for c in report["per_class"]] == [2, 1]
    assert [w["probability"] for w in wrong] == sorted((w["probability"] for w in wrong),
                                                       reverse=True)


def test_init_embeddings_and_encoder_from_start_the_model_from_what_was_given(
        toy_tsv, tmp_path):
    vocab_words = sorted({w for _, t in toy_rows() for w in t.split()})
    vectors = tmp_path / "vectors.txt"
    vectors.write_text("".join(f"{w} {i}.5 {-i} 1 2\n" for i, w in enumerate(vocab_words)),
                       encoding="utf-8")
    out = tmp_path / "glove"
    result = invoke("train-classify", toy_tsv, "--out", out, "--max-steps", 1, "--lr", 1e-9,
                    "--init-embeddings", vectors, "--embed", 4, "--hidden", 8, "--quiet",
                    "--device", "cpu")
    assert result.exit_code == 0, result.output
    saved = torch.load(out / "last.pt", weights_only=True)
    itos = saved["tokenizer"]["itos"]
    assert saved["model_config"]["members"] == 3
    for member in range(3):  # every member of the ensemble starts from the vectors
        weight = saved["model_state"][f"members.{member}.embedding.weight"]
        for i, word in enumerate(vocab_words):
            assert torch.allclose(weight[itos.index(word)], torch.tensor([i + 0.5, -i, 1, 2]),
                                  atol=1e-5)

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(t for _, t in toy_rows()) * 4 + "\n", encoding="utf-8")
    lm = tmp_path / "lm"
    assert invoke("train-lm", corpus, "--level", "word", "--out", lm, "--max-steps", 5,
                  "--layers", 1, "--hidden", 12, "--embed", 6, "--batch-size", 4, "--bptt", 8,
                  "--quiet", "--device", "cpu").exit_code == 0
    out = tmp_path / "ulm"
    result = invoke("train-classify", toy_tsv, "--out", out, "--max-steps", 1, "--lr", 1e-9,
                    "--encoder-from", lm / "best.pt", "--bidirectional", "--quiet", "--device",
                    "cpu")
    assert result.exit_code == 0, result.output
    start = torch.load(lm / "best.pt", weights_only=True)
    saved = torch.load(out / "last.pt", weights_only=True)
    assert saved["tokenizer"] == start["tokenizer"]
    assert saved["model_config"]["hidden"] == 12 and saved["model_config"]["bidirectional"]
    for member in range(3):
        for name in ("embedding.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0",
                     "rnn.bias_hh_l0"):
            assert torch.allclose(saved["model_state"][f"members.{member}.{name}"],
                                  start["model_state"][name],
                                  atol=1e-6), name  # the forward direction is the LM's
    assert "members.0.rnn.weight_ih_l0_reverse" in saved["model_state"]  # the backward: fresh
    one_way = tmp_path / "one-way"  # by default, the LM's one direction
    assert invoke("train-classify", toy_tsv, "--out", one_way, "--max-steps", 1,
                  "--encoder-from", lm / "best.pt", "--quiet", "--device", "cpu").exit_code == 0
    saved = torch.load(one_way / "last.pt", weights_only=True)
    assert not saved["model_config"]["bidirectional"]
    assert not any("reverse" in name for name in saved["model_state"])


def test_train_classify_reads_one_file_per_class(tmp_path):
    pos, neg = tmp_path / "a.pos", tmp_path / "a.neg"
    pos.write_text("\n".join(t for y, t in toy_rows() if y == "pos") + "\n", encoding="utf-8")
    neg.write_text("\n".join(t for y, t in toy_rows() if y == "neg") + "\n", encoding="utf-8")
    result = invoke("train-classify", "--class", f"pos={pos}", "--class", f"neg={neg}",
                    "--out", tmp_path / "run", "--max-steps", 2, "--class-weights", "auto",
                    *TINY)
    assert result.exit_code == 0, result.output
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert saved["labels"] == ["neg", "pos"] and saved["run"]["class_weights"] == "auto"


# ------------------------------------------------------------------------- calibration
def test_the_calibration_error_weighs_each_bins_gap_by_its_share():
    probs = torch.tensor([[0.1, 0.9], [0.1, 0.9], [0.4, 0.6], [0.6, 0.4]])
    # bin of 0.9: two predictions, one right (gap 0.4); bin of 0.6: two, both right (0.4)
    assert expected_calibration_error(probs, [1, 0, 1, 0]) == pytest.approx(0.4)
    assert expected_calibration_error(probs, [1, 1, 1, 0]) == pytest.approx(
        (2 * 0.1 + 2 * 0.4) / 4)


def test_temperature_scaling_recovers_the_temperature_the_labels_were_drawn_with():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4000, 3, generator=generator) * 4
    gold = torch.multinomial((logits / 2.5).softmax(-1), 1, generator=generator)[:, 0].tolist()
    over_confident = logits.softmax(-1)
    temperature = fit_temperature(over_confident, gold)
    assert temperature == pytest.approx(2.5, rel=0.1)
    calibrated = with_temperature(over_confident, temperature)
    assert torch.equal(calibrated.argmax(-1), over_confident.argmax(-1))
    assert expected_calibration_error(calibrated, gold) < 0.5 * expected_calibration_error(
        over_confident, gold)


def test_training_stores_a_temperature_that_classify_applies(toy_tsv, tmp_path):
    """Trained to certainty on clean data, the model meets validation labels of which one in
    five is flipped: the temperature fitted for its last weights softens what every command
    gives."""
    rows = toy_rows()
    noisy = tmp_path / "noisy.tsv"
    noisy.write_text("label\ttext\n" + "".join(
        f"{('neg' if y == 'pos' else 'pos') if i % 5 == 0 else y}\t{t}\n"
        for i, (y, t) in enumerate(rows)), encoding="utf-8")
    out = tmp_path / "run"
    assert invoke("train-classify", toy_tsv, "--val-file", noisy, "--out", out, "--max-steps",
                  300, "--batch-size", 10, "--lr", 0.02, "--dropout", 0,
                  "--word-dropout", 0, "--ema", 0, "--members", 1, *TINY).exit_code == 0
    for name in ("best.pt", "last.pt"):  # best.pt: an earlier, less certain model
        stored = torch.load(out / name, weights_only=True)["calibration"]
        assert stored["ece_after"] < stored["ece_before"] and stored["examples"] == 50
    last = out / "last.pt"
    report = json.loads(invoke("evaluate-classify", noisy, "-c", last,
                               "--json").stdout)
    assert report["temperature"] > 1.5 and report["ece"] < report["ece_uncalibrated"]
    assert report["confidently_wrong"][0]["probability"] < 0.95
    shown = invoke("evaluate-classify", noisy, "-c", last).stdout
    assert f"temperature {report['temperature']:.2f} fitted on validation" in shown

    classifier, _ = load_classifier(last, "cpu")
    classifier.temperature = 1.0
    raw = classifier.probabilities(["a superb story"])
    said = invoke("classify", "a superb story", "-c", last, "--json").stdout
    top = json.loads(said)["labels"][0]["probability"]
    assert top == pytest.approx(float(with_temperature(raw, report["temperature"]).max()),
                                abs=1e-3)
    assert top < float(raw.max())


def test_word_dropout_hides_words_in_training_only_and_never_padding():
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(2, vocab_size=50, embed=8, hidden=8,
                                                word_dropout=0.5))
    tokens = torch.randint(4, 50, (64, 30))
    tokens[:, 20:] = 0  # padding
    table = model.embedding.weight
    seen = model.embed(tokens)
    hidden = (seen == table[1]).all(-1)  # read as <unk>
    assert 0.4 < float(hidden[:, :20].float().mean()) < 0.6
    assert not bool(hidden[:, 20:].any())
    model.eval()
    assert torch.equal(model.embed(tokens), model.embedding(tokens))
