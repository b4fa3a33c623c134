import os
import subprocess
import sys

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


def test_two_processes_train_like_one_process_on_the_whole_batch(tmp_path):
    # Gradients averaged over two halves of each batch equal the whole batch's: after the
    # same steps, the weights are the same as a single process's.
    corpus = tmp_path / "shapes.txt"
    corpus.write_text("\n".join(s.english() for s in scenes(400, 3)) + "\n", encoding="utf-8")
    common = ["train-lm", str(corpus), "--max-steps", "6", "--batch-size", "4", "--bptt", "16",
              "--layers", "1", "--hidden", "32", "--embed", "16", "--dropout", "0",
              "--eval-every", "3", "--device", "cpu", "--quiet",
              "--cache-dir", str(tmp_path / "cache")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "seqgen", *common, "--out", str(tmp_path / "two")]
    done = subprocess.run(run, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    single = subprocess.run([sys.executable, "-m", "seqgen", *common, "--out",
                             str(tmp_path / "one")], env=env, capture_output=True, text=True,
                            timeout=240)
    assert single.returncode == 0, single.stderr[-2000:]
    two = load_checkpoint(tmp_path / "two" / "last.pt")
    one = load_checkpoint(tmp_path / "one" / "last.pt")
    assert two["trainer_state"]["step"] == one["trainer_state"]["step"] == 6
    for name, weight in one["model_state"].items():
        assert torch.allclose(two["model_state"][name], weight, atol=1e-5), name
    # One process (the first) wrote the metrics: two validations, no duplicates.
    lines = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()
    assert sum('"kind": "val"' in line for line in lines) == 2
