"""The offline stdlib corpus: file list, determinism, split sizes, tokenizers, no network, errors."""

from __future__ import annotations

import hashlib
import socket
import sys
import sysconfig
import time
from pathlib import Path

import pytest
import torch

from linattn_edu.data import Corpus, load_corpus, stdlib_files
from linattn_edu.data import corpus as corpus_module

STDLIB = Path(sysconfig.get_paths()["stdlib"])


def test_file_list_is_sorted_public_top_level_py():
    files = stdlib_files()
    names = [f.name for f in files]
    assert names == sorted(names) and len(names) > 50
    assert all(f.parent == STDLIB and f.suffix == ".py" for f in files)
    assert not any(n.startswith("_") for n in names)  # e.g. the machine-specific _sysconfigdata_*.py
    assert "sitecustomize.py" not in names
    for must in ("abc.py", "argparse.py", "functools.py", "inspect.py", "typing.py"):
        assert must in names
    with pytest.raises(ValueError, match="stdlib_dir"):
        stdlib_files("/nonexistent/dir")


def test_bytes_match_the_files_and_split_sizes():
    corpus = load_corpus(max_bytes=60_000)
    raw = b"".join(f.read_bytes() for f in stdlib_files())[:60_000]
    assert corpus.vocab_size == 256 and corpus.tokenizer == "byte"
    assert corpus.train.dtype == corpus.valid.dtype == torch.int64
    assert corpus.train.ndim == corpus.valid.ndim == 1
    assert corpus.train.numel() == 54_000 and corpus.valid.numel() == 6_000  # last 10% is validation
    assert bytes(torch.cat([corpus.train, corpus.valid]).to(torch.uint8).tolist()) == raw
    d = corpus.description
    assert d["bytes"] == 60_000 and d["sha256"] == hashlib.sha256(raw).hexdigest()
    assert d["python"] == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert d["files"] == len(d["file_names"]) and d["file_names"][0] == stdlib_files()[0].name
    assert "60,000 bytes" in repr(corpus)


def test_loading_is_deterministic_and_fast():
    corpus_module._read_stdlib.cache_clear()
    start = time.perf_counter()
    a = load_corpus()
    elapsed = time.perf_counter() - start
    corpus_module._read_stdlib.cache_clear()
    b = load_corpus()
    assert torch.equal(a.train, b.train) and torch.equal(a.valid, b.valid)
    assert a.description == b.description
    assert a.description["bytes"] == sum(f.stat().st_size for f in stdlib_files())
    assert elapsed < 5.0, f"load_corpus() took {elapsed:.2f} s"  # ~0.1 s on a laptop; generous bound


def test_byte_round_trip_including_non_ascii():
    corpus = load_corpus(max_bytes=10_000)
    text = "def f(x):\n    return 'héllo ∑ 🐍'\n"
    ids = corpus.encode(text)
    assert ids.dtype == torch.int64 and ids.numel() == len(text.encode("utf-8"))
    assert corpus.decode(ids) == text
    assert corpus.decode(ids.tolist()) == text and corpus.decode(ids.numpy()) == text
    assert corpus.decode(corpus.train[:500]) == stdlib_files()[0].read_bytes()[:500].decode("utf-8")
    assert corpus.encode("").numel() == 0


def test_char_tokenizer():
    corpus = load_corpus(max_bytes=30_000, tokenizer="char")
    text = (b"".join(f.read_bytes() for f in stdlib_files())[:30_000]).decode("utf-8", errors="replace")
    assert corpus.chars == "".join(sorted(set(text))) and corpus.vocab_size == len(corpus.chars)
    ids = torch.cat([corpus.train, corpus.valid])
    assert ids.numel() == len(text) and int(ids.max()) < corpus.vocab_size
    assert corpus.decode(ids) == text
    assert corpus.decode(corpus.encode("def x")) == "def x"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        corpus.encode("\x00")


def test_no_network_needed(monkeypatch):
    def no_socket(*args, **kwargs):
        raise AssertionError("load_corpus must not open a socket")

    monkeypatch.setattr(socket, "socket", no_socket)
    monkeypatch.setattr(socket, "create_connection", no_socket)
    corpus_module._read_stdlib.cache_clear()
    assert load_corpus(max_bytes=5_000).train.numel() == 4_500


def test_from_text_and_valid_fraction():
    c = Corpus.from_text("abcabcabca", tokenizer="char", valid_fraction=0.2)
    assert c.vocab_size == 3 and c.train.tolist() == [0, 1, 2, 0, 1, 2, 0, 1] and c.valid.tolist() == [2, 0]
    whole = load_corpus(max_bytes=1_000, valid_fraction=0.0)
    assert whole.valid.numel() == 0 and whole.train.numel() == 1_000


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"name": "wikitext-103"}, r"name must be one of \['stdlib'\]"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"max_bytes": "1MB"}, "max_bytes"),
        ({"tokenizer": "bpe"}, r"tokenizer must be one of \['byte', 'char'\]"),
        ({"valid_fraction": 1.0}, "valid_fraction"),
        ({"valid_fraction": -0.1}, "valid_fraction"),
    ],
)
def test_load_errors_name_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_corpus(**{"max_bytes": 1_000, **kwargs})


def test_encode_decode_errors():
    corpus = load_corpus(max_bytes=1_000)
    with pytest.raises(TypeError, match="text"):
        corpus.encode(b"bytes")
    with pytest.raises(ValueError, match="vocab_size=256"):
        corpus.decode([65, 256])
    with pytest.raises(TypeError, match="ids"):
        corpus.decode(["a"])
    with pytest.raises(TypeError, match="text"):
        Corpus.from_text(3)
