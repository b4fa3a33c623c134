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
from helpers import Running, invoke
from PIL import Image

from seqgen.data.synthetic import scenes

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="the [serve] extra is not installed")

from seqgen.serve import Limits, create_app, load_served  # noqa: E402

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


@pytest.fixture(scope="module")
def server(checkpoints):
    names = ["lm", "translate", "caption", "classify"]
    served = load_served([checkpoints / n / "best.pt" for n in names], "cpu")
    running = Running(create_app(served, Limits(max_upload=200_000, max_pixels=1_000_000,
                                                queue=8)))
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


def wait_until_working(url, deadline_s=30.0):
    """Until the server holds a request (a fixed sleep is too short on a loaded machine)."""
    deadline = time.time() + deadline_s
    while call(url, "/health")[1]["requests"] < 1:
        assert time.time() < deadline, "the first request never reached the worker"
        time.sleep(0.01)


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
    status, docs = call(server.url, "/docs")  # offline: drawn from the schema, no CDN
    assert status == 200 and "POST /translate" in docs and "/openapi.json" in docs
    assert "http" not in docs.replace("/openapi.json", "")


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
            wait_until_working(server.url)
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
    running = Running(create_app(served, Limits(queue=1)))
    try:
        def slow():
            return call(running.url, "/generate", {"length": 3000, "stream": False})

        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(slow)
            wait_until_working(running.url)
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


