"""Load test of `seqgen serve`: N requests, C at a time, against a real server on 127.0.0.1.

    python scripts/bench_serve.py CHECKPOINT... [--requests 200 --concurrency 8]

Each request goes to the endpoint of one of the loaded models in turn (a generation of 100
tokens, a translation with beam 5, a classification of one sentence, a caption of a photo
from ../shared/data/photos). Prints p50 / p95 / max latency per endpoint and the error count.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "data" / "photos" / "astronaut.jpg"

BODIES = {
    "lm": ("/generate", {"prime": "The ", "length": 100, "stream": False}),
    "translate": ("/translate", {"sentences": ["Where is the station?"], "beam": 5}),
    "classify": ("/classify", {"texts": ["a gorgeous, witty, seductive movie."]}),
}


def request(url: str, task: str) -> tuple[str, int, float]:
    if task == "caption":
        path, data, headers = "/caption", PHOTO.read_bytes(), {"Content-Type": "image/jpeg"}
    else:
        path, body = BODIES[task]
        data, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
    began = time.perf_counter()
    try:
        with urllib.request.urlopen(urllib.request.Request(url + path, data=data,
                                                           headers=headers), timeout=120) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError:
        status = 0
    return path, status, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import uvicorn

    from seqgen.serve import Worker, create_app, load_served

    worker = Worker(64)  # as `seqgen serve` does: loading and inference in one thread
    served = worker.pool.submit(load_served, args.checkpoints, "cpu").result()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(served, queue=64, worker=worker),
                                           host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    tasks = [s.task for s in served]
    began = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        results = list(pool.map(lambda i: request(url, tasks[i % len(tasks)]),
                                range(args.requests)))
    wall = time.perf_counter() - began
    server.should_exit = True
    errors = sum(status != 200 for _, status, _ in results)
    print(f"{args.requests} requests, {args.concurrency} at a time, {wall:.1f} s "
          f"({args.requests / wall:.1f} requests/s); errors: {errors}")
    for path in sorted({p for p, _, _ in results}):
        times = sorted(t for p, _, t in results if p == path)
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(f"  {path:<10} {len(times):>4} requests: p50 {statistics.median(times) * 1000:.0f} "
              f"ms, p95 {p95 * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()
