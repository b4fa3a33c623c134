import json

import pytest
import torch
from helpers import SHARED_DATA, assert_user_error, invoke

from seqgen.config import TrainConfig
from seqgen.data.batching import bucket_batches, pad_batch
from seqgen.data.pairs import PairBatches, read_parallel_files, read_tsv_pairs
from seqgen.decoding import beam_search
from seqgen.errors import UserError
from seqgen.metrics import corpus_bleu, corpus_chrf, group_references
from seqgen.models.seq2seq import Seq2Seq, Seq2SeqConfig
from seqgen.tasks.supervised import masked_token_loss
from seqgen.tasks.translate import (
    NEVER,
    PairOptions,
    TranslateTask,
    Translator,
    load_translator,
    read_pairs,
    split_by_source,
    train_translate,
)
from seqgen.tokenizers import BOS_ID, EOS_ID, build_tokenizer

PAIRS = [
    ("I am cold.", "Tengo frío."),
    ("I am hungry.", "Tengo hambre."),
    ("Where is the station?", "¿Dónde está la estación?"),
    ("Where is the dog?", "¿Dónde está el perro?"),
    ("The dog is hungry.", "El perro tiene hambre."),
    ("The cat is cold.", "El gato tiene frío."),
    ("Where is the cat?", "¿Dónde está el gato?"),
    ("I see the station.", "Veo la estación."),
]


def write_tsv(path, pairs, extra=""):
    path.write_text("".join(f"{s}\t{t}{extra}\n" for s, t in pairs), encoding="utf-8")
    return path


# ---------------------------------------------------------------------- readers
def test_tsv_reader_keeps_two_columns_reverses_and_skips_blank_lines(tmp_path):
    path = tmp_path / "p.tsv"
    path.write_text("Go.\tVe.\tCC-BY 2.0 (France)\n\nHi.\tHola.\n", encoding="utf-8")
    assert read_tsv_pairs(path).pairs == [("Go.", "Ve."), ("Hi.", "Hola.")]
    assert read_tsv_pairs(path, reverse=True).pairs == [("Ve.", "Go."), ("Hola.", "Hi.")]


@pytest.mark.parametrize("line,problem", [("no tab here", "no tab"),
                                          ("\tHola.", "empty source"),
                                          ("Hi.\t ", "empty target")])
def test_tsv_reader_names_file_and_line_of_a_bad_line(tmp_path, line, problem):
    path = tmp_path / "bad.tsv"
    path.write_text(f"Go.\tVe.\n{line}\nHi.\tHola.\n", encoding="utf-8")
    with pytest.raises(UserError, match=rf"bad\.tsv, line 2: {problem}"):
        read_tsv_pairs(path)
    data = read_tsv_pairs(path, skip_bad_lines=True)
    assert data.pairs == [("Go.", "Ve."), ("Hi.", "Hola.")] and data.skipped == 1


