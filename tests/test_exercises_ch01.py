"""Chapter 1's exercise checkers accept a right answer and reject the usual wrong ones."""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pytest

from linattn_edu.exercises import ch01
from linattn_edu.reference import attention_mask, kv_cache_bytes, repeat_kv, softmax, softmax_attention

# ------------------------------------------------------------------------------------------------
# Right answers
# ------------------------------------------------------------------------------------------------


def document_mask(doc_ids: np.ndarray) -> np.ndarray:
    t = doc_ids.shape[0]
    same_doc = doc_ids[:, None] == doc_ids[None, :]
    return np.tril(np.ones((t, t), dtype=bool)) & same_doc


def logsumexp(x: np.ndarray, axis: int = -1) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(x - m), axis=axis))


def gqa_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    b, h, tq, d = q.shape
    h_kv, tk = k.shape[1], k.shape[2]
    qg = q.reshape(b, h_kv, h // h_kv, tq, d)
    s = np.einsum("bgrid,bgjd->bgrij", qg, k) / np.sqrt(d)
    s = np.where(attention_mask(tq, tk), s, -np.inf)
    o = np.einsum("bgrij,bgje->bgrie", softmax(s), v)
    return o.reshape(b, h, tq, v.shape[-1])


def max_context(budget_bytes: int, *, n_layers: int, n_kv_heads: int, head_dim: int,
                bytes_per_element: int, batch: int) -> int:
    per_token = batch * 2 * n_layers * n_kv_heads * head_dim * bytes_per_element
    return budget_bytes // per_token


def online_logsumexp(blocks: Iterable[np.ndarray]) -> np.ndarray:
    m = s = None
    for x in blocks:
        if m is None:
            m = np.full(x.shape[:-1], -np.inf)
            s = np.zeros(x.shape[:-1])
        m_new = np.maximum(m, x.max(axis=-1))
        safe = np.where(np.isneginf(m_new), 0.0, m_new)
        s = s * np.exp(m - safe) + np.exp(x - safe[..., None]).sum(axis=-1)
        m = m_new
    return m + np.log(s)


RIGHT = [
    (ch01.check_document_mask, document_mask, "document_mask"),
    (ch01.check_logsumexp, logsumexp, "logsumexp"),
    (ch01.check_gqa_attention, gqa_attention, "gqa_attention"),
    (ch01.check_max_context, max_context, "max_context"),
    (ch01.check_online_logsumexp, online_logsumexp, "online_logsumexp"),
]


@pytest.mark.parametrize(("checker", "answer", "label"), RIGHT, ids=[r[2] for r in RIGHT])
def test_checker_accepts_right_answer(checker, answer, label, capsys) -> None:
    assert checker(answer) is True
    out = capsys.readouterr().out
    assert out.startswith(f"✓ {label}"), out


# ------------------------------------------------------------------------------------------------
# Wrong answers, each a mistake readers make
# ------------------------------------------------------------------------------------------------


def mask_causal_only(doc_ids: np.ndarray) -> np.ndarray:
    return attention_mask(doc_ids.shape[0])


def mask_documents_only(doc_ids: np.ndarray) -> np.ndarray:
    return doc_ids[:, None] == doc_ids[None, :]


def mask_additive(doc_ids: np.ndarray) -> np.ndarray:
    return np.where(document_mask(doc_ids), 0.0, -np.inf)


def mask_strict(doc_ids: np.ndarray) -> np.ndarray:  # j < i: a token cannot see itself
    return document_mask(doc_ids) & ~np.eye(doc_ids.shape[0], dtype=bool)


def lse_naive(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.log(np.sum(np.exp(x), axis=axis))


def lse_keepdims(x: np.ndarray, axis: int = -1) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    return m + np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True))


