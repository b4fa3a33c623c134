"""`seqgen serve`: the API through HTTP against a real server on 127.0.0.1, every bad request
a 4xx with a message, a slow request not blocking others, a bounded load, and the page in a
real headless browser."""

import io
import json
import shutil
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from helpers import invoke
from PIL import Image

from seqgen.data.synthetic import scenes

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")

from seqgen.serve import create_app, load_served  # noqa: E402

TINY = ["--hidden", 16, "--embed", 8, "--quiet", "--device", "cpu"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    texts = [s.english() for s in scenes(120, 7)]
    (root / "corpus.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    (root / "pairs.tsv").write_text("".join(f"{s.english()}\t{s.spanish()}\n"
                                            for s in scenes(80, 8)), encoding="utf-8")
    (root / "images").mkdir()
    rows = ["image,caption"]
    for i, scene in enumerate(scenes(12, 9)):
        scene.render(32).save(root / "images" / f"{i}.png")
        rows.append(f"{i}.png,{scene.english()}")
    (root / "captions.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (root / "labels.tsv").write_text("label\ttext\n" + "".join(
        f"{'red' if 'red' in t else 'other'}\t{t}\n" for t in texts), encoding="utf-8")
    for command in (
        ["train-lm", root / "corpus.txt", "--out", root / "lm", "--max-steps", 3, "--layers", 1,
         "--batch-size", 4, "--bptt", 16, "--cache-dir", root / "cache", *TINY],
        ["train-translate", root / "pairs.tsv", "--out", root / "translate", "--max-steps", 3,
         "--min-freq", 1, "--batch-size", 8, *TINY],
        ["train-caption", root / "captions.csv", "--images", root / "images", "--out",
         root / "caption", "--max-steps", 2, "--encoder", "small-cnn", "--min-freq", 1,
         "--val-fraction", 0.25, "--batch-size", 4, "--cache-dir", root / "cache", *TINY],
        ["train-classify", root / "labels.tsv", "--out", root / "classify", "--max-steps", 3,
         *TINY],
    ):
        done = invoke(*command)
        assert done.exit_code == 0, done.output
    return root


class Running:
    """A uvicorn server in a thread, on a free port of 127.0.0.1."""

    def __init__(self, app):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 20
        while not self.server.started:
            assert time.time() < deadline, "the server did not start"
            time.sleep(0.05)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(scope="module")
def server(checkpoints):
    names = ["lm", "translate", "caption", "classify"]
    served = load_served([checkpoints / n / "best.pt" for n in names], "cpu")
    running = Running(create_app(served, max_upload=200_000, max_pixels=1_000_000, queue=8))
    yield running
    running.stop()


def call(url, path, body=None, data=None, method=None, headers=None):
    """(status, parsed JSON or text) of one request."""
    if body is not None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        headers = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url + path, data=data, headers=headers or {},
                                     method=method or ("POST" if data is not None else "GET"))
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", "replace")


def png(width=48, height=48) -> bytes:
    buffer = io.BytesIO()
    scenes(1, 3)[0].render(width).resize((width, height)).save(buffer, "PNG")
    return buffer.getvalue()


def test_models_lists_what_is_loaded(server):
    status, models = call(server.url, "/models")
    assert status == 200
    assert [(m["name"], m["task"]) for m in models] == [
        ("lm", "lm"), ("translate", "translate"), ("caption", "caption"),
        ("classify", "classify")]
    assert all(m["parameters"] > 0 and m["steps"] for m in models)
    status, docs = call(server.url, "/docs")
    assert status == 200 and "swagger" in docs.lower()


