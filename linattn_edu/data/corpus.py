"""An offline text corpus: the Python standard library's own source code.

Every Python installation ships megabytes of carefully written text in its standard library,
so the book can train small language models without downloading anything. ``load_corpus()``
reads every *top-level* ``*.py`` file of the standard library directory
(``sysconfig.get_paths()["stdlib"]``), in sorted file-name order, skipping

- private modules (names starting with ``_``, e.g. ``_sysconfigdata_*.py``, whose content
  depends on the machine the interpreter was built on),
- ``sitecustomize.py`` / ``usercustomize.py`` and symbolic links (added by some distributions),
- sub-packages (``json/``, ``asyncio/``, tests, ...): only files directly in the directory.

So the corpus is the same on every machine with the same Python *minor* version (the
``description`` records a sha256 to check this). It differs between Python versions, since
modules are added, changed and removed (CPython 3.11 gives 151 files, about 4.2 MB).

Tokens are bytes (``tokenizer="byte"``, vocabulary 256, any text encodes) or characters
(``tokenizer="char"``, vocabulary = the distinct characters of the corpus, sorted). The last
``valid_fraction`` of the stream (10% by default) is the validation split: alphabetically late
files, so validation text comes from files never trained on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sys
import sysconfig
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["CORPORA", "TOKENIZERS", "Corpus", "load_corpus", "stdlib_files"]

#: Corpus names :func:`load_corpus` knows.
CORPORA = ("stdlib",)
#: Tokenizers :func:`load_corpus` knows.
TOKENIZERS = ("byte", "char")

_EXCLUDED = {"sitecustomize.py", "usercustomize.py"}


def stdlib_files(stdlib_dir: str | Path | None = None) -> list[Path]:
    """The files of the ``"stdlib"`` corpus, in order: top-level public ``*.py``, sorted by name."""
    root = Path(sysconfig.get_paths()["stdlib"] if stdlib_dir is None else stdlib_dir)
    if not root.is_dir():
        raise ValueError(f"stdlib_dir must be a directory, got {str(root)!r}")
    files = [
        p
        for p in root.glob("*.py")
        if not p.name.startswith("_") and p.name not in _EXCLUDED and p.is_file() and not p.is_symlink()
    ]
    return sorted(files, key=lambda p: p.name)


@lru_cache(maxsize=8)
def _read_stdlib(max_bytes: int | None) -> tuple[bytes, tuple[str, ...]]:
    """Concatenated bytes of the corpus files (cut at ``max_bytes``) and the names of the files read."""
    chunks: list[bytes] = []
    names: list[str] = []
    total = 0
    for path in stdlib_files():
        if max_bytes is not None and total >= max_bytes:
            break
        data = path.read_bytes()
        if max_bytes is not None:
            data = data[: max_bytes - total]
        chunks.append(data)
        names.append(path.name)
        total += len(data)
    return b"".join(chunks), tuple(names)


def _check_ids(ids: Any, vocab_size: int) -> list[int]:
    if isinstance(ids, torch.Tensor):
        ids = ids.detach().cpu().reshape(-1).tolist()
    elif isinstance(ids, np.ndarray):
        ids = ids.reshape(-1).tolist()
    elif isinstance(ids, (int, np.integer)):
        ids = [int(ids)]
    try:
        out = [int(i) for i in ids]
    except (TypeError, ValueError) as err:
        raise TypeError(f"ids must be a sequence of integer token ids, got {type(ids).__name__}") from err
    bad = [i for i in out if not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"ids must be in [0, vocab_size={vocab_size}), got {bad[:5]}")
    return out


@dataclasses.dataclass(repr=False, eq=False)
class Corpus:
    """A tokenized text corpus with a fixed train/validation split.

    Attributes:
        train: 1-D int64 tensor of token ids (the first ``1 - valid_fraction`` of the stream).
        valid: 1-D int64 tensor of token ids (the rest).
        vocab_size: 256 for bytes, the number of distinct characters for ``"char"``.
        tokenizer: ``"byte"`` or ``"char"``.
        description: where the text comes from: ``name``, ``python`` version, ``files`` (count),
            ``file_names``, ``bytes``, ``sha256`` of the raw bytes, ``tokens``, ``train_tokens``,
            ``valid_tokens``.
        chars: for ``"char"``, the vocabulary (id ``i`` is ``chars[i]``); None for bytes.
    """

    train: torch.Tensor
    valid: torch.Tensor
    vocab_size: int
    tokenizer: str
    description: dict[str, Any]
    chars: str | None = None

    def __post_init__(self) -> None:
        self._index = None if self.chars is None else {c: i for i, c in enumerate(self.chars)}

    def encode(self, text: str) -> torch.Tensor:
        """``str -> (N,)`` int64 token ids.

        Raises:
            TypeError: ``text`` is not a str.
            ValueError: (``"char"`` only) a character outside the vocabulary, named in the message.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if self.tokenizer == "byte":
            data = text.encode("utf-8")
            return torch.frombuffer(bytearray(data), dtype=torch.uint8).long() if data else torch.zeros(0, dtype=torch.long)
        assert self._index is not None
        try:
            return torch.tensor([self._index[c] for c in text], dtype=torch.long)
        except KeyError as err:
            raise ValueError(f"text contains the character {err.args[0]!r}, which is not in the vocabulary") from None

    def decode(self, ids: Any) -> str:
        """Token ids (tensor, array or list; any shape, flattened) -> ``str``.

        Byte ids that do not form valid UTF-8 (a window may cut a multi-byte character) are
        shown as the replacement character ``\\ufffd``.

        Raises:
            TypeError / ValueError: ``ids`` not integers, or out of ``[0, vocab_size)``.
        """
        values = _check_ids(ids, self.vocab_size)
        if self.tokenizer == "byte":
            return bytes(values).decode("utf-8", errors="replace")
        assert self.chars is not None
        return "".join(self.chars[i] for i in values)

    @classmethod
    def from_text(
        cls, text: str | bytes, *, tokenizer: str = "byte", valid_fraction: float = 0.1, name: str = "text",
        extra: dict[str, Any] | None = None,
    ) -> "Corpus":
        """Tokenize ``text`` and split off the last ``valid_fraction`` of the tokens for validation.

        Raises:
            ValueError: unknown ``tokenizer``, ``valid_fraction`` outside ``[0, 1)``, or text too short.
        """
        if tokenizer not in TOKENIZERS:
            raise ValueError(f"tokenizer must be one of {list(TOKENIZERS)}, got {tokenizer!r}")
        if isinstance(valid_fraction, bool) or not isinstance(valid_fraction, (int, float)) or not 0 <= valid_fraction < 1:
            raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction!r}")
        if isinstance(text, str):
            raw = text.encode("utf-8")
        elif isinstance(text, (bytes, bytearray)):
            raw = bytes(text)
        else:
            raise TypeError(f"text must be str or bytes, got {type(text).__name__}")
        if len(raw) < 2:
            raise ValueError(f"text must have at least 2 bytes, got {len(raw)}")
        chars = None
        if tokenizer == "byte":
            ids = torch.frombuffer(bytearray(raw), dtype=torch.uint8).long()
            vocab = 256
        else:
            decoded = raw.decode("utf-8", errors="replace")
            codepoints = np.frombuffer(decoded.encode("utf-32-le"), dtype=np.uint32)
            vocab_points, inverse = np.unique(codepoints, return_inverse=True)  # sorted distinct chars
            chars = "".join(map(chr, vocab_points.tolist()))
            ids = torch.from_numpy(inverse.reshape(-1).astype(np.int64))
            vocab = len(chars)
        n_valid = int(round(valid_fraction * ids.numel()))
        n_train = ids.numel() - n_valid
        description = {
            "name": name,
            "tokenizer": tokenizer,
            "bytes": len(raw),
            "sha256": hashlib.sha256(raw).hexdigest(),
            "tokens": int(ids.numel()),
            "train_tokens": n_train,
            "valid_tokens": n_valid,
            "valid_fraction": valid_fraction,
            **(extra or {}),
        }
        return cls(ids[:n_train].clone(), ids[n_train:].clone(), vocab, tokenizer, description, chars)

    def __repr__(self) -> str:
        d = self.description
        files = f", {d['files']} files" if "files" in d else ""
        return (
            f"Corpus({d.get('name')!r}{files}, {d['bytes']:,} bytes, tokenizer={self.tokenizer!r}, "
            f"vocab_size={self.vocab_size}, train={self.train.numel():,} / valid={self.valid.numel():,} tokens, "
            f"sha256={d['sha256'][:12]}…)"
        )


