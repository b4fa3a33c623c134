"""`seqgen data get` against a local HTTP server started by the test (no test touches the
internet): a good download, a corrupt one, an interrupted one resumed, a 404, a stalled
server, a local archive, and the Rotten Tomatoes conversion."""

import hashlib
import io
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import assert_user_error, invoke

from seqgen import datasets
from seqgen.data.labelled import read_labelled
from seqgen.datasets import Dataset, Download, _archive_prepare, _listed, _rt_prepare


def tar_bytes(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


ARCHIVE = tar_bytes({"toy/corpus.txt": b"to be or not to be\n" * 2000})
DIGEST = "sha256:" + hashlib.sha256(ARCHIVE).hexdigest()


class Server:
    """Serves ``files`` with HTTP Range support; ``/cut/…`` breaks off halfway the first
    time, ``/stall/…`` waits before answering, anything unknown is a 404."""

    def __init__(self):
        self.files = {"/toy.tar.gz": ARCHIVE, "/cut/toy.tar.gz": ARCHIVE,
                      "/stall/toy.tar.gz": ARCHIVE, "/slow/toy.tar.gz": ARCHIVE,
                      "/bad/toy.tar.gz": ARCHIVE[:-10] + b"0123456789"}
        self.ranges: list[str] = []
        self.if_ranges: list[str | None] = []
        self.cut_done = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                if self.path.startswith("/stall/"):
                    time.sleep(2)
                start = 0
                wanted = self.headers.get("Range")
                etag = '"' + hashlib.sha256(body).hexdigest()[:12] + '"'
                if wanted:
                    server.ranges.append(wanted)
                    server.if_ranges.append(self.headers.get("If-Range"))
                    if self.headers.get("If-Range") in (None, etag):  # else: all of it
                        start = int(wanted.split("=")[1].split("-")[0])
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("ETag", etag)
                self.end_headers()
                if self.path.startswith("/slow/"):  # half, then silence
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    time.sleep(2)
                    return
                if self.path.startswith("/cut/") and not server.cut_done:
                    server.cut_done = True
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server(monkeypatch):
    served = Server()
    toy = Dataset("toy", "a toy corpus", "public domain", served.url,
                  (Download(served.url + "/toy.tar.gz", "toy.tar.gz", DIGEST, len(ARCHIVE)),),
                  _archive_prepare(_listed("toy/corpus.txt")),
                  "seqgen train-lm {dir}/toy/corpus.txt")
    monkeypatch.setitem(datasets.DATASETS, "toy", toy)
    yield served
    served.httpd.shutdown()


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_good_download_is_checked_unpacked_and_says_what_to_run_next(server, tmp_path):
    result = invoke("data", "get", "toy", "--dir", tmp_path)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "toy" / "toy" / "corpus.txt").read_bytes().startswith(b"to be or not")
    assert f"seqgen train-lm {tmp_path / 'toy'}/toy/corpus.txt" in result.stdout
    assert f"toy.tar.gz: sha256 {DIGEST[7:]} (checked)" in result.stderr
    again = invoke("data", "get", "toy", "--dir", tmp_path)  # present and verified: no fetch
    assert again.exit_code == 0 and server.ranges == []


def test_a_corrupt_download_is_one_line_and_leaves_nothing(server, tmp_path):
    result = invoke("data", "get", "toy", "--dir", tmp_path, "--url",
                    server.url + "/bad/toy.tar.gz")
    assert_user_error(result, "checksum mismatch")
    assert leftovers(tmp_path / "toy") == []


def test_an_interrupted_download_resumes_where_it_stopped(server, tmp_path):
    args = ["data", "get", "toy", "--dir", tmp_path, "--url", server.url + "/cut/toy.tar.gz"]
    first = invoke(*args)
    assert_user_error(first, "run the same command again to resume")
    partial = tmp_path / "toy" / "toy.tar.gz.part"
    assert partial.stat().st_size == len(ARCHIVE) // 2
    second = invoke(*args)
    assert second.exit_code == 0, second.output
    assert server.ranges == [f"bytes={len(ARCHIVE) // 2}-"]
    assert (tmp_path / "toy" / "toy.tar.gz").read_bytes() == ARCHIVE
    assert not partial.exists()