def test_generate_streams_server_sent_events_and_answers_json(server):
    status, whole = call(server.url, "/generate", {"prime": "a red", "length": 20,
                                                   "stream": False, "seed": 1})
    assert status == 200 and whole["text"].startswith("a red") and len(whole["text"]) > 5
    request = urllib.request.Request(server.url + "/generate", data=json.dumps(
        {"prime": "a", "length": 15, "seed": 1}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = response.read().decode().strip().split("\n\n")
    pieces = [json.loads(e[6:])["text"] for e in events if e.startswith("data: ")]
    assert pieces[0] == "a" and len(pieces) == 16  # the prime, then one event per token
    assert events[-1] == "event: end\ndata: {}"


def test_translate_caption_and_classify(server):
    status, result = call(server.url, "/translate", {"sentences": ["a red circle", "a star"],
                                                     "beam": 3, "n_best": 2})
    assert status == 200 and [len(t) for t in result["translations"]] == [2, 2]
    assert all(isinstance(t["text"], str) for t in result["translations"][0])
    status, result = call(server.url, "/caption?beam=2", data=png(),
                          headers={"Content-Type": "image/png"})
    assert status == 200 and isinstance(result["caption"], str)
    grids = result["attention"]  # the default captioner attends: a map before each word
    assert [g["word"] for g in grids] == result["caption"].split()
    assert abs(sum(sum(row) for row in grids[0]["grid"]) - 1) < 1e-2
    status, result = call(server.url, "/classify", {"texts": ["a red square"], "top": 2})
    assert status == 200 and {x["label"] for x in result["labels"][0]} == {"other", "red"}


@pytest.mark.parametrize("path,body,status,text", [
    ("/generate", b"{not json", 422, "JSON"),
    ("/generate", {"temperature": -1}, 422, "temperature"),
    ("/generate", {"length": 0}, 422, "length"),
    ("/generate", {"prime": "x", "colour": "red"}, 422, "colour"),
    ("/generate", {"model": "nope"}, 404, "no lm model named 'nope'"),
    ("/translate", {"sentences": []}, 422, "sentences"),
    ("/translate", {"sentences": ["hi"], "beam": 2, "n_best": 3}, 400, "needs --beam"),
    ("/translate", {"sentences": "hi"}, 422, "sentences"),
    ("/classify", {"texts": ["x"], "top": 0}, 422, "top"),
    ("/caption", b"not an image", 400, "not an image"),
    ("/caption", b"", 400, "send the image"),
    ("/caption", b"x" * 300_000, 413, "upload limit"),
    ("/caption?beam=0", b"x", 422, "beam"),
    ("/generate", {"seed": 2**70}, 422, "seed"),
    ("/nowhere", {}, 404, "Not Found"),
])
def test_a_bad_request_is_a_4xx_with_a_message(server, path, body, status, text):
    got, answer = call(server.url, path, body if isinstance(body, dict) else None,
                       data=body if isinstance(body, bytes) else None,
                       headers={"Content-Type": "application/json"})
    assert got == status, answer
    assert text in answer["error"] and "Traceback" not in answer["error"]


def test_an_image_with_too_many_pixels_is_refused_before_decoding(server):
    buffer = io.BytesIO()
    Image.new("RGB", (1200, 1200), (10, 200, 30)).save(buffer, "PNG")  # small file, 1.44 MP
    assert len(buffer.getvalue()) < 200_000
    status, answer = call(server.url, "/caption", data=buffer.getvalue())
    assert status == 413 and "over the limit of 1,000,000" in answer["error"]


@pytest.mark.parametrize("stream", [True, False])
def test_a_long_generation_does_not_block_the_models_list(server, stream):
    started = threading.Event()

    def long_generation():
        request = urllib.request.Request(server.url + "/generate", data=json.dumps(
            {"length": 3000, "temperature": 1.0, "stream": stream}).encode(),
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as response:
            if stream:
                response.readline()
                started.set()
            return response.read()

    with ThreadPoolExecutor(1) as pool:
        generating = pool.submit(long_generation)
        if stream:
            assert started.wait(30)
        else:
            time.sleep(0.5)
        began = time.perf_counter()
        status, _ = call(server.url, "/models")
        took = time.perf_counter() - began
        assert status == 200 and took < 1.0
        assert not generating.done()  # still generating while /models answered
        whole = generating.result().decode()
        assert whole.endswith("event: end\ndata: {}\n\n") if stream else len(
            json.loads(whole)["text"]) > 1000


def test_an_upload_without_a_length_is_cut_off_at_the_limit(server):
    chunks = iter([b"x" * 100_000] * 4)  # sent chunked: the server cannot know the size
    status, answer = call(server.url, "/caption", data=chunks)
    assert status == 413 and "upload limit" in answer["error"]


def test_a_full_queue_answers_503_at_once(checkpoints):
    served = load_served([checkpoints / "lm" / "best.pt"], "cpu")
    running = Running(create_app(served, queue=1))
    try:
        def slow():
            return call(running.url, "/generate", {"length": 3000, "stream": False})

        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(slow)
            time.sleep(0.3)
            status, answer = call(running.url, "/generate", {"length": 5, "stream": False})
            assert status == 503 and "busy" in answer["error"]
            assert first.result()[0] == 200
    finally:
        running.stop()


def test_a_bounded_load_gives_no_errors(server):
    def one(i):
        began = time.perf_counter()
        if i % 2:
            status, _ = call(server.url, "/translate", {"sentences": ["a red circle"]})
        else:
            status, _ = call(server.url, "/classify", {"texts": ["a blue star"]})
        return status, time.perf_counter() - began

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(one, range(40)))
    assert [s for s, _ in results] == [200] * 40


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on this machine")
def test_the_page_in_a_headless_browser(server, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    photo = tmp_path / "scene.png"
    photo.write_bytes(png(64, 64))
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(server.url + "/")
            page.wait_for_selector("#lm:not([hidden])")
            assert "lm (lm)" in page.inner_text("#loaded")
            page.fill("#prime", "a small")
            page.fill("#length", "40")
            page.click("#generate")
            page.wait_for_function(
                "document.getElementById('generated').textContent.length > 'a small'.length")
            assert page.inner_text("#generated").startswith("a small")
            page.fill("#source", "a red circle")
            page.click("#translateButton")
            page.wait_for_function("document.getElementById('translation').textContent")
            page.set_input_files("#photo", str(photo))
            page.wait_for_function("(() => { const t = document.getElementById('captionText')"
                                   ".textContent; return t && t !== '…'; })()")
            assert "error" not in page.get_attribute("#captionText", "class")
        finally:
            browser.close()