# ------------------------------------------------------------------ the holes a review found
def raw_request(url, head: bytes, timeout=10) -> bytes:
    """Send ``head`` (request line and headers) on a socket and read the answer: for requests
    urllib will not make (a false Host, a body announced but never sent)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def test_a_client_sending_a_body_over_the_limit_reads_its_413(server):
    # answered while the client still sends, it would see a broken pipe, not the answer
    for _ in range(5):
        status, answer = call(server.url, "/translate", b"x" * (4 * 2**20))
        assert status == 413 and "over the limit" in answer["error"]


def test_every_json_body_and_field_is_bounded(server):
    big = {"sentences": ["a red circle"] * 10, "pad": "x" * (2**20)}
    status, answer = call(server.url, "/translate", big)
    assert status == 413 and "request body is over the limit" in answer["error"]
    chunked = iter([b'{"texts": ["' + b"x" * 600_000, b"y" * 600_000 + b'"]}'])
    status, answer = call(server.url, "/classify", data=chunked,
                          headers={"Content-Type": "application/json"})
    assert status == 413 and "over the limit" in answer["error"]
    for path, body, field in [
            ("/translate", {"sentences": ["x" * 10_001]}, "sentences"),
            ("/translate", {"sentences": ["x"] * 257}, "sentences"),
            ("/translate", {"sentences": ["x"], "beam": 33}, "beam"),
            ("/translate", {"sentences": ["x"], "max_len_ratio": 50}, "max_len_ratio"),
            ("/classify", {"texts": ["x"] * 1025}, "texts"),
            ("/classify", {"texts": ["x" * 10_001]}, "texts"),
            ("/generate", {"length": 10_001}, "length"),
            ("/generate", {"prime": "x" * 10_001}, "prime"),
            ("/generate", {"top_k": 10**9}, "top_k")]:
        status, answer = call(server.url, path, body)
        assert status == 422 and field in answer["error"], (path, body, answer)
    status, answer = call(server.url, "/caption?max_len=1000", data=png())
    assert status == 422 and "max_len" in answer["error"]


@pytest.mark.parametrize("error", [ValueError, EOFError, IndexError, "struct", SyntaxError,
                                   OSError])
def test_every_image_pillow_cannot_decode_is_a_400(server, monkeypatch, error):
    import struct

    from PIL import Image as PILImage

    raised = struct.error if error == "struct" else error

    def broken(self, *args, **kwargs):
        raise raised("crafted")

    image = png()
    monkeypatch.setattr(PILImage.Image, "load", broken)  # the server runs in this process
    status, answer = call(server.url, "/caption", data=image)
    assert status == 400 and "not an image" in answer["error"]


def test_a_crafted_png_is_a_400(server):
    crafted = png()[:8] + (5).to_bytes(4, "big") + b"IHDR" + b"\0" * 9  # Pillow: ValueError
    status, answer = call(server.url, "/caption", data=crafted)
    assert status == 400 and "not an image" in answer["error"]


def test_a_page_on_another_host_name_cannot_reach_the_server(server):
    port = server.url.rsplit(":", 1)[1]
    answer = raw_request(server.url, f"GET /models HTTP/1.1\r\nHost: evil.example:{port}\r\n"
                         "Connection: close\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 403") and b"evil.example" in answer
    for name in ("localhost", "127.0.0.1", "[::1]"):
        answer = raw_request(server.url, f"GET /health HTTP/1.1\r\nHost: {name}:{port}\r\n"
                             "Connection: close\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 200"), (name, answer)


def test_models_shows_no_paths_and_health_answers(server, checkpoints):
    status, models = call(server.url, "/models")
    assert status == 200 and str(checkpoints) not in json.dumps(models)
    assert {m["file"] for m in models} == {"best.pt"}
    status, health = call(server.url, "/health")
    assert status == 200 and health["status"] == "ok" and health["models"] == 4


def test_a_token_guards_the_api_but_not_the_page(checkpoints):
    served = load_served([checkpoints / "classify" / "best.pt"], "cpu")
    token = "t" * 24
    running = Running(create_app(served, token=token))
    try:
        status, answer = call(running.url, "/models")
        assert status == 401 and "token" in answer["error"]
        status, answer = call(running.url, "/classify", {"texts": ["a red star"]},
                              headers={"Authorization": "Bearer wrong-wrong-wrong"})
        assert status == 401
        status, _ = call(running.url, "/models", headers={"Authorization": f"Bearer {token}"})
        assert status == 200
        status, page = call(running.url, "/")
        assert status == 200 and "Bearer" in page  # the page sends the token it was given
    finally:
        running.stop()


def test_the_server_refuses_to_open_to_a_network_without_a_token(checkpoints, monkeypatch):
    from helpers import assert_user_error

    monkeypatch.delenv("SEQGEN_TOKEN", raising=False)
    result = invoke("serve", checkpoints / "lm" / "best.pt", "--host", "0.0.0.0")
    assert_user_error(result, "give it a token")
    assert_user_error(invoke("serve", checkpoints / "lm" / "best.pt", "--token", "short"),
                      "at least 16 characters")
    assert_user_error(invoke("serve", checkpoints / "lm" / "best.pt", "--time-limit", "0"),
                      "--time-limit must be a positive duration")


def test_a_request_past_the_time_limit_is_stopped_and_the_worker_freed(checkpoints):
    served = load_served([checkpoints / "lm" / "best.pt"], "cpu")
    running = Running(create_app(served, Limits(time_limit=0.5, queue=4)))
    try:
        began = time.perf_counter()
        status, answer = call(running.url, "/generate", {"length": 10_000, "stream": False})
        assert status == 504 and "time limit" in answer["error"]
        assert time.perf_counter() - began < 5
        request = urllib.request.Request(running.url + "/generate", data=json.dumps(
            {"length": 10_000}).encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            events = response.read().decode().strip().split("\n\n")
        assert events[-1].startswith("event: error") and "time limit" in events[-1]
        deadline = time.time() + 10
        while call(running.url, "/health")[1]["requests"] and time.time() < deadline:
            time.sleep(0.05)
        assert call(running.url, "/health")[1]["requests"] == 0  # the stopped jobs ended
        status, answer = call(running.url, "/generate", {"length": 5, "stream": False})
        assert status == 200
    finally:
        running.stop()


def test_an_upload_is_refused_before_it_is_read_when_the_queue_is_full(checkpoints):
    served = load_served([checkpoints / "caption" / "best.pt", checkpoints / "lm" / "best.pt"],
                         "cpu")
    running = Running(create_app(served, Limits(queue=1)))
    try:
        with ThreadPoolExecutor(1) as pool:
            first = pool.submit(call, running.url, "/generate", {"length": 3000,
                                                                 "stream": False})
            wait_until_working(running.url)
            # A body of 5 MB is announced and never sent: only a server that answers
            # without reading it answers at all.
            answer = raw_request(running.url, b"POST /caption HTTP/1.1\r\nHost: localhost\r\n"
                                 b"Content-Type: image/png\r\nContent-Length: 5000000\r\n\r\n")
            assert answer.startswith(b"HTTP/1.1 503") and b"busy" in answer
            assert first.result()[0] == 200
    finally:
        running.stop()