def test_a_missing_file_and_a_stalled_server_are_one_line(server, tmp_path):
    assert_user_error(invoke("data", "get", "toy", "--dir", tmp_path, "--url",
                             server.url + "/nothing.tar.gz"), "HTTP 404")
    stalled = invoke("data", "get", "toy", "--dir", tmp_path, "--url",
                     server.url + "/stall/toy.tar.gz", "--timeout", 0.5)
    assert_user_error(stalled, "the server sent nothing for 0.5 s")
    slow = invoke("data", "get", "toy", "--dir", tmp_path, "--url",
                  server.url + "/slow/toy.tar.gz", "--timeout", 0.5)
    assert_user_error(slow, f"resume from {len(ARCHIVE) // 2:,} bytes")
    assert not (tmp_path / "toy" / "toy.tar.gz").exists()


def test_an_archive_the_user_has_is_checked_like_a_download(server, tmp_path):
    good, bad = tmp_path / "good.tar.gz", tmp_path / "bad.tar.gz"
    good.write_bytes(ARCHIVE)
    bad.write_bytes(ARCHIVE[:-1])
    assert_user_error(invoke("data", "get", "toy", "--dir", tmp_path / "d", "--from", bad),
                      "checksum mismatch")
    assert leftovers(tmp_path / "d" / "toy") == []
    result = invoke("data", "get", "toy", "--dir", tmp_path / "d", "--from", good)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "d" / "toy" / "toy" / "corpus.txt").exists()
    assert good.read_bytes() == ARCHIVE  # the user's file is untouched


def test_an_archive_reaching_outside_its_folder_is_refused(monkeypatch, tmp_path):
    evil = tar_bytes({"../evil.txt": b"x"})
    (tmp_path / "evil.tar.gz").write_bytes(evil)
    toy = Dataset("evil", "", "", "", (Download("http://127.0.0.1:9/evil.tar.gz",
                                                "evil.tar.gz", None),),
                  _archive_prepare(_listed("evil.txt")), "")
    monkeypatch.setitem(datasets.DATASETS, "evil", toy)
    result = invoke("data", "get", "evil", "--dir", tmp_path / "d", "--from",
                    tmp_path / "evil.tar.gz")
    assert_user_error(result, "a path outside its folder")
    assert not (tmp_path / "d" / "evil.txt").exists()


def test_rotten_tomatoes_becomes_utf8_tsv_files_split_by_class(tmp_path):
    pos = "".join(f"good film number {i} … really .\n" for i in range(50)).encode("cp1252")
    neg = "".join(f"bad film number {i} .\n" for i in range(30)).encode("cp1252")
    assert b"\x85" in pos  # cp1252's ellipsis, a line break if read as Latin-1
    (tmp_path / "rt-polaritydata.tar.gz").write_bytes(tar_bytes({
        "rt-polaritydata/rt-polarity.pos": pos, "rt-polaritydata/rt-polarity.neg": neg}))
    made = _rt_prepare(tmp_path, tmp_path)
    assert made[:2] == ["train.tsv", "dev.tsv"]
    train, dev = read_labelled(tmp_path / "train.tsv"), read_labelled(tmp_path / "dev.tsv")
    assert sorted(dev.labels) == ["neg"] * 3 + ["pos"] * 5
    assert len(train) == 72 and not set(train.texts) & set(dev.texts)
    assert any("… really" in t for t in train.texts)


def test_data_list_names_every_dataset():
    result = invoke("data", "list")
    for name in ("tinyshakespeare", "ptb", "rt-polarity", "flickr8k", "coco-captions",
                 "tatoeba-xxx"):
        assert name in result.stdout
    assert_user_error(invoke("data", "get", "imagenet"), "unknown dataset 'imagenet'")