def test_parallel_files_reader_and_its_errors(tmp_path):
    src, tgt = tmp_path / "a.en", tmp_path / "a.es"
    src.write_text("Go.\nHi.\n", encoding="utf-8")
    tgt.write_text("Ve.\nHola.\n", encoding="utf-8")
    assert read_parallel_files(src, tgt).pairs == [("Go.", "Ve."), ("Hi.", "Hola.")]
    assert read_pairs(source_file=src, target_file=tgt, reverse=True).pairs[0] == ("Ve.", "Go.")
    tgt.write_text("Ve.\n", encoding="utf-8")
    with pytest.raises(UserError, match="a.en has 2 lines but .*a.es has 1"):
        read_parallel_files(src, tgt)
    tgt.write_text("Ve.\n\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"a\.es, line 2: empty line"):
        read_parallel_files(src, tgt)
    assert read_parallel_files(src, tgt, skip_bad_lines=True).skipped == 1
    with pytest.raises(UserError, match="not both"):
        read_pairs(src, source_file=src, target_file=tgt)


def test_real_tatoeba_dev_reads_and_groups_references():
    path = SHARED_DATA / "tatoeba-eng-spa" / "dev.tsv"
    if not path.exists():
        pytest.skip("../shared/data is not beside the project")
    pairs = read_tsv_pairs(path).pairs
    assert len(pairs) == 2330
    sources, refs = group_references(pairs)
    assert len(sources) < len(pairs) and sum(map(len, refs)) == len(pairs)
    assert max(map(len, refs)) > 1


def test_split_by_source_keeps_all_translations_of_a_source_together():
    pairs = [(f"s{i % 20}", f"t{i}") for i in range(100)]
    train, val = split_by_source(pairs, 0.2, seed=0)
    assert len(train) + len(val) == 100
    assert not {s for s, _ in train} & {s for s, _ in val}
    assert len({s for s, _ in val}) == 4


# --------------------------------------------------------------------- batching
def test_pad_batch_and_bucketing():
    x, lengths = pad_batch([[5, 6], [7]], bos=True, eos=True)
    assert x.tolist() == [[BOS_ID, 5, 6, EOS_ID], [BOS_ID, 7, EOS_ID, 0]]
    assert lengths.tolist() == [4, 3]
    lengths = [(i * 7) % 31 + 1 for i in range(1000)]
    batches = bucket_batches(lengths, 16, torch.Generator().manual_seed(0))
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert len(batches) == 63
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert padded < 1.1 * sum(lengths)  # bucketing keeps padding small
    again = bucket_batches(lengths, 16, torch.Generator().manual_seed(0))
    assert again == batches


def test_pair_batches_resume_on_the_same_batch():
    data = PairBatches([[4 + i % 5] * (1 + i % 7) for i in range(50)],
                       [[5] * (1 + i % 3) for i in range(50)], batch_size=8, seed=3)
    full = list(data.batches(epoch=2))
    assert len(full) == len(data) == 7
    rest = list(data.batches(epoch=2, start=4))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(full[4:], rest))
    src, src_lens, tgt = full[0]
    assert (src_lens == (src != 0).sum(1)).all()
    # The targets a batch's loss is summed over: every target token and <eos>, no padding.
    from seqgen.tasks.translate import TranslateTask

    lengths = [len(data.targets[i]) + 1 for i in data.index_batches(2)[0]]
    assert TranslateTask(None, None).count_targets(full[0]) == sum(lengths)


def test_pair_batches_hold_few_source_lengths():
    # bucketed by the source first: the encoder runs each length of a batch without packing
    g = torch.Generator().manual_seed(0)
    sources = [[4] * int(n) for n in torch.randint(1, 20, (2000,), generator=g)]
    targets = [[5] * max(1, len(s) + int(d)) for s, d in
               zip(sources, torch.randint(-3, 4, (2000,), generator=g))]
    data = PairBatches(sources, targets, batch_size=32, seed=0)
    batches = list(data.batches())
    assert sum(len(b[1].unique()) for b in batches) / len(batches) < 2
    real = sum(len(t) + 2 for t in targets)  # with <bos> and <eos>
    assert sum(b[2].numel() for b in batches) < 1.25 * real  # the targets stay bucketed


# ---------------------------------------------------------------------- metrics
def test_bleu_and_chrf_match_sacrebleu_with_several_references():
    import sacrebleu

    hyps = ["the cat sat on the mat today", "a dog ran in the big park"]
    refs = [["the cat sat on the mat today"],
            ["a dog ran in the park", "a dog ran in the big park"]]
    assert corpus_bleu(hyps, refs) == pytest.approx(100.0)
    one_ref = sacrebleu.corpus_bleu(hyps, [["the cat sat on the mat today",
                                            "a dog ran in the park"]]).score
    assert corpus_bleu(hyps, [[r[0]] for r in refs]) == pytest.approx(one_ref)
    assert one_ref < 100
    assert corpus_chrf(hyps, [[r[0]] for r in refs]) == pytest.approx(
        sacrebleu.corpus_chrf(hyps, [["the cat sat on the mat today",
                                      "a dog ran in the park"]]).score)
    assert corpus_bleu(["The Cat sat on the mat today"], [["the cat sat on the mat today"]],
                       lowercase=True) == pytest.approx(100.0)


# ------------------------------------------------------------------------ model
def tiny_model(attention="luong", input_feeding=False, cell="gru", seed=0):
    torch.manual_seed(seed)
    return Seq2Seq(Seq2SeqConfig(src_vocab=20, tgt_vocab=15, cell=cell, embed=8, hidden=16,
                                 attention=attention, input_feeding=input_feeding,
                                 dropout=0.0)).eval()


@pytest.mark.parametrize("attention", ["luong", "concat", "none"])
@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_fused_training_pass_equals_step_by_step_decoding(attention, cell):
    model = tiny_model(attention, cell=cell)
    src = torch.tensor([[4, 5, 6, 3], [7, 8, 3, 0]])
    lens = torch.tensor([4, 3])
    tgt = torch.tensor([[BOS_ID, 4, 5, 6], [BOS_ID, 7, 8, 9]])
    fused = model(src, lens, tgt)
    state = model.start(src, lens)
    for t in range(tgt.size(1)):
        logits, state = model.step(tgt[:, t], state)
        assert torch.allclose(logits, fused[:, t], atol=1e-5)
    # Padding after the end of the shorter source changes nothing.
    longer = torch.cat([src, torch.zeros(2, 3, dtype=torch.long)], 1)
    assert torch.allclose(model(longer, lens, tgt), fused, atol=1e-5)