def lse_last_axis_only(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return logsumexp(x, axis=-1)


def gqa_tile(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Query head h reads KV head h % H_kv: the np.tile bug."""
    n_rep = q.shape[1] // k.shape[1]
    return softmax_attention(q, np.tile(k, (1, n_rep, 1, 1)), np.tile(v, (1, n_rep, 1, 1)))


def gqa_top_left_causal(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Query i sees keys j <= i even when Tq < Tk (SDPA's is_causal convention)."""
    n_rep = q.shape[1] // k.shape[1]
    tq, tk = q.shape[2], k.shape[2]
    mask = np.tril(np.ones((tq, tk), dtype=bool))
    bias = np.where(mask, 0.0, -np.inf)
    return softmax_attention(q, repeat_kv(k, n_rep), repeat_kv(v, n_rep), causal=False, bias=bias)


def gqa_no_scale(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    return softmax_attention(q, k, v, scale=1.0)


def gqa_returns_none(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> None:
    gqa_attention(q, k, v)


def max_context_float(budget_bytes: int, **cfg: int) -> float:
    return budget_bytes / (2 * cfg["batch"] * cfg["n_layers"] * cfg["n_kv_heads"] * cfg["head_dim"]
                           * cfg["bytes_per_element"])


def max_context_no_factor_two(budget_bytes: int, **cfg: int) -> int:  # forgets V (or K)
    return budget_bytes // (cfg["batch"] * cfg["n_layers"] * cfg["n_kv_heads"] * cfg["head_dim"]
                            * cfg["bytes_per_element"])


def max_context_ignores_batch(budget_bytes: int, **cfg: int) -> int:
    return budget_bytes // kv_cache_bytes(
        1, n_layers=cfg["n_layers"], n_kv_heads=cfg["n_kv_heads"], head_dim=cfg["head_dim"],
        bytes_per_element=cfg["bytes_per_element"],
    )


def online_no_rescale(blocks: Iterable[np.ndarray]) -> np.ndarray:
    """Keeps the first block's max forever: overflows once later logits are larger."""
    m = s = None
    for x in blocks:
        if m is None:
            m = x.max(axis=-1)
            s = np.zeros(x.shape[:-1])
        s = s + np.exp(x - m[..., None]).sum(axis=-1)
    return m + np.log(s)


def online_nan_on_masked_block(blocks: Iterable[np.ndarray]) -> np.ndarray:
    """Right rescaling, but exp(-inf - (-inf)) = nan when a row's first block is fully masked."""
    m = s = None
    for x in blocks:
        if m is None:
            m = np.full(x.shape[:-1], -np.inf)
            s = np.zeros(x.shape[:-1])
        m_new = np.maximum(m, x.max(axis=-1))
        s = s * np.exp(m - m_new) + np.exp(x - m_new[..., None]).sum(axis=-1)
        m = m_new
    return m + np.log(s)


def online_last_block_only(blocks: Iterable[np.ndarray]) -> np.ndarray:
    x = None
    for x in blocks:
        pass
    return logsumexp(x)


WRONG = [
    (ch01.check_document_mask, mask_causal_only),
    (ch01.check_document_mask, mask_documents_only),
    (ch01.check_document_mask, mask_additive),
    (ch01.check_document_mask, mask_strict),
    (ch01.check_logsumexp, lse_naive),
    (ch01.check_logsumexp, lse_keepdims),
    (ch01.check_logsumexp, lse_last_axis_only),
    (ch01.check_gqa_attention, gqa_tile),
    (ch01.check_gqa_attention, gqa_top_left_causal),
    (ch01.check_gqa_attention, gqa_no_scale),
    (ch01.check_gqa_attention, gqa_returns_none),
    (ch01.check_max_context, max_context_float),
    (ch01.check_max_context, max_context_no_factor_two),
    (ch01.check_max_context, max_context_ignores_batch),
    (ch01.check_online_logsumexp, online_no_rescale),
    (ch01.check_online_logsumexp, online_nan_on_masked_block),
    (ch01.check_online_logsumexp, online_last_block_only),
]


@pytest.mark.parametrize(("checker", "answer"), WRONG, ids=[w[1].__name__ for w in WRONG])
def test_checker_rejects_wrong_answer(checker, answer, capsys) -> None:
    """A wrong answer prints one ✗ line and returns False: the checker never raises."""
    with np.errstate(all="ignore"):
        assert checker(answer) is False
    out = capsys.readouterr().out
    assert out.startswith("✗"), out


def test_unattempted_exercise_reports_not_solved(capsys) -> None:
    """The student edition's stubs raise NotImplementedError; checkers print ✗ and return False."""

    def stub(*args, **kwargs):
        raise NotImplementedError("your code here")

    for checker, _, label in RIGHT:
        assert checker(stub) is False
        out = capsys.readouterr().out
        assert out.startswith(f"✗ {label}: not solved yet"), out
