"""Chapter 8's exercise checkers: right solutions pass, typical mistakes fail with a useful hint."""

from __future__ import annotations

import math

import numpy as np
import torch

from linattn_edu.exercises import ch08


def kv_right(n_layers, n_kv_heads, head_dim, bytes_per_element):
    return 2 * n_layers * n_kv_heads * head_dim * bytes_per_element


def test_kv_cache_bytes_per_token_accepts_right_answers(capsys):
    assert ch08.check_kv_cache_bytes_per_token(kv_right)
    assert "✓" in capsys.readouterr().out
    # NumPy and torch scalars count as numbers
    assert ch08.check_kv_cache_bytes_per_token(lambda *a: np.int64(kv_right(*a)), quiet=True)
    assert ch08.check_kv_cache_bytes_per_token(lambda *a: torch.tensor(kv_right(*a)), quiet=True)


def test_kv_cache_bytes_per_token_rejects_mistakes(capsys):
    assert not ch08.check_kv_cache_bytes_per_token(lambda L, h, d, b: L * h * d * b)
    assert "key AND a value" in capsys.readouterr().out
    assert not ch08.check_kv_cache_bytes_per_token(lambda L, h, d, b: 2 * L * h * d * 4)  # ignores the dtype
    capsys.readouterr()
    assert not ch08.check_kv_cache_bytes_per_token(lambda *a: None, quiet=True)
    assert not ch08.check_kv_cache_bytes_per_token(lambda *a: [1, 2], quiet=True)
    assert not ch08.check_kv_cache_bytes_per_token(lambda *a: True, quiet=True)


def test_kv_failure_names_the_case(capsys):
    ch08.check_kv_cache_bytes_per_token(lambda L, h, d, b: 2 * L * h * d * 4)
    out = capsys.readouterr().out
    assert "✗" in out and "bfloat16" in out


def test_unsolved_stub_and_exceptions_do_not_raise(capsys):
    def stub(*args):
        raise NotImplementedError

    assert not ch08.check_kv_cache_bytes_per_token(stub)
    assert "not solved yet" in capsys.readouterr().out
    assert not ch08.check_crossover_length(lambda s, p: 1 / 0)
    assert "ZeroDivisionError" in capsys.readouterr().out


def crossover_right(fixed_state_bytes, bytes_per_token):
    return max(1, math.floor(fixed_state_bytes / bytes_per_token) + 1)


def test_crossover_length(capsys):
    assert ch08.check_crossover_length(crossover_right)
    assert "✓" in capsys.readouterr().out
    assert not ch08.check_crossover_length(lambda s, p: max(1, math.ceil(s / p)))  # >= instead of >
    assert "equals the state" in capsys.readouterr().out
    assert not ch08.check_crossover_length(lambda s, p: s / p)  # no rounding
    assert "whole number" in capsys.readouterr().out
    assert not ch08.check_crossover_length(lambda s, p: None, quiet=True)