@pytest.mark.parametrize("input_feeding", [False, True])
def test_training_logits_skip_padding_and_keep_the_loss(input_feeding):
    """Training computes the output layer only where the target is a real token; the loss
    and the logits there are those of the full (B, T, V) pass."""
    model = tiny_model(input_feeding=input_feeding)
    src = torch.tensor([[4, 5, 6, 3], [7, 8, 3, 0]])
    lens = torch.tensor([4, 3])
    tgt = torch.tensor([[BOS_ID, 4, 5, 6, EOS_ID], [BOS_ID, 7, EOS_ID, 0, 0]])
    task = TranslateTask(None, None)
    kept, targets = task.teacher_forced(model, (src, lens, tgt))
    full = model(src, lens, tgt[:, :-1])
    assert kept.shape == (6, 15) and targets.tolist() == [4, 5, 6, EOS_ID, 7, EOS_ID]
    assert torch.allclose(kept, full[tgt[:, 1:] != 0], atol=1e-6)
    assert torch.allclose(masked_token_loss(kept, targets),
                          masked_token_loss(full, tgt[:, 1:]), atol=1e-5)

def test_beam_one_equals_greedy_and_search_without_eos_returns_a_hypothesis():
    model = tiny_model(input_feeding=True)
    src_tok = build_tokenizer("word", ["a b c d e f g h i j k l m n o p"])
    translator = Translator(model, src_tok, build_tokenizer("word", ["x y z w v u t s r q p"]))
    sentences = ["a b c", "d e f g h", "i", "zzz unknown words"]
    greedy = translator.translate_ids([src_tok.encode(s) for s in sentences])
    src, lens = pad_batch([src_tok.encode(s) for s in sentences], eos=True)
    limits = (lens.float() * 2).ceil().long() + 2
    never = torch.tensor(NEVER)

    def masked(tokens, state):  # what the translator's own search masks
        logits, state = model.step(tokens, state)
        return logits.index_fill(-1, never, float("-inf")), state

    # The beam search itself with one beam (translate() would take the greedy path).
    beam1 = beam_search(masked, model.reorder, model.start(src, lens), len(sentences),
                        BOS_ID, EOS_ID, limits, beam_size=1)
    assert len(greedy) == len(beam1) == len(sentences)
    assert [h[0].tokens for h in beam1] == [h[0].tokens for h in greedy]
    assert [h[0].logprob for h in beam1] == pytest.approx([h[0].logprob for h in greedy],
                                                          abs=1e-4)
    # An untrained model that never says <eos>: the search still returns n-best hypotheses.
    state = model.start(*pad_batch([[4, 5]], eos=True))

    def step(tokens, state):
        logits, state = model.step(tokens, state)
        return logits.index_fill(-1, torch.tensor([EOS_ID]), float("-inf")), state

    hyps = beam_search(step, model.reorder, state, 1, BOS_ID, EOS_ID, 6, beam_size=3, n_best=2)
    assert len(hyps[0]) == 2 and all(len(h.tokens) == 6 for h in hyps[0])


@pytest.mark.parametrize("attention,feeding", [("luong", False), ("concat", True),
                                               ("none", False)])
def test_batched_beam_translations_equal_one_sentence_at_a_time(attention, feeding):
    # Beams share their input's encoder memory; inputs leave the batch as they finish.
    model = tiny_model(attention, input_feeding=feeding, cell="lstm", seed=3)
    src_tok = build_tokenizer("word", ["a b c d e f g h i j k l m n o p"])
    translator = Translator(model, src_tok, build_tokenizer("word", ["x y z w v u t s r q p"]))
    sentences = ["a b c", "d e f g h i j", "k", "l m", "n o p a b", "c c c c"]
    batched = translator.translate(sentences, beam=4, alpha=0.6, n_best=2, batch_size=8)
    alone = [translator.translate([s], beam=4, alpha=0.6, n_best=2)[0] for s in sentences]
    assert [[t.tokens for t in r] for r in batched] == [[t.tokens for t in r] for r in alone]
    assert [r[0].score for r in batched] == pytest.approx([r[0].score for r in alone], abs=1e-4)