def test_a_complete_dataset_is_not_hashed_or_unpacked_again(server, tmp_path, monkeypatch):
    assert invoke("data", "get", "toy", "--dir", tmp_path).exit_code == 0
    made = tmp_path / "toy" / "toy" / "corpus.txt"
    when = made.stat().st_mtime_ns
    hashed = []
    real = datasets.file_digest
    monkeypatch.setattr(datasets, "file_digest", lambda *a: hashed.append(a) or real(*a))
    monkeypatch.setattr(datasets, "unpack", lambda *a: pytest.fail("unpacked again"))
    again = invoke("data", "get", "toy", "--dir", tmp_path)
    assert again.exit_code == 0 and "already complete" in again.stdout
    assert hashed == [] and made.stat().st_mtime_ns == when and server.ranges == []


def test_a_file_the_user_changed_is_kept_unless_forced(server, tmp_path):
    assert invoke("data", "get", "toy", "--dir", tmp_path).exit_code == 0
    made = tmp_path / "toy" / "toy" / "corpus.txt"
    made.write_text("my own corpus\n")
    again = invoke("data", "get", "toy", "--dir", tmp_path)
    assert again.exit_code == 0 and "kept" in again.stderr and "--force" in again.stderr
    assert made.read_text() == "my own corpus\n"
    (tmp_path / "toy" / "toy.tar.gz").unlink()  # made again from a new download: still kept
    again = invoke("data", "get", "toy", "--dir", tmp_path)
    assert again.exit_code == 0 and made.read_text() == "my own corpus\n"
    forced = invoke("data", "get", "toy", "--dir", tmp_path, "--force")
    assert forced.exit_code == 0 and made.read_bytes().startswith(b"to be or not")


def test_a_users_file_where_a_dataset_would_write_is_kept(server, tmp_path):
    mine = tmp_path / "toy" / "toy" / "corpus.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("mine\n")
    result = invoke("data", "get", "toy", "--dir", tmp_path)
    assert result.exit_code == 0 and "kept" in result.stderr and mine.read_text() == "mine\n"


@pytest.fixture
def unpinned(server, monkeypatch):
    toy = Dataset("loose", "an unpinned toy", "", server.url,
                  (Download(server.url + "/cut/toy.tar.gz", "toy.tar.gz", None),),
                  _archive_prepare(_listed("toy/corpus.txt")), "")
    monkeypatch.setitem(datasets.DATASETS, "loose", toy)
    return server


def test_an_unpinned_download_resumes_the_same_version(unpinned, tmp_path):
    first = invoke("data", "get", "loose", "--dir", tmp_path)
    assert_user_error(first, "run the same command again to resume")
    second = invoke("data", "get", "loose", "--dir", tmp_path)
    assert second.exit_code == 0, second.output
    assert unpinned.ranges == [f"bytes={len(ARCHIVE) // 2}-"]
    assert unpinned.if_ranges == ['"' + hashlib.sha256(ARCHIVE).hexdigest()[:12] + '"']
    assert (tmp_path / "loose" / "toy.tar.gz").read_bytes() == ARCHIVE
    assert "not pinned" in second.stderr


def test_an_unpinned_file_that_changed_on_the_server_starts_over(unpinned, tmp_path):
    assert_user_error(invoke("data", "get", "loose", "--dir", tmp_path), "resume")
    newer = tar_bytes({"toy/corpus.txt": b"a newer corpus\n" * 3000})
    unpinned.files["/cut/toy.tar.gz"] = newer  # the server's file changed in between
    second = invoke("data", "get", "loose", "--dir", tmp_path)
    assert second.exit_code == 0, second.output
    assert (tmp_path / "loose" / "toy.tar.gz").read_bytes() == newer  # not two spliced
