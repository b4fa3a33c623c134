"""A new task plugs in at one place: a toy task, registered here and nowhere else, trains,
resumes exactly, is described by `info`, loads for use and is served with its own endpoint,
through the same run lifecycle, loader and server as the built-in tasks."""

import json
import urllib.request
from dataclasses import dataclass

import pytest
import torch
from helpers import Running, invoke
from torch import nn

from seqgen.config import TrainConfig, to_dict
from seqgen.runs import Run, load_trained
from seqgen.tasks.registry import TaskSpec, register, task_spec

TOY = "toy-mean"


@dataclass
class ToyConfig:
    inputs: int = 4


class ToyModel(nn.Module):
    """Predicts the mean of its inputs."""

    def __init__(self, config: ToyConfig):
        super().__init__()
        self.config = config
        self.linear = nn.Linear(config.inputs, 1)

    def forward(self, x):
        return self.linear(x).squeeze(-1)


class ToyBatches:
    def __init__(self, n: int, seed: int):
        self.x = torch.randn(n, 8, 4, generator=torch.Generator().manual_seed(seed))

    def __len__(self):
        return len(self.x)

    def batches(self, epoch, start=0):
        for x in self.x[start:]:
            yield x, x.mean(-1)


class ToyTask:
    def loss(self, model, batch, carry):
        x, y = batch
        return ((model(x) - y) ** 2).sum(), None

    def count_targets(self, batch):
        return len(batch[1])

    def evaluate(self, model, data, final=False):
        x, y = data
        return {"mse": float(((model(x) - y) ** 2).mean())}

    def preview(self, model):
        return []


def train_toy(out, steps: int, resume: bool = False, overwrite: bool = False):
    """What a task's train_* is: its data, its model, and the shared lifecycle."""
    config = TrainConfig(out_dir=str(out), max_steps=steps, lr=0.05, warmup_steps=0,
                         schedule="constant",
                         eval_every=5, select_metric="mse", quiet=True, device="cpu",
                         log_every=5)
    run = Run(TOY, config, resume, overwrite, explicit={"max_steps"} if resume else None)
    definition = run.define({"inputs": 4})
    train = ToyBatches(12, 0)
    run.check_data("toy data v1")
    model_config = ToyConfig(definition["inputs"])
    model = run.build(lambda: ToyModel(model_config))
    x = ToyBatches(1, 1).x[0]
    return run.fit(model, ToyTask(), train, (x, x.mean(-1)),
                   {"model_config": to_dict(model_config)}, "toy linear")


def load_toy(path, device="auto"):
    trained = load_trained(path, TOY, ToyConfig, ToyModel, device)
    return trained, trained.data


def toy_routes(api) -> None:
    from pydantic import Field

    from seqgen.serve.requests import ModelRequest

    class MeanRequest(ModelRequest):
        values: list[float] = Field(min_length=4, max_length=4)

    @api.app.post("/toy-mean")
    async def mean(body: MeanRequest) -> dict:
        """The model's guess at the mean of four numbers."""
        trained = api.pick(TOY, body.model).runner

        def work(expired):
            with torch.no_grad():
                return float(trained.model(torch.tensor([body.values])))

        return {"mean": await api.run(work)}


@pytest.fixture(autouse=True)
def toy_task():
    register(TaskSpec(TOY, "toy mean model", load_toy, lambda data: {"inputs": 4},
                      routes=toy_routes))


def test_a_registered_task_trains_resumes_loads_and_is_described(tmp_path):
    whole = train_toy(tmp_path / "whole", 20)
    assert whole.reason == "budget" and whole.best < 0.05  # it learned the mean
    train_toy(tmp_path / "halves", 10)
    resumed = train_toy(tmp_path / "halves", 20, resume=True)
    assert resumed.step == 20
    first = torch.load(tmp_path / "whole" / "last.pt", weights_only=True)["model_state"]
    second = torch.load(tmp_path / "halves" / "last.pt", weights_only=True)["model_state"]
    assert all(torch.equal(first[k], second[k]) for k in first)  # resume is exact
    trained, data = task_spec(TOY).load(tmp_path / "whole" / "best.pt", "cpu")
    assert data["task"] == TOY and isinstance(trained.model, ToyModel)
    info = invoke("info", tmp_path / "whole" / "best.pt", "--json")
    assert info.exit_code == 0 and json.loads(info.stdout)["inputs"] == 4
    curves = invoke("plot", tmp_path / "whole")
    assert curves.exit_code == 0 and "mse" in curves.stdout


def test_a_registered_task_is_served_with_its_own_endpoint(tmp_path):
    pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
    from seqgen.serve import create_app, load_served

    train_toy(tmp_path / "toy", 20)
    running = Running(create_app(load_served([tmp_path / "toy" / "best.pt"], "cpu")))
    try:
        request = urllib.request.Request(
            running.url + "/toy-mean", data=json.dumps({"values": [0.5, -1, 1, 1]}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        trained, _ = load_toy(tmp_path / "toy" / "best.pt", "cpu")
        with torch.no_grad():
            expected = float(trained.model(torch.tensor([[0.5, -1, 1, 1]])))
        assert answer["mean"] == pytest.approx(expected) and abs(expected - 0.375) < 0.2
        with urllib.request.urlopen(running.url + "/models", timeout=30) as response:
            assert json.loads(response.read())[0]["task"] == TOY
    finally:
        running.stop()