def fit_tiny(tmp_path, pairs=PAIRS, **options):
    config = TrainConfig(out_dir=str(tmp_path / "tr"), batch_size=4, max_steps=250, lr=1e-2,
                         eval_every=250, warmup_steps=10, seed=0, quiet=True,
                         select_metric="bleu", device="cpu")
    model = dict(cell="gru", embed=32, hidden=64, dropout=0.0, **options)
    from seqgen.data.pairs import PairFile
    return train_translate(PairFile(pairs), PairFile(pairs), model,
                           PairOptions(min_freq=1), config)


def test_tiny_model_overfits_and_translates_its_training_set_exactly(tmp_path):
    result = fit_tiny(tmp_path)
    assert result.best_metrics["bleu"] == pytest.approx(100.0)
    translator, _ = load_translator(tmp_path / "tr" / "best.pt", device="cpu")
    sources = [s for s, _ in PAIRS]
    assert translator.greedy(sources) == [t for _, t in PAIRS]
    beams = translator.translate(sources, beam=4, alpha=0.6, n_best=3)
    assert len(beams) == len(sources)
    assert [b[0].text for b in beams] == translator.greedy(sources)
    assert all(len(b) == 3 and b[0].score >= b[1].score >= b[2].score for b in beams)
    # Unknown words are read as <unk>, never a crash.
    assert isinstance(translator.greedy(["qwerty zxcv !"])[0], str)


def test_input_feeding_with_additive_attention_trains(tmp_path):
    result = fit_tiny(tmp_path, input_feeding=True, attention="concat")
    assert result.best_metrics["bleu"] > 50
    # Earlier versions called the concat score "bahdanau": their checkpoints still load.
    data = torch.load(tmp_path / "tr" / "best.pt", weights_only=True)
    data["model_config"]["attention"] = "bahdanau"
    torch.save(data, tmp_path / "old.pt")
    old, _ = load_translator(tmp_path / "old.pt", device="cpu")
    new, _ = load_translator(tmp_path / "tr" / "best.pt", device="cpu")
    assert old.model.config.attention == "concat"
    sources = [s for s, _ in PAIRS]
    assert old.greedy(sources) == new.greedy(sources)


# -------------------------------------------------------------------------- CLI
@pytest.fixture
def trained(tmp_path):
    path = write_tsv(tmp_path / "pairs.tsv", PAIRS, "\tCC-BY")
    out = tmp_path / "cli"
    result = invoke("train-translate", path, "--val-file", path, "--out", out, "--min-freq", 1,
                    "--max-steps", 250, "--eval-every", 250, "--batch-size", 4, "--lr", "1e-2",
                    "--cell", "gru", "--hidden", 64, "--embed", 32, "--dropout", 0, "--quiet",
                    "--warmup", 10, "--device", "cpu", "--teacher-forcing", 0.9)
    assert result.exit_code == 0, result.output
    return out / "best.pt"


def test_cli_translate_args_stdin_file_nbest_and_evaluate(trained, tmp_path):
    result = invoke("translate", "-c", trained, "I am cold.")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Tengo frío."
    result = invoke("translate", "-c", trained, input="Where is the dog?\nI am hungry.\n")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["¿Dónde está el perro?", "Tengo hambre."]
    sentences = tmp_path / "in.txt"
    sentences.write_text("The cat is cold.\nI am qwerty.\n", encoding="utf-8")
    result = invoke("translate", "-c", trained, "--input", sentences, "--beam", 5, "--n-best", 3)
    assert result.exit_code == 0, result.output
    blocks = result.stdout.strip().split("\n\n")
    assert len(blocks) == 2 and all(len(b.splitlines()) == 3 for b in blocks)
    assert blocks[0].splitlines()[0].split("\t")[2] == "El gato tiene frío."
    # pieces by default: the letters no training sentence had are warned about, read as <unk>
    assert "never saw 'q', 'w'" in result.stderr
    result = invoke("evaluate-translate", trained.parent.parent / "pairs.tsv", "-c", trained,
                    "--json")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["bleu"] == pytest.approx(100.0) and metrics["chrf"] == pytest.approx(100.0)
    result = invoke("evaluate-translate", trained.parent.parent / "pairs.tsv", "-c", trained)
    assert result.exit_code == 0 and "chrF" in result.stdout and "reference" in result.stdout
    result = invoke("info", trained)
    assert "tgt tokenizer" in result.stdout and "translate" in result.stdout


