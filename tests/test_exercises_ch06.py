"""Chapter 6's exercise checkers: right solutions pass, typical mistakes fail with a useful hint."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from linattn_edu.exercises import ch06
from linattn_edu.reference import linear_scan

# --------------------------------------------------------------------------------------------
# Exercise 1: the combine of two scan elements
# --------------------------------------------------------------------------------------------


def combine_right(left, right):
    (a1, b1), (a2, b2) = left, right
    return a1 * a2, a2 * b1 + b2


def test_combine_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch06.check_scan_combine(combine_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ scan_combine") and "associative" in out and "max |err|" in out


def test_combine_list_and_torch_results_accepted() -> None:
    assert ch06.check_scan_combine(lambda l, r: list(combine_right(l, r)), quiet=True) is True
    fn = lambda l, r: tuple(torch.from_numpy(np.asarray(v)) for v in combine_right(l, r))  # noqa: E731
    assert ch06.check_scan_combine(fn, quiet=True) is True


@pytest.mark.parametrize(
    "fn, hint",
    [
        (lambda l, r: (l[0] * r[0], l[0] * r[1] + l[1]),
         "the right element's a multiplies the left's b"),  # swapped: right first, then left
        (lambda l, r: (l[0] * r[0], l[1] + r[1]), "not b1 + b2"),
        (lambda l, r: (l[0] * r[0], l[0] * l[1] + r[1]), "not a1·b1 + b2"),
        (lambda l, r: (l[0] * r[0], l[0] * r[0] * l[1] + r[1]), "only a2 (not a1·a2)"),
        (lambda l, r: (l[0] * r[0], r[0] * (l[1] + r[1])), "not a2·(b1 + b2)"),
        (lambda l, r: (l[0] + r[0], r[0] * l[1] + r[1]), "compose by multiplication"),
    ],
)
def test_combine_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch06.check_scan_combine(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ scan_combine") and hint in out and "max |err|" in out


def test_combine_swapped_is_associative_but_other_order(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch06.check_scan_combine(lambda l, r: (l[0] * r[0], l[0] * r[1] + l[1])) is False
    assert "other order" in capsys.readouterr().out
    assert ch06.check_scan_combine(lambda l, r: (l[0] * r[0], l[0] * l[1] + r[1])) is False
    assert "not associative" in capsys.readouterr().out


def test_combine_stateful_not_associative(capsys: pytest.CaptureFixture[str]) -> None:
    calls = []

    def stateful(left, right):  # right on the checker's cases, then drifts
        calls.append(1)
        a, b = combine_right(left, right)
        return a, b + (len(calls) > 6) * 1e-3 * len(calls)

    assert ch06.check_scan_combine(stateful) is False
    assert "(x∘y)∘z ≠ x∘(y∘z)" in capsys.readouterr().out


def test_combine_stub_and_bad_return(capsys: pytest.CaptureFixture[str]) -> None:
    def stub(left, right):
        raise NotImplementedError

    assert ch06.check_scan_combine(stub) is False
    assert "not solved yet" in capsys.readouterr().out
    assert ch06.check_scan_combine(lambda l, r: l[0] * r[0]) is False
    assert "return a tuple (a, b)" in capsys.readouterr().out
    assert ch06.check_scan_combine(lambda l, r: None) is False
    assert "None" in capsys.readouterr().out
    assert ch06.check_scan_combine(lambda l, r: (l[0] * r[0], l[1] @ r[1])) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ scan_combine") and ("shape" in out or "raised" in out)
    assert ch06.check_scan_combine(stub, quiet=True) is False
    assert ch06.check_scan_combine(combine_right, quiet=True) is True
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------------------------
# Exercise 2: the associative scan
# --------------------------------------------------------------------------------------------


def scan_right(a, b):
    a, b = a.copy(), b.copy()
    d = 1
    while d < len(a):
        a[d:], b[d:] = a[:-d] * a[d:], a[d:] * b[:-d] + b[d:]
        d *= 2
    return b


def scan_loop(a, b):
    h, state = np.empty_like(b), np.zeros(b.shape[1])
    for t in range(len(b)):
        state = a[t] * state + b[t]
        h[t] = state
    return h


def _hs(update, n_steps=lambda t: int(np.ceil(np.log2(t))) if t > 1 else 0):
    def fn(a, b):
        a, b = a.copy(), b.copy()
        for k in range(n_steps(len(a))):
            update(a, b, 2**k)
        return b
    return fn


def _step(a, b, d):
    a[d:], b[d:] = a[:-d] * a[d:], a[d:] * b[:-d] + b[d:]


def _a_first(a, b, d):
    a[d:] = a[:-d] * a[d:]
    b[d:] = a[d:] * b[:-d] + b[d:]


def _ascending(a, b, d):
    for t in range(d, len(a)):
        a[t], b[t] = a[t - d] * a[t], a[t] * b[t - d] + b[t]


def _swapped(a, b, d):
    a[d:], b[d:] = a[:-d] * a[d:], a[:-d] * b[d:] + b[:-d]


def test_scan_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch06.check_associative_scan(scan_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ associative_scan") and "max |err|" in out and "Values only" in out


@pytest.mark.parametrize(
    "fn",
    [scan_loop,  # values only: a sequential loop passes too
     lambda a, b: linear_scan(a[None], b[None], method="associative")[0][0],
     lambda a, b: torch.from_numpy(scan_right(a, b))],
)
def test_scan_other_right_forms(fn) -> None:
    assert ch06.check_associative_scan(fn, quiet=True) is True


@pytest.mark.parametrize(
    "fn, hint",
    [
        (_hs(_step, n_steps=lambda t: int(np.log2(t))), "too few steps"),
        (_hs(_a_first), "the new b uses the old a"),
        (_hs(_ascending), "from left to right"),
        (_hs(_swapped), "the later element's a multiplies the earlier prefix's b"),
        (lambda a, b: np.concatenate([np.zeros_like(b[:1]), scan_right(a, b)[:-1]]), "inclusive"),
        (lambda a, b: np.cumprod(a, axis=0), "not the a half"),
        (lambda a, b: np.cumsum(a * b, axis=0), "a_t multiplies the previous state"),
    ],
)
def test_scan_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch06.check_associative_scan(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ associative_scan") and hint in out and "max |err|" in out


def test_scan_stub_and_bad_return(capsys: pytest.CaptureFixture[str]) -> None:
    def stub(a, b):
        raise NotImplementedError

    assert ch06.check_associative_scan(stub) is False
    assert "not solved yet" in capsys.readouterr().out
    assert ch06.check_associative_scan(lambda a, b: (scan_right(a, b), scan_right(a, b)[-1])) is False
    assert "return h alone" in capsys.readouterr().out
    assert ch06.check_associative_scan(lambda a, b: scan_right(a, b).T) is False
    assert "shape" in capsys.readouterr().out
    assert ch06.check_associative_scan(lambda a, b: a[len(a)]) is False
    assert "raised IndexError" in capsys.readouterr().out
    assert ch06.check_associative_scan(stub, quiet=True) is False
    assert ch06.check_associative_scan(scan_right, quiet=True) is True
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------------------------
# Exercise 3: one RG-LRU step
# --------------------------------------------------------------------------------------------


def rg_step_right(h_prev, x_t, r_t, i_t, a_param, c=8.0):
    log_a = -np.logaddexp(0.0, -a_param)  # log σ(Λ) = -softplus(-Λ)
    log_a_t = c * r_t * log_a
    return np.exp(log_a_t) * h_prev + np.sqrt(-np.expm1(2.0 * log_a_t)) * (i_t * x_t)


def rg_step_torch(h_prev, x_t, r_t, i_t, a_param, c=8.0):
    h, x, r, i, lam = (torch.from_numpy(v) for v in (h_prev, x_t, r_t, i_t, a_param))
    log_a_t = -c * r * torch.nn.functional.softplus(-lam)
    return torch.exp(log_a_t) * h + torch.sqrt(-torch.expm1(2 * log_a_t)) * i * x


def _rg(*, log_a=lambda lam: -np.logaddexp(0.0, -lam), use_c=True, use_r=True, use_i=True, carry=True,
        mult=lambda log_a_t, log_a: np.sqrt(-np.expm1(2.0 * log_a_t)), fixed_c=None):
    def fn(h_prev, x_t, r_t, i_t, a_param, c=8.0):
        c = fixed_c if fixed_c is not None else c
        la = log_a(a_param)
        log_a_t = (c if use_c else 1.0) * (r_t if use_r else 1.0) * la
        return (np.exp(log_a_t) * h_prev if carry else 0.0) + mult(log_a_t, la) * ((i_t if use_i else 1.0) * x_t)
    return fn


def rg_step_naive_sqrt(h_prev, x_t, r_t, i_t, a_param, c=8.0):
    a_t = np.exp(c * r_t * -np.logaddexp(0.0, -a_param))
    return a_t * h_prev + np.sqrt(1.0 - a_t**2) * (i_t * x_t)


def rg_step_linear_space(h_prev, x_t, r_t, i_t, a_param, c=8.0):
    a_t = (1.0 / (1.0 + np.exp(-a_param))) ** (c * r_t)
    return a_t * h_prev + np.sqrt(1.0 - a_t**2) * (i_t * x_t)


def test_rg_step_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch06.check_rg_lru_step(rg_step_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ rg_lru_step") and "max |err|" in out and "relative err at Λ = 30" in out


def test_rg_step_torch_accepted() -> None:
    assert ch06.check_rg_lru_step(rg_step_torch, quiet=True) is True


@pytest.mark.parametrize(
    "fn, hint",
    [
        (rg_step_naive_sqrt, "-np.expm1(2 * log_a_t)"),
        (rg_step_linear_space, "-np.expm1(2 * log_a_t)"),
        (_rg(log_a=lambda lam: np.log(1.0 / (1.0 + np.exp(-lam)))), "np.log(σ(Λ))"),
        (_rg(fixed_c=8.0), "use the c argument"),
        (_rg(use_c=False), "multiply by c"),
        (_rg(use_r=False), "the recurrence gate r_t scales the exponent"),
        (_rg(log_a=lambda lam: -np.logaddexp(0.0, lam)), "a = σ(Λ)"),
        (_rg(use_i=False), "gate the input"),
        (_rg(carry=False), "carry the state"),
        (_rg(mult=lambda log_a_t, log_a: 1.0), "normalize the input"),
        (_rg(mult=lambda log_a_t, log_a: -np.expm1(log_a_t)), "not 1 - a_t"),
        (_rg(mult=lambda log_a_t, log_a: np.sqrt(-np.expm1(2.0 * log_a))), "not √(1 - a²)"),
    ],
)
def test_rg_step_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch06.check_rg_lru_step(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ rg_lru_step") and hint in out and "max |err|" in out


def test_rg_step_naive_sqrt_fails_only_the_extreme_case(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch06.check_rg_lru_step(rg_step_naive_sqrt) is False
    out = capsys.readouterr().out
    assert "Λ = 30" in out and "relative err" in out and "exactly 0" in out


def test_rg_step_stub_and_bad_return(capsys: pytest.CaptureFixture[str]) -> None:
    def stub(h_prev, x_t, r_t, i_t, a_param, c=8.0):
        raise NotImplementedError

    assert ch06.check_rg_lru_step(stub) is False
    assert "not solved yet" in capsys.readouterr().out
    assert ch06.check_rg_lru_step(lambda h, x, r, i, lam: rg_step_right(h, x, r, i, lam)) is False
    assert "raised TypeError" in capsys.readouterr().out  # no c parameter
    assert ch06.check_rg_lru_step(lambda *args, c=8.0: (rg_step_right(*args, c=c), None)) is False
    assert "return h_t alone" in capsys.readouterr().out
    assert ch06.check_rg_lru_step(lambda *args, c=8.0: rg_step_right(*args, c=c)[None]) is False
    assert "shape" in capsys.readouterr().out
    assert ch06.check_rg_lru_step(lambda *args, c=8.0: None) is False
    assert "None" in capsys.readouterr().out
    assert ch06.check_rg_lru_step(stub, quiet=True) is False
    assert ch06.check_rg_lru_step(rg_step_right, quiet=True) is True
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------------------------
# Exercise 4: the causal depthwise Conv1D
# --------------------------------------------------------------------------------------------


def conv_right(x, weight, bias):
    k, t = weight.shape[1], x.shape[1]
    padded = np.concatenate([np.zeros((x.shape[0], k - 1, x.shape[2])), x], axis=1)
    return bias + sum(weight[:, j] * padded[:, j:j + t] for j in range(k))


def conv_torch(x, weight, bias):
    k = weight.shape[1]
    xt = torch.nn.functional.pad(torch.from_numpy(x).transpose(1, 2), (k - 1, 0))
    y = torch.nn.functional.conv1d(xt, torch.from_numpy(weight)[:, None], torch.from_numpy(bias), groups=x.shape[2])
    return y.transpose(1, 2)


def conv_np_convolve(x, weight, bias):  # np.convolve flips the kernel
    y = np.empty_like(x)
    for bi in range(x.shape[0]):
        for c in range(x.shape[2]):
            y[bi, :, c] = np.convolve(x[bi, :, c], weight[c])[: x.shape[1]] + bias[c]
    return y


def conv_full(x, weight, bias):  # T + K - 1 outputs: zeros padded on both sides
    k, t = weight.shape[1], x.shape[1]
    zeros = np.zeros((x.shape[0], k - 1, x.shape[2]))
    padded = np.concatenate([zeros, x, zeros], axis=1)
    return bias + sum(weight[:, j] * padded[:, j:j + t + k - 1] for j in range(k))


def _padded(left, right, flip=False):
    def fn(x, weight, bias):
        w = weight[:, ::-1] if flip else weight
        k, t = w.shape[1], x.shape[1]
        padded = np.concatenate([np.zeros((x.shape[0], left(k), x.shape[2])), x,
                                 np.zeros((x.shape[0], right(k), x.shape[2]))], axis=1)
        return bias + sum(w[:, j] * padded[:, j:j + t] for j in range(k))
    return fn


def test_conv_right(capsys: pytest.CaptureFixture[str]) -> None:
    assert ch06.check_causal_conv1d(conv_right) is True
    out = capsys.readouterr().out
    assert out.startswith("✓ causal_conv1d") and "T < K" in out and "max |err|" in out


def test_conv_torch_accepted() -> None:
    assert ch06.check_causal_conv1d(conv_torch, quiet=True) is True


@pytest.mark.parametrize(
    "fn, hint",
    [
        (conv_np_convolve, "kernel flipped"),
        (_padded(lambda k: k - 1, lambda k: 0, flip=True), "kernel flipped"),
        (_padded(lambda k: 0, lambda k: k - 1), "right-padded (non-causal)"),
        (_padded(lambda k: 0, lambda k: k - 1, flip=True), "reads the future (right-padded) and flips"),
        (_padded(lambda k: k, lambda k: 0), "yours stops at x_{t-1}"),
        (_padded(lambda k: k - 2, lambda k: 1), "yours reads x_{t+1}"),
        (lambda x, w, b: conv_right(x, w, 0 * b), "add the bias"),
    ],
)
def test_conv_wrong(fn, hint: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ch06.check_causal_conv1d(fn) is False
    out = capsys.readouterr().out
    assert out.startswith("✗ causal_conv1d") and hint in out and "max |err|" in out


def test_conv_stub_and_bad_return(capsys: pytest.CaptureFixture[str]) -> None:
    def stub(x, weight, bias):
        raise NotImplementedError

    assert ch06.check_causal_conv1d(stub) is False
    assert "not solved yet" in capsys.readouterr().out
    assert ch06.check_causal_conv1d(conv_full) is False
    assert "'full' convolution" in capsys.readouterr().out
    assert ch06.check_causal_conv1d(lambda x, w, b: conv_right(x, w, b)[:, w.shape[1] - 1:]) is False
    assert "pad K - 1 = 2 zeros on the left" in capsys.readouterr().out
    assert ch06.check_causal_conv1d(lambda x, w, b: None) is False
    assert "None" in capsys.readouterr().out
    assert ch06.check_causal_conv1d(stub, quiet=True) is False
    assert ch06.check_causal_conv1d(conv_right, quiet=True) is True
    assert capsys.readouterr().out == ""


# --------------------------------------------------------------------------------------------
# Issue 14: the work-efficient scan and the chunked scan with a decayed carry
# --------------------------------------------------------------------------------------------


def blelloch_right(a, b, combine):
    t, c = a.shape
    n = 1 << max(0, (t - 1).bit_length())
    A, B = np.ones((n, c)), np.zeros((n, c))
    A[:t], B[:t] = a, b
    step = 1
    while step < n:
        right = np.arange(2 * step - 1, n, 2 * step)
        A[right], B[right] = combine((A[right - step], B[right - step]), (A[right], B[right]))
        step *= 2
    step = n // 4
    while step >= 1:
        left = np.arange(2 * step - 1, n - step, 2 * step)
        A[left + step], B[left + step] = combine((A[left], B[left]), (A[left + step], B[left + step]))
        step //= 2
    return B[:t]


def hillis_steele_with_combine(a, b, combine):
    a, b = a.copy(), b.copy()
    step = 1
    while step < len(a):
        na, nb = combine((a[:-step], b[:-step]), (a[step:], b[step:]))
        a[step:], b[step:] = na, nb
        step *= 2
    return b


def loop_with_combine(a, b, combine):
    a, b = a.copy(), b.copy()
    for t in range(1, len(a)):
        a[t], b[t] = combine((a[t - 1], b[t - 1]), (a[t], b[t]))
    return b


def blelloch_without_combine(a, b, combine):
    h, out = np.zeros(a.shape[1]), []
    for a_t, b_t in zip(a, b):
        h = a_t * h + b_t
        out.append(h)
    return np.array(out)


def test_blelloch_scan_accepts_work_efficient_scan(capsys):
    assert ch06.check_blelloch_scan(blelloch_right)
    assert capsys.readouterr().out.startswith("✓ blelloch_scan")


def test_blelloch_scan_rejects_too_much_work_or_depth(capsys):
    assert not ch06.check_blelloch_scan(hillis_steele_with_combine)
    assert "combined pairs" in capsys.readouterr().out
    assert not ch06.check_blelloch_scan(loop_with_combine)
    assert "calls of combine" in capsys.readouterr().out
    # right values but no combine calls at all is a loop in disguise: zero work counted, so it passes
    # the bounds; the values are what is checked then (documented limitation of a value checker)
    assert not ch06.check_blelloch_scan(lambda a, b, combine: blelloch_right(a, b, combine)[::-1])
    assert "max |err|" in capsys.readouterr().out


def test_blelloch_combine_rejects_bad_shapes(capsys):
    def swapped_shapes(a, b, combine):
        combine((a[:1], b[:1]), (a[1:, :1], b[1:, :1]))
        return blelloch_right(a, b, combine)

    assert not ch06.check_blelloch_scan(swapped_shapes)
    assert "ValueError" in capsys.readouterr().out


def chunked_right(a, b, chunk, h0):
    out, carry = np.empty_like(b), np.asarray(h0, dtype=float)
    for start in range(0, len(a), chunk):
        ac, bc = a[start:start + chunk], b[start:start + chunk]
        local, h = np.empty_like(bc), np.zeros_like(carry)
        for i in range(len(ac)):
            h = ac[i] * h + bc[i]
            local[i] = h
        out[start:start + len(ac)] = local + np.cumprod(ac, axis=0) * carry
        carry = out[start + len(ac) - 1]
    return out


def chunked_no_decay(a, b, chunk, h0):
    out, carry = np.empty_like(b), np.asarray(h0, dtype=float)
    for start in range(0, len(a), chunk):
        ac, bc = a[start:start + chunk], b[start:start + chunk]
        local, h = np.empty_like(bc), np.zeros_like(carry)
        for i in range(len(ac)):
            h = ac[i] * h + bc[i]
            local[i] = h
        out[start:start + len(ac)] = local + carry
        carry = out[start + len(ac) - 1]
    return out


def chunked_by_division(a, b, chunk, h0):
    """h_t = A_t (h0 + sum_s b_s / A_s): exact in exact arithmetic, unstable when a gate is ~0."""
    cum = np.cumprod(a, axis=0)
    return cum * (h0 + np.cumsum(b / cum, axis=0))


def test_chunked_scan(capsys):
    assert ch06.check_chunked_scan(chunked_right)
    assert capsys.readouterr().out.startswith("✓ chunked_scan")
    assert not ch06.check_chunked_scan(chunked_no_decay)
    assert "cumprod" in capsys.readouterr().out
    with np.errstate(all="ignore"):
        assert not ch06.check_chunked_scan(chunked_by_division)
    assert "✗ chunked_scan" in capsys.readouterr().out


def test_new_scan_checkers_do_not_raise_on_stubs(capsys):
    def stub(*args):
        raise NotImplementedError

    assert not ch06.check_blelloch_scan(stub)
    assert not ch06.check_chunked_scan(stub)
    assert capsys.readouterr().out.count("not solved yet") == 2


def conv_backward_right(x, weight, dy):
    k, t = weight.shape[1], x.shape[1]
    dy_pad = np.concatenate([dy, np.zeros((dy.shape[0], k - 1, dy.shape[2]))], axis=1)   # zeros after the end
    x_pad = np.concatenate([np.zeros((x.shape[0], k - 1, x.shape[2])), x], axis=1)       # zeros before the start
    dx = sum(weight[:, j] * dy_pad[:, k - 1 - j:k - 1 - j + t] for j in range(k))
    dweight = np.stack([np.einsum("btc,btc->c", dy, x_pad[:, j:j + t]) for j in range(k)], axis=1)
    return dx, dweight, dy.sum(axis=(0, 1))


def conv_backward_causal_dx(x, weight, dy):
    _, dweight, dbias = conv_backward_right(x, weight, dy)
    return ch06.causal_conv1d(dy, weight), dweight, dbias


def conv_backward_first_batch_only(x, weight, dy):
    dx, _, _ = conv_backward_right(x, weight, dy)
    _, dweight, dbias = conv_backward_right(x[:1], weight, dy[:1])
    return dx, dweight, dbias


def test_causal_conv1d_backward(capsys):
    assert ch06.check_causal_conv1d_backward(conv_backward_right)
    assert capsys.readouterr().out.startswith("✓ causal_conv1d_backward")
    assert not ch06.check_causal_conv1d_backward(conv_backward_causal_dx)
    assert "from the *future*" in capsys.readouterr().out
    assert not ch06.check_causal_conv1d_backward(conv_backward_first_batch_only)
    assert "sum over B" in capsys.readouterr().out
    assert not ch06.check_causal_conv1d_backward(lambda x, w, dy: conv_backward_right(x, w, dy)[:2])
    assert "tuple (dx, dweight, dbias)" in capsys.readouterr().out


def test_causal_conv1d_backward_stub_does_not_raise(capsys):
    def stub(*a):
        raise NotImplementedError

    assert not ch06.check_causal_conv1d_backward(stub)
    assert "not solved yet" in capsys.readouterr().out


# --- the decay bridge: chunked linear attention with a scalar gate ---------------------------


def _chunked_decay_solution(q, k, v, a, chunk):
    out, S = np.empty((q.shape[0], v.shape[1])), np.zeros((q.shape[1], v.shape[1]))
    for start in range(0, len(a), chunk):
        qc, kc, vc, ac = q[start:start + chunk], k[start:start + chunk], v[start:start + chunk], a[start:start + chunk]
        L = np.cumsum(np.log(ac))                                    # log prod of gates up to i, inside the chunk
        decay = np.tril(np.exp(np.minimum(L[:, None] - L[None, :], 0.0)))
        out[start:start + chunk] = ((qc @ kc.T) * decay) @ vc + (qc * np.exp(L)[:, None]) @ S
        S = np.exp(L[-1]) * S + (kc * np.exp(L[-1] - L)[:, None]).T @ vc
    return out


def test_chunked_decay_solution_passes(capsys):
    assert ch06.check_chunked_decay_attention(_chunked_decay_solution)
    assert "✓" in capsys.readouterr().out


def test_chunked_decay_mistakes_fail_with_hints(capsys):
    from linattn_edu.exercises.ch06 import _chunked_decay_by_division, _chunked_decay_no_carry_decay

    assert not ch06.check_chunked_decay_attention(_chunked_decay_by_division)
    assert "underflows" in capsys.readouterr().out
    assert not ch06.check_chunked_decay_attention(_chunked_decay_no_carry_decay)
    assert "carried state must be decayed" in capsys.readouterr().out

    def stub(q, k, v, a, chunk):
        raise NotImplementedError

    assert not ch06.check_chunked_decay_attention(stub)
    assert "not solved yet" in capsys.readouterr().out
