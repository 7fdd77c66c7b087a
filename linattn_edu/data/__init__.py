"""Data for the book's experiments, available offline.

- :func:`load_corpus`: the Python standard library's sources as a byte- or character-level
  corpus with a fixed train/validation split (no download).
"""

from .corpus import CORPORA, TOKENIZERS, Corpus, load_corpus, stdlib_files

__all__ = ["CORPORA", "TOKENIZERS", "Corpus", "load_corpus", "stdlib_files"]