def load_corpus(
    name: str = "stdlib",
    *,
    max_bytes: int | None = None,
    tokenizer: str = "byte",
    valid_fraction: float = 0.1,
) -> Corpus:
    """Load an offline corpus; no network access.

    Args:
        name: ``"stdlib"``: the Python standard library's top-level ``*.py`` sources (see the
            module docstring for the exact file list; ~4.2 MB on CPython 3.11, loads in well
            under a second).
        max_bytes: keep only the first ``max_bytes`` bytes (files in sorted order, the last one
            cut); None: everything.
        tokenizer: ``"byte"`` (vocab 256) or ``"char"`` (vocab = the corpus's distinct characters).
        valid_fraction: the last fraction of the tokens forms ``Corpus.valid``.

    Returns:
        A :class:`Corpus`; ``corpus.description`` holds the Python version, file names, size and
        sha256, so a results file can say exactly what it was trained on.

    Raises:
        ValueError: unknown ``name`` or ``tokenizer``, a bad ``max_bytes`` or ``valid_fraction``.
    """
    if name not in CORPORA:
        raise ValueError(f"name must be one of {list(CORPORA)}, got {name!r}")
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)) or max_bytes < 2):
        raise ValueError(f"max_bytes must be an int >= 2 or None, got {max_bytes!r}")
    raw, names = _read_stdlib(None if max_bytes is None else int(max_bytes))
    extra = {
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "source": "top-level public *.py files of sysconfig.get_paths()['stdlib'], sorted by name",
        "files": len(names),
        "file_names": list(names),
        "max_bytes": max_bytes,
    }
    return Corpus.from_text(raw, tokenizer=tokenizer, valid_fraction=valid_fraction, name=name, extra=extra)

