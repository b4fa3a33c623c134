import os
import subprocess
import sys

import pytest
import torch

from seqgen.checkpoint import load_checkpoint
from seqgen.data.synthetic import scenes
from seqgen.distributed import World


def test_each_process_takes_its_rows_and_small_batches_are_skipped():
    x, lens = torch.arange(12).view(6, 2), torch.arange(6)
    rows, lengths, count = World(1, 2).shard((x, lens, 99))
    assert rows.tolist() == [[2, 3], [6, 7], [10, 11]] and lengths.tolist() == [1, 3, 5]
    assert count == 99
    assert World(0, 4).shard((x[:3], lens[:3])) is None
    assert World().shard((x, lens))[0] is x


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "shapes.txt"
    path.write_text("\n".join(s.english() for s in scenes(400, 3)) + "\n", encoding="utf-8")
    return path


def seqgen(tmp_path, corpus, out, *options, processes=1):
    """Train with ``processes`` gloo processes under torchrun (one: plain seqgen)."""
    common = ["train-lm", str(corpus), "--batch-size", "5", "--bptt", "16", "--layers", "1",
              "--hidden", "32", "--embed", "16", "--eval-every", "3", "--device", "cpu",
              "--precision", "fp32",  # bf16 rounds the two splits differently
              "--quiet", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / out),
              *map(str, options)]
    launch = [sys.executable, "-m", "seqgen"]
    if processes > 1:
        launch = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                  "--nproc_per_node", str(processes), "-m", "seqgen"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launch, *common], env=env, capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return load_checkpoint(tmp_path / out / "last.pt")


def test_two_processes_on_an_uneven_split_train_like_one_process(tmp_path, corpus):
    # 5 rows over 2 processes: 3 and 2. Gradients averaged per target of the whole batch
    # (not as a mean of the two processes' means) equal one process's on the whole batch.
    two = seqgen(tmp_path, corpus, "two", "--max-steps", 6, "--dropout", 0, processes=2)
    one = seqgen(tmp_path, corpus, "one", "--max-steps", 6, "--dropout", 0)
    assert two["trainer_state"]["step"] == one["trainer_state"]["step"] == 6
    for name, weight in one["model_state"].items():
        assert torch.allclose(two["model_state"][name], weight, atol=1e-5), name
    assert [r["carry"][0].shape[1] for r in two["trainer_state"]["ranks"]] == [3, 2]
    # One process (the first) wrote the metrics: two validations and the final one.
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert sum('"kind": "val"' in line for line in lines) == 2
    assert sum('"kind": "final"' in line for line in lines) == 1


def test_two_processes_resume_exactly_with_dropout(tmp_path, corpus):
    # Each process's carried state and random generator are saved and restored.
    straight = seqgen(tmp_path, corpus, "straight", "--max-steps", 8, "--dropout", 0.3,
                      "--schedule", "constant", processes=2)
    seqgen(tmp_path, corpus, "resumed", "--max-steps", 4, "--dropout", 0.3, "--schedule",
           "constant", processes=2)
    resumed = seqgen(tmp_path, corpus, "resumed", "--max-steps", 8, "--resume", processes=2)
    for name, weight in straight["model_state"].items():
        assert torch.equal(resumed["model_state"][name], weight), name
