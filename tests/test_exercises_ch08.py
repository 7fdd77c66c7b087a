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


# --------------------------------------------------------------------------------------------
# Issue 14's exercises: the delta rule and the crosstalk of an additive memory
# --------------------------------------------------------------------------------------------


def delta_right(k, v, q, beta):
    state = np.zeros((v.shape[1], k.shape[1]))
    out = []
    for k_t, v_t, q_t, b_t in zip(k, v, q, beta):
        state = state + b_t * np.outer(v_t - state @ k_t, k_t)
        out.append(state @ q_t)
    return np.array(out)


def delta_additive(k, v, q, beta):
    state = np.zeros((v.shape[1], k.shape[1]))
    out = []
    for k_t, v_t, q_t, b_t in zip(k, v, q, beta):
        state = state + b_t * np.outer(v_t, k_t)
        out.append(state @ q_t)
    return np.array(out)


def delta_read_first(k, v, q, beta):
    state = np.zeros((v.shape[1], k.shape[1]))
    out = []
    for k_t, v_t, q_t, b_t in zip(k, v, q, beta):
        out.append(state @ q_t)
        state = state + b_t * np.outer(v_t - state @ k_t, k_t)
    return np.array(out)


def test_delta_rule_accepts_right_answer(capsys):
    assert ch08.check_delta_rule_memory(delta_right)
    assert capsys.readouterr().out.startswith("✓ delta_rule_memory")
    assert ch08.check_delta_rule_memory(lambda *a: torch.from_numpy(delta_right(*a)), quiet=True)


def test_delta_rule_rejects_mistakes_with_hints(capsys):
    assert not ch08.check_delta_rule_memory(delta_additive)
    assert "v_t - S k_t" in capsys.readouterr().out
    assert not ch08.check_delta_rule_memory(delta_read_first)
    assert "read after writing" in capsys.readouterr().out
    assert not ch08.check_delta_rule_memory(lambda k, v, q, b: delta_right(k, v, q, b)[:, :1])  # wrong shape
    assert "shape" in capsys.readouterr().out


def test_delta_rule_overwrites_a_repeated_key():
    """With beta = 1 and a unit key written twice, recall returns the second value exactly."""
    k = np.eye(3)[[0, 1, 0]]
    v = np.array([[1.0, 2.0], [3.0, 4.0], [-7.0, 0.5]])
    out = ch08.delta_rule_reference(k, v, k, np.ones(3))
    np.testing.assert_allclose(out[2], v[2], atol=1e-12)
    np.testing.assert_allclose(out[1], v[1], atol=1e-12)


def test_crosstalk_variance(capsys):
    assert ch08.check_crosstalk_variance(lambda n, d: (n - 1) / d)
    assert "✓" in capsys.readouterr().out
    assert not ch08.check_crosstalk_variance(lambda n, d: n / d)
    assert "signal, not noise" in capsys.readouterr().out
    assert not ch08.check_crosstalk_variance(lambda n, d: (n - 1) / d**2)
    assert "sum to 1" in capsys.readouterr().out
    assert not ch08.check_crosstalk_variance(lambda n, d: None, quiet=True)


def test_crosstalk_formula_matches_monte_carlo():
    """The derivation's (N - 1) / D agrees with a simulation within sampling error (~5% at 2000 trials)."""
    for n, d in [(16, 64), (8, 8)]:
        measured = ch08.crosstalk_monte_carlo(n, d, trials=4000, seed=1)
        assert abs(measured - (n - 1) / d) < 0.1 * (n - 1) / d


def test_new_checkers_do_not_raise_on_stubs(capsys):
    def stub(*args):
        raise NotImplementedError

    assert not ch08.check_delta_rule_memory(stub)
    assert not ch08.check_crosstalk_variance(stub)
    assert capsys.readouterr().out.count("not solved yet") == 2
