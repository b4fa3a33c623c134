"""`seqgen demo`: each part has its time cap, time a part leaves goes to the next ones, and the
demo trains with fewer threads when other programs keep the CPU busy."""

import io
from pathlib import Path

import torch
from rich.console import Console

from seqgen import demo
from seqgen.training import FitResult


def test_time_a_part_leaves_goes_to_the_parts_after_it(monkeypatch, tmp_path):
    caps = {}

    def part(name, used):
        def run(out_dir, cap, device, seed, out, err):
            caps[name] = cap
            return 1.0, min(cap, used)
        return run

    monkeypatch.setattr(demo, "demo_language_model", part("lm", 10))  # done early
    monkeypatch.setattr(demo, "demo_translation", part("translate", 1000))  # uses its cap
    monkeypatch.setattr(demo, "demo_captioning", part("caption", 1000))
    monkeypatch.setattr(demo, "busy_cores", lambda: 0.0)
    console = Console(file=io.StringIO())
    demo.run_demo(tmp_path, 160.0, "cpu", 0, console, console)
    assert caps["lm"] == 30.0  # 3/16 of 160
    assert caps["translate"] == 150 * 3 / 13  # its share of what the language model left
    assert caps["caption"] == 150 - 150 * 3 / 13


def test_the_stop_line_says_what_stopped_a_part():
    part = demo.PARTS["translate"]
    reached = FitResult("target", 488, 99.9, {"bleu": 99.95}, Path("run"), seconds=19.2)
    assert "reached its target (validation BLEU ≥ 99.9: 100) after 19 s" in demo.stop_line(
        reached, part, 45)
    capped = FitResult("budget", 248, 56.3, {"bleu": 56.3}, Path("run"), seconds=45.1)
    assert "its time cap of 45 s" in demo.stop_line(capped, part, 45)


def test_a_busy_cpu_gets_fewer_threads(monkeypatch):
    monkeypatch.setattr(demo, "busy_cores", lambda: 1.0)
    monkeypatch.setattr(demo.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    chosen = []
    monkeypatch.setattr(torch, "set_num_threads", chosen.append)
    console = Console(file=io.StringIO())
    demo.fewer_threads_when_busy("cpu", console)
    assert chosen == [1] and "training with 1 thread" in console.file.getvalue()
    monkeypatch.setattr(demo, "busy_cores", lambda: 0.1)
    demo.fewer_threads_when_busy("cpu", console)
    assert chosen == [1]  # an idle machine keeps its threads