def test_cli_plot_attention(trained, tmp_path):
    pytest.importorskip("matplotlib")
    image = tmp_path / "attention.png"
    result = invoke("translate", "-c", trained, "Where is the cat?", "--plot-attention", image)
    assert result.exit_code == 0, result.output
    assert image.stat().st_size > 1000 and image.read_bytes()[:4] == b"\x89PNG"


def test_cli_skips_bad_lines_when_asked_and_says_how_many(tmp_path, trained):
    bad = tmp_path / "bad.tsv"
    bad.write_text("Go.\tVe.\nno tab\n", encoding="utf-8")
    result = invoke("train-translate", bad, "--val-file", bad, "--skip-bad-lines", "--out",
                    tmp_path / "x", "--max-steps", 1, "--quiet", "--min-freq", 1)
    assert result.exit_code == 0, result.output
    assert "skipped 1 bad line" in result.stderr
    assert_user_error(invoke("evaluate-translate", bad, "-c", trained), "line 2: no tab")


def test_validation_bleu_reads_a_random_sample_in_the_models_case():
    from seqgen.tasks.translate import TranslateTask, prepare_translate_data

    # A file sorted by length: its first sources would be its shortest ones.
    pairs = [((f"w{i} " * (1 + i % 9)).strip() + ".", f"W{i} saw the Cat.") for i in range(60)]
    val = sorted(pairs, key=lambda p: len(p[0]))
    data = prepare_translate_data(PAIRS, val, PairOptions("word", min_freq=1, lowercase=True), 4,
                                  seed=3, val_bleu_sentences=10)
    assert len(data.val.sample) == 10 and data.val.sample != list(range(10))
    lengths = [len(data.val.inputs[i]) for i in data.val.sample]
    assert max(lengths) > max(len(s) for s in data.val.inputs[:10])

    asked = []

    class Echo(Translator):  # "translates" into the reference, lowercased
        def greedy(self, sentences, batch_size=100):
            asked.append(list(sentences))
            refs = dict(zip(data.val.inputs, data.val.references))
            return [refs[s][0].lower() for s in sentences]

    task = TranslateTask(data.src_tokenizer, data.tgt_tokenizer)
    model = tiny_model()
    import seqgen.tasks.translate as module

    original, module.Translator = module.Translator, Echo
    try:
        bleu = task.evaluate(model, data.val)["bleu"]
        task.evaluate(model, data.val, final=True)
    finally:
        module.Translator = original
    assert bleu == pytest.approx(100.0)  # lowercased output against cased references
    assert asked == [[data.val.inputs[i] for i in data.val.sample], data.val.inputs]


def test_scheduled_sampling_decays_from_teacher_forcing_to_the_rate():
    from seqgen.tasks.supervised import teacher_forcing_rate

    for decay in ("linear", "inverse-sigmoid"):
        rates = [teacher_forcing_rate(0.6, decay, p / 10) for p in range(11)]
        assert rates[0] == pytest.approx(1.0, abs=0.01)
        assert rates[-1] == pytest.approx(0.6, abs=0.01)
        assert all(a >= b for a, b in zip(rates, rates[1:]))
    assert teacher_forcing_rate(0.6, "inverse-sigmoid", 0.1) > teacher_forcing_rate(
        0.6, "linear", 0.1)  # slow at first
    assert teacher_forcing_rate(0.6, "none", 0.3) == 0.6


def test_the_final_validation_equals_evaluate_translate_with_greedy_search(trained):
    rows = [json.loads(line) for line in
            (trained.parent / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in rows if r["kind"] == "final"][-1]
    result = invoke("evaluate-translate", trained.parent.parent / "pairs.tsv", "-c",
                    trained.parent / "last.pt", "--beam", 1, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["bleu"] == pytest.approx(final["bleu"], abs=1e-3)


@pytest.mark.parametrize("attention", ["luong", "concat"])
def test_weights_of_earlier_versions_load_into_the_shared_attention(attention):
    from seqgen.tasks.translate import legacy_state

    config = Seq2SeqConfig(10, 10, embed=4, hidden=6, attention=attention)
    torch.manual_seed(0)
    saved = Seq2Seq(config).state_dict()
    # Earlier versions kept the attention layers on the model: attn_key, attn_query, attn_v.
    earlier = {name.replace("attention.", "attn_"): w for name, w in saved.items()}
    assert any(name.startswith("attn_") for name in earlier)
    model = Seq2Seq(config)
    model.load_state_dict(legacy_state(earlier))
    assert all(torch.equal(w, model.state_dict()[name]) for name, w in saved.items())
