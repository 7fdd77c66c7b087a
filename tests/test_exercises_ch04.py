"""Chapter 4's exercise checkers: right solutions pass, typical mistakes fail with a useful hint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from linattn_edu.exercises import ch04

# --------------------------------------------------------------------------------------------
# Exercise 1: elu + 1
# --------------------------------------------------------------------------------------------


def elu_right(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


def elu_no_plus_one(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0.0)))


def elu_exp_everywhere(x: np.ndarray) -> np.ndarray:
    return np.exp(np.minimum(x, 700.0))


def elu_relu_plus_one(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0) + 1.0


def elu_overflowing(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x + 1.0, np.exp(x))  # right values, but exp(800) overflows


def test_elu_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch04.check_elu_feature_map(elu_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ elu_feature_map") and "max |err|" in out


def test_elu_torch_result_accepted() -> None:
    fn = lambda x: torch.nn.functional.elu(torch.from_numpy(x)) + 1  # noqa: E731
    assert ch04.check_elu_feature_map(fn, quiet=True) is True


@pytest.mark.parametrize(
    "fn, hint",
    [
        (elu_no_plus_one, "add 1"),
        (elu_exp_everywhere, "exp(x) is right only for x <= 0"),
        (elu_relu_plus_one, "relu(x) + 1"),
        (elu_overflowing, "np.where computes both"),
    ],
)
def test_elu_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch04.check_elu_feature_map(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ elu_feature_map") and hint in out


def test_elu_stub_and_crash(capsys: pytest.CaptureFixture[str]) -> None:
    def stub(x):
        raise NotImplementedError

    assert ch04.check_elu_feature_map(stub) is False
    assert "not solved yet" in capsys.readouterr().out
    assert ch04.check_elu_feature_map(lambda x: x[..., :-1] + 1) is False
    assert "shape" in capsys.readouterr().out
    assert ch04.check_elu_feature_map(lambda x: None) is False
    assert "None" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# Exercise 2: one chunk
# --------------------------------------------------------------------------------------------


def chunk_right(q_c, k_c, v_c, S, z, eps=1e-6):
    w = np.tril(q_c @ k_c.T)
    num = w @ v_c + q_c @ S
    den = w.sum(axis=1) + q_c @ z
    return num / (den[:, None] + eps), S + k_c.T @ v_c, z + k_c.sum(axis=0)


def chunk_strict_mask(q_c, k_c, v_c, S, z, eps=1e-6):
    w = np.tril(q_c @ k_c.T, k=-1)
    return (w @ v_c + q_c @ S) / ((w.sum(1) + q_c @ z)[:, None] + eps), S + k_c.T @ v_c, z + k_c.sum(0)


def chunk_no_mask(q_c, k_c, v_c, S, z, eps=1e-6):
    w = q_c @ k_c.T
    return (w @ v_c + q_c @ S) / ((w.sum(1) + q_c @ z)[:, None] + eps), S + k_c.T @ v_c, z + k_c.sum(0)


def chunk_updated_state_first(q_c, k_c, v_c, S, z, eps=1e-6):
    S, z = S + k_c.T @ v_c, z + k_c.sum(0)
    w = np.tril(q_c @ k_c.T)
    return (w @ v_c + q_c @ S) / ((w.sum(1) + q_c @ z)[:, None] + eps), S, z


def chunk_no_intra_den(q_c, k_c, v_c, S, z, eps=1e-6):
    w = np.tril(q_c @ k_c.T)
    return (w @ v_c + q_c @ S) / ((q_c @ z)[:, None] + eps), S + k_c.T @ v_c, z + k_c.sum(0)


def chunk_z_not_updated(q_c, k_c, v_c, S, z, eps=1e-6):
    o, s_new, _ = chunk_right(q_c, k_c, v_c, S, z, eps)
    return o, s_new, z


def chunk_s_not_updated(q_c, k_c, v_c, S, z, eps=1e-6):
    o, _, z_new = chunk_right(q_c, k_c, v_c, S, z, eps)
    return o, S, z_new


def test_chunk_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch04.check_chunk_step(chunk_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ chunk_step") and "max |err|" in out


def test_chunk_torch_results_accepted() -> None:
    def fn(q_c, k_c, v_c, S, z, eps=1e-6):
        return tuple(torch.from_numpy(np.asarray(x)) for x in chunk_right(q_c, k_c, v_c, S, z, eps))

    assert ch04.check_chunk_step(fn, quiet=True) is True


@pytest.mark.parametrize(
    "fn, hint",
    [
        (chunk_strict_mask, "keep the diagonal"),
        (chunk_no_mask, "mask the future"),
        (chunk_updated_state_first, "*before* this chunk's update"),
        (chunk_no_intra_den, "intra-chunk part too"),
        (chunk_z_not_updated, "z_new = z + k_c.sum(axis=0)"),
        (chunk_s_not_updated, "S_new = S + k_cᵀ v_c"),
    ],
)
def test_chunk_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch04.check_chunk_step(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ chunk_step") and hint in out and "max |err|" in out


def test_chunk_wrong_return_and_stub(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch04.check_chunk_step(lambda *a, **k: chunk_right(*a, **k)[0]) is False
    assert "return a tuple" in capsys.readouterr().out

    def stub(*args):
        raise NotImplementedError

    assert ch04.check_chunk_step(stub) is False
    assert "not solved yet" in capsys.readouterr().out


# --------------------------------------------------------------------------------------------
# Exercise 3: decode-state bytes
# --------------------------------------------------------------------------------------------

FDIM = {"identity": lambda d: d, "elu": lambda d: d, "relu": lambda d: d,
        "taylor": lambda d: 1 + d + d * d, "taylor_compact": lambda d: 1 + d + d * (d + 1) // 2}


def state_right(feature_map, head_dim, value_dim, *, n_heads, n_layers, bytes_per_element=2, normalize=True):
    f = FDIM[feature_map](head_dim)
    per_head = f * value_dim + (f if normalize else 0)
    return n_layers * n_heads * per_head * bytes_per_element


def state_no_z(feature_map, head_dim, value_dim, *, n_heads, n_layers, bytes_per_element=2, normalize=True):
    return n_layers * n_heads * FDIM[feature_map](head_dim) * value_dim * bytes_per_element


def state_always_z(feature_map, head_dim, value_dim, *, n_heads, n_layers, bytes_per_element=2, normalize=True):
    f = FDIM[feature_map](head_dim)
    return n_layers * n_heads * (f * value_dim + f) * bytes_per_element


def state_taylor_square(feature_map, head_dim, value_dim, *, n_heads, n_layers, bytes_per_element=2,
                        normalize=True):
    f = head_dim * head_dim if feature_map.startswith("taylor") else head_dim
    return n_layers * n_heads * (f * value_dim + (f if normalize else 0)) * bytes_per_element


def state_one_layer(feature_map, head_dim, value_dim, *, n_heads, n_layers, bytes_per_element=2, normalize=True):
    return state_right(feature_map, head_dim, value_dim, n_heads=n_heads, n_layers=1,
                       bytes_per_element=bytes_per_element, normalize=normalize)


def state_float(feature_map, head_dim, value_dim, *, n_heads, n_layers, bytes_per_element=2, normalize=True):
    return float(state_right(feature_map, head_dim, value_dim, n_heads=n_heads, n_layers=n_layers,
                             bytes_per_element=bytes_per_element, normalize=normalize))


def test_state_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch04.check_decode_state_bytes(state_right) is True
    assert capsys.readouterr().out.startswith("✓ decode_state_bytes")


def test_state_numpy_int_accepted() -> None:
    assert ch04.check_decode_state_bytes(lambda *a, **k: np.int64(state_right(*a, **k)), quiet=True) is True


@pytest.mark.parametrize(
    "fn, hint",
    [
        (state_no_z, "also holds z"),
        (state_always_z, "there is no z"),
        (state_taylor_square, "1 + D + D²"),
        (state_one_layer, "multiply by n_layers and n_heads"),
        (state_float, "return an int"),
    ],
)
def test_state_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch04.check_decode_state_bytes(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ decode_state_bytes") and hint in out


# --------------------------------------------------------------------------------------------
# Exercise 4: the backward pass by scans
# --------------------------------------------------------------------------------------------


def backward_right(q, k, v, dy):
    t, f = q.shape
    dv_dim = v.shape[1]
    dq, dk, dv = np.empty_like(q), np.empty_like(k), np.empty_like(v)
    s = np.zeros((f, dv_dim))
    for i in range(t):                      # forward scan: S_i includes token i
        s += np.outer(k[i], v[i])
        dq[i] = s @ dy[i]
    ds = np.zeros((f, dv_dim))
    for j in reversed(range(t)):            # reverse scan: dS_j includes query j
        ds += np.outer(q[j], dy[j])
        dk[j] = ds @ v[j]
        dv[j] = ds.T @ k[j]
    return dq, dk, dv


def backward_exclusive_reverse(q, k, v, dy):
    dq, _, _ = backward_right(q, k, v, dy)
    t, f = q.shape
    dk, dv = np.empty_like(k), np.empty_like(v)
    ds = np.zeros((f, v.shape[1]))
    for j in reversed(range(t)):
        dk[j] = ds @ v[j]
        dv[j] = ds.T @ k[j]
        ds += np.outer(q[j], dy[j])
    return dq, dk, dv


def backward_forward_ds(q, k, v, dy):
    dq, _, _ = backward_right(q, k, v, dy)
    t, f = q.shape
    dk, dv = np.empty_like(k), np.empty_like(v)
    ds = np.zeros((f, v.shape[1]))
    for j in range(t):
        ds += np.outer(q[j], dy[j])
        dk[j] = ds @ v[j]
        dv[j] = ds.T @ k[j]
    return dq, dk, dv


def backward_exclusive_dq(q, k, v, dy):
    _, dk, dv = backward_right(q, k, v, dy)
    dq = np.empty_like(q)
    s = np.zeros((q.shape[1], v.shape[1]))
    for i in range(q.shape[0]):
        dq[i] = s @ dy[i]
        s += np.outer(k[i], v[i])
    return dq, dk, dv


def backward_quadratic(q, k, v, dy):
    a = np.tril(q @ k.T)                    # right values, but a (T, T) matrix
    da = np.tril(dy @ v.T)
    return da @ k, da.T @ q, a.T @ dy


def test_backward_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch04.check_linear_attention_backward(backward_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ linear_attention_backward") and "no T×T matrix" in out


@pytest.mark.parametrize(
    "fn, hint",
    [
        (backward_exclusive_reverse, "includes i = j"),
        (backward_forward_ds, "scan from the end"),
        (backward_exclusive_dq, "including token i itself"),
    ],
)
def test_backward_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch04.check_linear_attention_backward(fn, memory_check=False) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ linear_attention_backward") and hint in out and "max |err|" in out


def test_backward_quadratic_memory_rejected(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch04.check_linear_attention_backward(backward_quadratic, memory_check=False, quiet=True) is True
    assert ch04.check_linear_attention_backward(backward_quadratic) is False
    out = capsys.readouterr().out
    assert "MiB" in out and "never form q kᵀ" in out


def test_backward_stub_and_bad_return(capsys: pytest.CaptureFixture[str]) -> None:
    def stub(q, k, v, dy):
        raise NotImplementedError

    assert ch04.check_linear_attention_backward(stub) is False
    assert "not solved yet" in capsys.readouterr().out
    assert ch04.check_linear_attention_backward(lambda q, k, v, dy: backward_right(q, k, v, dy)[:2]) is False
    assert "return a tuple" in capsys.readouterr().out
