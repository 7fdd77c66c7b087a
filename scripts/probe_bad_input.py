"""Probe the public API with bad input and count how each call fails.

Every probe is one call and an expectation:

* ``raise``: bad input, which must raise ``ValueError``/``TypeError`` whose message names the
  argument (one of a few accepted names);
* ``ok``: valid input (e.g. a NumPy integer where an int is expected, ``eps=0``), which must
  return a result that passes a check (finite, equal to a loop, ...);
* ``either``: a clear error naming the argument *or* a correct result (used where the library may
  choose between restricting the domain and computing the right value).

Verdicts:

* ``clear``: the expected clear error, or a correct result;
* ``obscure``: another exception (an error from deep inside torch/NumPy/Triton, an error that does
  not name the argument, or valid input rejected);
* ``silent``: no exception, but a wrong, NaN or Inf result (or bad input accepted).

Run from the repository root (Triton kernels run in the interpreter on a CPU)::

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 TRITON_INTERPRET=1 python scripts/probe_bad_input.py [-v]

It prints one line per non-clear probe with ``-v`` and the three counts at the end.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import warnings
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

os.environ.setdefault("TRITON_INTERPRET", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from linattn_edu import reference as ref  # noqa: E402
from linattn_edu import kernels as K  # noqa: E402
from linattn_edu import train as train_mod  # noqa: E402
from linattn_edu.models import build_model, feature_map_torch, generate  # noqa: E402
from linattn_edu.models.common import check_tokens  # noqa: E402
from linattn_edu.tasks import mqar  # noqa: E402


@dataclass
class Probe:
    name: str
    call: Callable[[], Any]
    kind: str  # "raise", "ok" or "either"
    args: tuple[str, ...] = ()  # accepted argument names in the message
    check: Callable[[Any], bool] | None = None


PROBES: list[Probe] = []


def raises(name: str, call: Callable[[], Any], *args: str) -> None:
    PROBES.append(Probe(name, call, "raise", args))


def ok(name: str, call: Callable[[], Any], check: Callable[[Any], bool] | None = None) -> None:
    PROBES.append(Probe(name, call, "ok", (), check))


def either(name: str, call: Callable[[], Any], check: Callable[[Any], bool], *args: str) -> None:
    PROBES.append(Probe(name, call, "either", args, check))


def _np(x: Any) -> np.ndarray:
    if isinstance(x, (tuple, list)):
        x = x[0]
    if isinstance(x, torch.Tensor):
        return x.detach().to("cpu", torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def finite(x: Any) -> bool:
    return bool(np.all(np.isfinite(_np(x))))


def close_to(expected: Any, atol: float = 1e-3, rtol: float = 1e-3) -> Callable[[Any], bool]:
    def check(x: Any) -> bool:
        a, e = _np(x), _np(expected)
        return a.shape == e.shape and bool(np.allclose(a, e, atol=atol, rtol=rtol, equal_nan=False))

    return check


def verdict(p: Probe) -> tuple[str, str]:
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            out = p.call()
    except (ValueError, TypeError) as err:
        msg = str(err)
        if p.kind in ("raise", "either") and any(a in msg for a in p.args):
            return "clear", msg.splitlines()[0][:160] if msg else ""
        return "obscure", f"{type(err).__name__}: {msg.splitlines()[0][:160] if msg else ''}"
    except Exception as err:  # noqa: BLE001 - the point is to classify anything
        msg = str(err)
        return "obscure", f"{type(err).__name__}: {msg.splitlines()[0][:160] if msg else ''}"
    if p.kind == "raise":
        return "silent", "no exception"
    if p.check is not None:
        try:
            good = p.check(out)
        except Exception as err:  # noqa: BLE001
            return "silent", f"result not checkable: {type(err).__name__}: {err}"
        if not good:
            return "silent", "wrong / non-finite result"
    return "clear", "ok"


# ------------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------------

rng = np.random.default_rng(0)
T, D = 8, 16
q_np = rng.standard_normal((2, T, D))
k_np = rng.standard_normal((2, T, D))
v_np = rng.standard_normal((2, T, D))
q_nan_v = v_np.copy()
q_nan_v[:, -1] = np.nan


def t4(*shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(*shape, dtype=dtype)


qf, kf, vf = t4(1, 2, 16, 16), t4(1, 2, 16, 16), t4(1, 2, 16, 16)
bad_scalars_int = {"zero": 0, "neg": -1, "float": 2.0, "str": "4", "none": None, "bool": True, "nan": float("nan")}
np_ints = {"np.int64": np.int64(4), "np.int32": np.int32(4)}


def build_reference_probes() -> None:
    # softmax_attention: tensors
    for name, bad in {"str": "abc", "none": None, "ragged": [[1.0, 2.0], [3.0]], "1d": np.ones(4),
                      "complex": np.ones((4, 4), dtype=complex)}.items():
        for arg in ("q", "k", "v"):
            kw = dict(q=q_np, k=k_np, v=v_np)
            kw[arg] = bad
            raises(f"ref.softmax_attention {arg}={name}", lambda kw=kw: ref.softmax_attention(**kw), arg)
    raises("ref.softmax_attention k D mismatch", lambda: ref.softmax_attention(q_np, k_np[..., :8], v_np), "k")
    raises("ref.softmax_attention v T mismatch", lambda: ref.softmax_attention(q_np, k_np, v_np[:, :4]), "v")
    raises("ref.softmax_attention D=0", lambda: ref.softmax_attention(np.ones((2, 4, 0)), np.ones((2, 4, 0)), np.ones((2, 4, 3))), "q", "D")
    raises("ref.softmax_attention T=0", lambda: ref.softmax_attention(np.ones((2, 0, 4)), np.ones((2, 0, 4)), np.ones((2, 0, 3))), "q", "T")
    for name, val in {"nan": float("nan"), "inf": float("inf"), "-inf": -float("inf"), "str": "x", "bool": True,
                      "array": np.ones(3)}.items():
        raises(f"ref.softmax_attention scale={name}", lambda val=val: ref.softmax_attention(q_np, k_np, v_np, scale=val), "scale")
    ok("ref.softmax_attention scale=np.float32", lambda: ref.softmax_attention(q_np, k_np, v_np, scale=np.float32(0.5)), finite)
    for name, val in {**{k: v for k, v in bad_scalars_int.items() if k != "none"}, "2.5": 2.5}.items():
        raises(f"ref.softmax_attention window={name}", lambda val=val: ref.softmax_attention(q_np, k_np, v_np, window=val), "window")
    for name, val in np_ints.items():
        ok(f"ref.softmax_attention window={name}", lambda val=val: ref.softmax_attention(q_np, k_np, v_np, window=val),
           close_to(ref.softmax_attention(q_np, k_np, v_np, window=4), 1e-12))
    for name, val in {"str": "yes", "none": None, "int2": 2}.items():
        raises(f"ref.softmax_attention causal={name}", lambda val=val: ref.softmax_attention(q_np, k_np, v_np, causal=val), "causal")
    raises("ref.softmax_attention bias bad shape", lambda: ref.softmax_attention(q_np, k_np, v_np, bias=np.ones((3, 3))), "bias")
    raises("ref.softmax_attention bias str", lambda: ref.softmax_attention(q_np, k_np, v_np, bias="x"), "bias")
    expected_prefix = ref.softmax_attention(q_np[:, :-1], k_np[:, :-1], v_np[:, :-1])
    ok("ref.softmax_attention NaN in last value stays in last row",
       lambda: ref.softmax_attention(q_np, k_np, q_nan_v)[:, :-1], close_to(expected_prefix, 1e-12))
    knan = k_np.copy()
    knan[:, -1] = np.nan
    ok("ref.softmax_attention NaN in last key stays in last row",
       lambda: ref.softmax_attention(q_np, knan, v_np)[:, :-1], close_to(expected_prefix, 1e-12))
    ok("ref.softmax_attention NaN last value, window",
       lambda: ref.softmax_attention(q_np, k_np, q_nan_v, window=3)[:, :-1],
       close_to(ref.softmax_attention(q_np[:, :-1], k_np[:, :-1], v_np[:, :-1], window=3), 1e-12))
    # attention_mask
    for name, val in bad_scalars_int.items():
        if name == "none":
            continue
        raises(f"ref.attention_mask q_len={name}", lambda val=val: ref.attention_mask(val, 4), "q_len")
        raises(f"ref.attention_mask k_len={name}", lambda val=val: ref.attention_mask(4, val), "k_len")
    for name, val in np_ints.items():
        ok(f"ref.attention_mask q_len={name}", lambda val=val: ref.attention_mask(val, 4), lambda m: m.shape == (4, 4))
    raises("ref.attention_mask q_len>k_len", lambda: ref.attention_mask(5, 4), "q_len")
    raises("ref.attention_mask window=True", lambda: ref.attention_mask(4, 4, window=True), "window")
    raises("ref.attention_mask window non-causal", lambda: ref.attention_mask(4, 4, causal=False, window=2), "window")
    raises("ref.attention_mask causal=str", lambda: ref.attention_mask(4, 4, causal="no"), "causal")
    # softmax / repeat_kv / kv_cache_bytes
    raises("ref.softmax all -inf row", lambda: ref.softmax(np.full((2, 3), -np.inf)), "row", "softmax", "x")
    raises("ref.softmax str", lambda: ref.softmax("abc"), "x")
    raises("ref.softmax axis=5", lambda: ref.softmax(np.ones((2, 3)), axis=5), "axis")
    raises("ref.repeat_kv n_rep=0", lambda: ref.repeat_kv(np.ones((2, 3, 4)), 0), "n_rep")
    raises("ref.repeat_kv n_rep=-1", lambda: ref.repeat_kv(np.ones((2, 3, 4)), -1), "n_rep")
    raises("ref.repeat_kv n_rep=1.5", lambda: ref.repeat_kv(np.ones((2, 3, 4)), 1.5), "n_rep")
    raises("ref.repeat_kv n_rep=True", lambda: ref.repeat_kv(np.ones((2, 3, 4)), True), "n_rep")
    ok("ref.repeat_kv n_rep=np.int64", lambda: ref.repeat_kv(np.ones((2, 3, 4)), np.int64(2)), lambda r: r.shape == (4, 3, 4))
    raises("ref.softmax_attention GQA heads", lambda: ref.softmax_attention(np.ones((3, 4, 8)), np.ones((2, 4, 8)), np.ones((2, 4, 8))), "q", "k")
    for arg in ("seq_len", "n_layers", "n_kv_heads", "head_dim", "bytes_per_element"):
        kw = dict(seq_len=8, n_layers=2, n_kv_heads=2, head_dim=16, bytes_per_element=2)
        for name, val in {"neg": -1, "float": 1.5, "bool": True, "str": "2"}.items():
            kw2 = dict(kw, **{arg: val})
            raises(f"ref.kv_cache_bytes {arg}={name}", lambda kw2=kw2: ref.kv_cache_bytes(kw2.pop("seq_len"), **kw2), arg)
        kw3 = dict(kw, **{arg: np.int64(3)})
        ok(f"ref.kv_cache_bytes {arg}=np.int64", lambda kw3=kw3: ref.kv_cache_bytes(kw3.pop("seq_len"), **kw3),
           lambda r: isinstance(r, int) and r > 0)
    # ALiBi
    for name, val in bad_scalars_int.items():
        raises(f"ref.alibi_slopes n_heads={name}", lambda val=val: ref.alibi_slopes(val), "n_heads")
        raises(f"ref.alibi_bias q_len={name}", lambda val=val: ref.alibi_bias(4, val), "q_len")
    ok("ref.alibi_slopes np.int64", lambda: ref.alibi_slopes(np.int64(8)), close_to(ref.alibi_slopes(8), 1e-15))
    raises("ref.alibi_attention no head axis", lambda: ref.alibi_attention(np.ones((4, 8)), np.ones((4, 8)), np.ones((4, 8))), "q")
    raises("ref.alibi_attention slopes shape", lambda: ref.alibi_attention(q_np, k_np, v_np, slopes=np.ones(3)), "slopes")
    raises("ref.alibi_attention slopes nan", lambda: ref.alibi_attention(q_np, k_np, v_np, slopes=np.array([np.nan, 1.0])), "slopes")
    raises("ref.alibi_attention slopes inf", lambda: ref.alibi_attention(q_np, k_np, v_np, slopes=np.array([np.inf, 1.0])), "slopes")
    raises("ref.alibi_attention window=True", lambda: ref.alibi_attention(q_np, k_np, v_np, window=True), "window")
    raises("ref.alibi_attention scale=nan", lambda: ref.alibi_attention(q_np, k_np, v_np, scale=float("nan")), "scale")
    raises("ref.alibi_attention k str", lambda: ref.alibi_attention(q_np, "k", v_np), "k")
    raises("ref.alibi_attention k 1-D", lambda: ref.alibi_attention(q_np, np.ones(4), v_np), "k")
    # linear attention
    lin = dict(q=q_np, k=k_np, v=v_np)
    for arg in ("q", "k", "v"):
        for name, bad in {"str": "abc", "none": None, "1d": np.ones(4), "T=0": np.ones((2, 0, 16))}.items():
            kw = dict(lin, **{arg: bad})
            raises(f"ref.linear_attention {arg}={name}", lambda kw=kw: ref.linear_attention(**kw), arg)
    for fm in ("identity", "elu", "relu", "taylor", "taylor_compact"):
        for form in ("parallel", "recurrent", "chunked"):
            ok(f"ref.linear_attention eps=0 relu-zero {fm} {form}",
               lambda fm=fm, form=form: ref.linear_attention(np.zeros((3, 2)) if fm == "relu" else q_np[0, :3, :2],
                                                               np.zeros((3, 2)) if fm == "relu" else k_np[0, :3, :2],
                                                               np.ones((3, 2)), feature_map=fm, form=form, eps=0.0,
                                                               chunk_size=2),
               finite if fm != "identity" else None)
            either(f"ref.linear_attention NaN last value {fm} {form}",
                   lambda fm=fm, form=form: ref.linear_attention(q_np, k_np, q_nan_v, feature_map=fm, form=form, chunk_size=4)[:, :-1],
                   close_to(ref.linear_attention(q_np[:, :-1], k_np[:, :-1], v_np[:, :-1], feature_map=fm), 1e-9), "v")
    for name, val in {"neg": -1e-6, "nan": float("nan"), "inf": float("inf"), "str": "0", "bool": True}.items():
        raises(f"ref.linear_attention eps={name}", lambda val=val: ref.linear_attention(**lin, eps=val), "eps")
    for name, val in bad_scalars_int.items():
        raises(f"ref.linear_attention chunk_size={name}", lambda val=val: ref.linear_attention(**lin, form="chunked", chunk_size=val), "chunk_size")
    ok("ref.linear_attention chunk_size=np.int64", lambda: ref.linear_attention(**lin, form="chunked", chunk_size=np.int64(4)), finite)
    raises("ref.linear_attention form=bad", lambda: ref.linear_attention(**lin, form="fast"), "form")
    raises("ref.linear_attention feature_map=bad", lambda: ref.linear_attention(**lin, feature_map="exp"), "feature_map")
    raises("ref.linear_attention feature_map=3", lambda: ref.linear_attention(**lin, feature_map=3), "feature_map")
    raises("ref.linear_attention feature_map returns 1-D", lambda: ref.linear_attention(**lin, feature_map=lambda x: x.sum()), "feature_map")
    raises("ref.linear_attention normalize=str", lambda: ref.linear_attention(**lin, normalize="yes"), "normalize")
    big = np.full((1, 4), 300.0)
    ok("ref.taylor_feature_map large x finite", lambda: ref.taylor_feature_map(big), finite)
    raises("ref.taylor_feature_map D=0", lambda: ref.taylor_feature_map(np.ones((3, 0))), "x", "D")
    raises("ref.feature_map_dim d=0", lambda: ref.feature_map_dim("taylor", 0), "d")
    raises("ref.feature_map_dim name", lambda: ref.feature_map_dim("exp", 4), "name")
    ok("ref.feature_map_dim np.int64", lambda: ref.feature_map_dim("taylor", np.int64(4)), lambda r: r == 21)
    for arg in ("feature_dim", "value_dim", "n_heads", "n_layers", "bytes_per_element"):
        for name, val in {"neg": -1, "float": 1.5, "bool": True}.items():
            kw: dict[str, Any] = dict(feature_dim=4, value_dim=4)
            kw[arg] = val
            raises(f"ref.linear_attention_state_bytes {arg}={name}",
                   lambda kw=kw: ref.linear_attention_state_bytes(kw.pop("feature_dim"), kw.pop("value_dim"), **kw), arg)
    raises("ref.linear_attention_state_bytes normalize=str",
           lambda: ref.linear_attention_state_bytes(4, 4, normalize="no"), "normalize")
    # scans (owned by h1: probed, fixed there)
    a = rng.uniform(0, 1, (1, 6, 3))
    raises("ref.linear_scan b shape", lambda: ref.linear_scan(a, a[:, :3]), "b")
    raises("ref.linear_scan method", lambda: ref.linear_scan(a, a, method="fast"), "method")
    raises("ref.causal_conv1d weight shape", lambda: ref.causal_conv1d(a, np.ones((2, 4))), "weight")


def build_kernel_probes() -> None:
    for arg in ("x", "y"):
        for name, bad in {"list": [1.0], "int": torch.ones(4, dtype=torch.int64), "shape": torch.ones(5)}.items():
            kw = dict(x=torch.ones(4), y=torch.ones(4))
            kw[arg] = bad
            raises(f"K.vector_add {arg}={name}", lambda kw=kw: K.vector_add(**kw), arg)
    for name, val in {"17": 17, "0": 0, "bool": True, "str": "64"}.items():
        raises(f"K.vector_add block_size={name}", lambda val=val: K.vector_add(torch.ones(4), torch.ones(4), block_size=val), "block_size")
    ok("K.vector_add block_size=np.int64", lambda: K.vector_add(torch.ones(40), torch.ones(40), block_size=np.int64(16)),
       close_to(torch.full((40,), 2.0)))
    raises("K.vector_add backend bad", lambda: K.vector_add(torch.ones(4), torch.ones(4), backend="cuda"), "backend")
    raises("K.row_softmax 1-D", lambda: K.row_softmax(torch.ones(4)), "x")
    raises("K.row_softmax float64", lambda: K.row_softmax(torch.ones(2, 4, dtype=torch.float64)), "x")
    raises("K.row_softmax 0 cols", lambda: K.row_softmax(torch.ones(2, 0)), "x")
    # flash attention
    for arg in ("q", "k", "v"):
        for name, bad in {"np": np.ones((1, 2, 16, 16)), "int": torch.ones(1, 2, 16, 16, dtype=torch.int32),
                          "3d": torch.ones(2, 16, 16), "f16": torch.ones(1, 2, 16, 16, dtype=torch.float16)}.items():
            kw = dict(q=qf, k=kf, v=vf)
            kw[arg] = bad
            raises(f"K.flash_attention {arg}={name}", lambda kw=kw: K.flash_attention(**kw), arg, "q, k, v")
    raises("K.flash_attention D=24 kernel", lambda: K.flash_attention(t4(1, 2, 16, 24), t4(1, 2, 16, 24), t4(1, 2, 16, 24)), "D", "head dim")
    raises("K.flash_attention D=0", lambda: K.flash_attention(t4(1, 2, 16, 0), t4(1, 2, 16, 0), t4(1, 2, 16, 0)), "q", "D")
    raises("K.flash_attention D=0 torch", lambda: K.flash_attention(t4(1, 2, 16, 0), t4(1, 2, 16, 0), t4(1, 2, 16, 0), backend="torch"), "q", "D")
    raises("K.flash_attention GQA 3 vs 2", lambda: K.flash_attention(t4(1, 3, 16, 16), kf, vf), "k", "heads")
    for name, val in {"nan": float("nan"), "inf": float("inf"), "str": "x", "bool": True, "tensor": torch.tensor(0.5)}.items():
        for backend in (None, "torch"):
            raises(f"K.flash_attention scale={name} backend={backend}",
                   lambda val=val, backend=backend: K.flash_attention(qf, kf, vf, scale=val, backend=backend), "scale")
    ok("K.flash_attention scale=np.float64", lambda: K.flash_attention(qf, kf, vf, scale=np.float64(0.25)),
       close_to(K.flash_attention(qf, kf, vf, scale=0.25)))
    for name, val in {"True": True, "0": 0, "-1": -1, "1.5": 1.5, "str": "4"}.items():
        raises(f"K.flash_attention window={name}", lambda val=val: K.flash_attention(qf, kf, vf, window=val), "window")
    for name, val in np_ints.items():
        ok(f"K.flash_attention window={name}", lambda val=val: K.flash_attention(qf, kf, vf, window=val),
           close_to(K.flash_attention(qf, kf, vf, window=4)))
    for name, val in {"str": "yes", "none": None, "int2": 2}.items():
        raises(f"K.flash_attention causal={name}", lambda val=val: K.flash_attention(qf, kf, vf, causal=val), "causal")
    slopes = torch.tensor(ref.alibi_slopes(2), dtype=torch.float32)
    raises("K.flash_attention alibi shape", lambda: K.flash_attention(qf, kf, vf, alibi_slopes=slopes[:1]), "alibi_slopes")
    raises("K.flash_attention alibi list", lambda: K.flash_attention(qf, kf, vf, alibi_slopes=[0.5, 0.25]), "alibi_slopes")

    def alibi_grad() -> Any:
        s = slopes.clone().requires_grad_(True)
        out = K.flash_attention(qf, kf, vf, alibi_slopes=s)
        out.sum().backward()
        return s.grad

    either("K.flash_attention alibi requires_grad gets a gradient", alibi_grad,
           lambda g: g is not None and finite(g), "alibi_slopes")
    raises("K.flash_attention backend bad", lambda: K.flash_attention(qf, kf, vf, backend="gpu"), "backend")
    vnan = vf.clone()
    vnan[:, :, -1] = float("nan")
    for backend in (None, "torch"):
        either(f"K.flash_attention NaN last value backend={backend}",
               lambda backend=backend: K.flash_attention(qf, kf, vnan, backend=backend)[:, :, :-1],
               close_to(K.flash_attention(qf[:, :, :-1], kf[:, :, :-1], vf[:, :, :-1], backend="torch")), "v")
    # chunked linear attention
    ql, kl, vl = t4(1, 2, 16, 8).abs(), t4(1, 2, 16, 8).abs(), t4(1, 2, 16, 8)
    for arg in ("q", "k", "v"):
        for name, bad in {"np": np.ones((1, 2, 16, 8)), "int": torch.ones(1, 2, 16, 8, dtype=torch.int32),
                          "3d": torch.ones(2, 16, 8)}.items():
            kw = dict(q=ql, k=kl, v=vl)
            kw[arg] = bad
            raises(f"K.chunked_linear_attention {arg}={name}", lambda kw=kw: K.chunked_linear_attention(**kw), arg, "q, k, v")
    for name, val in {"0": 0, "bool": True, "1.5": 1.5, "24 (kernel)": 24}.items():
        raises(f"K.chunked_linear_attention chunk_size={name}",
               lambda val=val: K.chunked_linear_attention(ql, kl, vl, chunk_size=val), "chunk_size")
    ok("K.chunked_linear_attention chunk_size=np.int64",
       lambda: K.chunked_linear_attention(ql, kl, vl, chunk_size=np.int64(16)), close_to(K.chunked_linear_attention(ql, kl, vl, chunk_size=16)))
    for name, val in {"neg": -1.0, "nan": float("nan"), "inf": float("inf"), "str": "0"}.items():
        raises(f"K.chunked_linear_attention eps={name}", lambda val=val: K.chunked_linear_attention(ql, kl, vl, eps=val), "eps")
    zq = torch.zeros(1, 2, 16, 8)
    for backend in (None, "torch"):
        ok(f"K.chunked_linear_attention eps=0 zero features backend={backend}",
           lambda backend=backend: K.chunked_linear_attention(zq, zq, vl, eps=0.0, chunk_size=16, backend=backend), finite)
    ok("K.linear_attention_step eps=0 zero features",
       lambda: K.linear_attention_step(zq[:, :, 0], zq[:, :, 0], vl[:, :, 0], eps=0.0), finite)
    raises("K.linear_attention_step state wrong", lambda: K.linear_attention_step(ql[:, :, 0], kl[:, :, 0], vl[:, :, 0], state=(1, 2)), "state")
    raises("K.linear_attention_step eps=nan", lambda: K.linear_attention_step(ql[:, :, 0], kl[:, :, 0], vl[:, :, 0], eps=float("nan")), "eps")
    # scan
    a = torch.rand(1, 40, 4)
    b = torch.zeros(1, 40, 4)
    raises("K.linear_scan a 2-D", lambda: K.linear_scan(a[0], b[0]), "a")
    raises("K.linear_scan b shape", lambda: K.linear_scan(a, b[:, :3]), "b")
    raises("K.linear_scan h0 shape", lambda: K.linear_scan(a, b, torch.zeros(3)), "h0")
    raises("K.linear_scan dtype mix", lambda: K.linear_scan(a, b.double()), "a and b", "b")
    big = torch.full((1, 40, 4), 1e10)
    for backend in (None, "torch"):
        either(f"K.linear_scan |a|>>1 b=0 backend={backend}", lambda backend=backend: K.linear_scan(big, b, backend=backend)[0],
               close_to(torch.zeros(1, 40, 4)), "a")
    either("K.linear_scan a=-3 b=0", lambda: K.linear_scan(torch.full((1, 40, 4), -3.0), b)[0], close_to(torch.zeros(1, 40, 4)), "a")
    raises("K.linear_scan_step h shape", lambda: K.linear_scan_step(a[:, 0], b[:, 0], torch.zeros(2, 4)), "h")
    raises("K.causal_conv1d weight shape", lambda: K.causal_conv1d(a, torch.ones(3, 4)), "weight")
    raises("K.causal_conv1d bias shape", lambda: K.causal_conv1d(a, torch.ones(4, 4), torch.ones(3)), "bias")
    raises("K.causal_conv1d_step state shape", lambda: K.causal_conv1d_step(a[:, 0], torch.zeros(1, 2, 4), torch.ones(4, 4)), "conv_state")


def build_model_probes() -> None:
    for fm in ("taylor", "taylor_compact"):
        for val in (255.0, 256.0, 300.0, 400.0):
            x16 = torch.full((2, 16), val, dtype=torch.float16)
            ok(f"feature_map_torch {fm} fp16 |x|={val:g}", lambda x16=x16, fm=fm: feature_map_torch(x16, fm),
               close_to(torch.as_tensor(ref.FEATURE_MAPS[fm](x16.double().numpy())), atol=1e-2, rtol=2e-3))
    raises("feature_map_torch bad name", lambda: feature_map_torch(torch.ones(2, 4), "exp"), "feature_map")
    raises("feature_map_torch int", lambda: feature_map_torch(torch.ones(2, 4, dtype=torch.int64), "elu"), "x")
    raises("feature_map_torch D=0", lambda: feature_map_torch(torch.ones(2, 0), "taylor"), "x", "d")
    raises("check_tokens float", lambda: check_tokens(torch.ones(2, 3), 10), "tokens")
    raises("check_tokens out of vocab", lambda: check_tokens(torch.full((2, 3), 12), 10), "tokens")
    raises("check_tokens vocab_size=0", lambda: check_tokens(torch.zeros(2, 3, dtype=torch.long), 0), "vocab_size", "tokens")
    raises("check_tokens vocab_size=str", lambda: check_tokens(torch.zeros(2, 3, dtype=torch.long), "10"), "vocab_size")
    ok("check_tokens vocab_size=np.int64", lambda: check_tokens(torch.zeros(2, 3, dtype=torch.long), np.int64(10)), lambda r: r.shape == (2, 3))
    for name, val in np_ints.items():
        ok(f"build_model vocab_size={name}", lambda val=val: build_model("transformer", vocab_size=val * 8, d_model=16, n_layers=1, n_heads=2),
           lambda m: isinstance(m, torch.nn.Module))
        ok(f"build_model n_layers={name}", lambda val=val: build_model("transformer", vocab_size=32, d_model=16, n_layers=val // 4, n_heads=2),
           lambda m: isinstance(m, torch.nn.Module))
    model = build_model("transformer", vocab_size=32, d_model=16, n_layers=1, n_heads=2)
    raises("generate max_new_tokens=-1", lambda: generate(model, torch.zeros(1, 3, dtype=torch.long), -1), "max_new_tokens")
    raises("generate temperature=nan", lambda: generate(model, torch.zeros(1, 3, dtype=torch.long), 2, temperature=float("nan")), "temperature")
    raises("generate temperature=inf", lambda: generate(model, torch.zeros(1, 3, dtype=torch.long), 2, temperature=float("inf")), "temperature")
    raises("generate prompt float", lambda: generate(model, torch.zeros(1, 3), 2), "prompt", "tokens")
    raises("generate prompt out of vocab", lambda: generate(model, torch.full((1, 3), 40), 2), "prompt", "tokens")
    ok("generate max_new_tokens=np.int64", lambda: generate(model, torch.zeros(1, 3, dtype=torch.long), np.int64(2)), lambda r: r.shape == (1, 5))
    # a cache from a differently configured model (owned by h1/h2/h3) and a draft with another vocabulary (h3)
    other = build_model("transformer", vocab_size=32, d_model=32, n_layers=2, n_heads=4)
    _, other_cache = other.prefill(torch.zeros(1, 3, dtype=torch.long))
    raises("transformer.step foreign cache", lambda: model.step(torch.zeros(1, dtype=torch.long), other_cache), "cache")
    try:
        from linattn_edu.speculative import speculative_generate

        draft = build_model("transformer", vocab_size=40, d_model=16, n_layers=1, n_heads=2)
        raises("speculative_generate draft vocab", lambda: speculative_generate(model, draft, torch.zeros(1, 3, dtype=torch.long), 4),
               "draft", "vocab")
    except ImportError:  # pragma: no cover
        pass


def build_train_probes() -> None:
    def fresh() -> torch.nn.Module:  # a probe that trains with lr=inf must not spoil the next one
        torch.manual_seed(0)
        return build_model("transformer", vocab_size=32, d_model=16, n_layers=1, n_heads=2)

    model = fresh()
    tokens = torch.randint(0, 32, (200,))
    base = dict(seq_len=8, batch_size=2, steps=2, progress=False, device="cpu")

    def run(**kw: Any) -> Any:
        args = dict(base, **kw)
        toks = args.pop("tokens", tokens)
        return train_mod.train_lm(fresh(), toks, **args)

    for arg in ("seq_len", "batch_size", "steps"):
        for name, val in bad_scalars_int.items():
            raises(f"train_lm {arg}={name}", lambda arg=arg, val=val: run(**{arg: val}), arg)
        ok(f"train_lm {arg}=np.int64", lambda arg=arg: run(**{arg: np.int64(2)}), lambda h: len(h["loss"]) >= 1)
    for name, val in {"0": 0.0, "neg": -1e-3, "nan": float("nan"), "inf": float("inf"), "str": "1e-3", "bool": True}.items():
        raises(f"train_lm lr={name}", lambda val=val: run(lr=val), "lr")
    for name, val in {"neg": -0.1, "nan": float("nan"), "inf": float("inf"), "str": "0.1", "bool": True}.items():
        raises(f"train_lm weight_decay={name}", lambda val=val: run(weight_decay=val), "weight_decay")
    for name, val in {"0": 0.0, "nan": float("nan"), "inf": float("inf"), "str": "1"}.items():
        raises(f"train_lm grad_clip={name}", lambda val=val: run(grad_clip=val), "grad_clip")
    for name, val in {"neg": -0.1, "nan": float("nan"), "2": 2.0}.items():
        raises(f"train_lm min_lr_ratio={name}", lambda val=val: run(min_lr_ratio=val), "min_lr_ratio")
    ok("train_lm lr=np.float32", lambda: run(lr=np.float32(1e-3)), lambda h: len(h["loss"]) == 2)
    bad_tail = tokens.clone()
    bad_tail[-1] = 40
    raises("train_lm id out of vocab (only as a target)", lambda: run(tokens=bad_tail, steps=50), "train_tokens", "vocab")
    bad_any = tokens.clone()
    bad_any[5] = 40
    raises("train_lm id out of vocab", lambda: run(tokens=bad_any), "train_tokens", "vocab")
    raises("train_lm eval id out of vocab", lambda: run(eval_tokens=bad_tail, eval_every=1), "eval_tokens", "vocab")
    raises("train_lm tokens float", lambda: run(tokens=torch.ones(100)), "train_tokens")
    raises("train_lm tokens negative", lambda: run(tokens=-tokens), "train_tokens")
    raises("train_lm tokens too short", lambda: run(tokens=tokens[:5]), "train_tokens")
    raises("train_lm tokens 2-D", lambda: run(tokens=tokens.reshape(2, 100)), "train_tokens")
    if not torch.cuda.is_available():
        raises("train_lm device=cuda (no CUDA)", lambda: run(device="cuda"), "device")
    raises("train_lm device=bogus", lambda: run(device="bogus"), "device")
    raises("train_lm model not a module", lambda: train_mod.train_lm("model", tokens, **base), "model")
    raises("train_lm amp=str", lambda: run(amp="yes"), "amp")
    raises("train_lm eval_every without tokens", lambda: run(eval_every=1), "eval_every", "eval_tokens")
    raises("evaluate_perplexity id out of vocab", lambda: train_mod.evaluate_perplexity(model, bad_tail, context_len=8, device="cpu"),
           "tokens", "vocab")
    raises("evaluate_perplexity context_len=0", lambda: train_mod.evaluate_perplexity(model, tokens, context_len=0, device="cpu"), "context_len")
    ok("evaluate_perplexity context_len=np.int64", lambda: train_mod.evaluate_perplexity(model, tokens, context_len=np.int64(8), device="cpu"),
       lambda p: math.isfinite(p))
    if not torch.cuda.is_available():
        raises("evaluate_perplexity device=cuda (no CUDA)",
               lambda: train_mod.evaluate_perplexity(model, tokens, context_len=8, device="cuda"), "device")
    raises("cosine_lr steps=0", lambda: train_mod.cosine_lr(0, steps=0, lr=1e-3, warmup=0), "steps")
    raises("cosine_lr lr=nan", lambda: train_mod.cosine_lr(0, steps=10, lr=float("nan"), warmup=0), "lr")
    raises("cosine_lr warmup=-1", lambda: train_mod.cosine_lr(0, steps=10, lr=1e-3, warmup=-1), "warmup")


def build_mqar_probes() -> None:
    base = dict(seq_len=16, n_pairs=2, vocab_size=32, seed=0)
    for arg in ("seq_len", "n_pairs", "vocab_size", "seed"):
        for name, val in {"neg": -1, "float": 2.5, "str": "4", "bool": True, "none": None}.items():
            raises(f"make_mqar {arg}={name}", lambda arg=arg, val=val: mqar.make_mqar(4, **dict(base, **{arg: val})), arg)
        ok(f"make_mqar {arg}=np.int64", lambda arg=arg: mqar.make_mqar(4, **dict(base, **{arg: np.int64(base[arg])})),
           lambda r: r[0].shape == (4, 16))
    for name, val in {"0": 0.0, "neg": -1.0, "nan": float("nan"), "inf": float("inf"), "str": "1"}.items():
        raises(f"make_mqar alpha={name}", lambda val=val: mqar.make_mqar(4, **base, alpha=val), "alpha")
    ok("make_mqar alpha=np.float32", lambda: mqar.make_mqar(4, **base, alpha=np.float32(0.5)), lambda r: r[0].shape == (4, 16))
    raises("make_mqar n_examples=0", lambda: mqar.make_mqar(0, **base), "n_examples")
    raises("make_mqar odd seq_len", lambda: mqar.make_mqar(4, **dict(base, seq_len=15)), "seq_len")
    raises("make_mqar vocab<=seq_len", lambda: mqar.make_mqar(4, **dict(base, vocab_size=16)), "vocab_size")
    raises("make_mqar too many pairs", lambda: mqar.make_mqar(4, **dict(base, n_pairs=5)), "n_pairs")
    raises("make_mqar random_non_queries=str", lambda: mqar.make_mqar(4, **base, random_non_queries="y"), "random_non_queries")
    raises("mqar_query_slots alpha=inf", lambda: mqar.mqar_query_slots(2, n_slots=4, n_queries=2, alpha=float("inf"),
                                                                      rng=np.random.default_rng(0)), "alpha")
    raises("mqar_query_slots rng=None", lambda: mqar.mqar_query_slots(2, n_slots=4, n_queries=2, rng=None), "rng")
    x, y = mqar.make_mqar(4, **base)
    raises("mqar_accuracy shape", lambda: mqar.mqar_accuracy(np.zeros((4, 15)), y), "logits_or_preds")
    raises("mqar_accuracy list", lambda: mqar.mqar_accuracy([1, 2], y), "logits_or_preds")
    raises("mqar_accuracy float targets", lambda: mqar.mqar_accuracy(x, y.astype(float)), "targets")
    raises("mqar_accuracy no labels", lambda: mqar.mqar_accuracy(x, np.full_like(y, -100)), "targets")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="print every probe that is not clear")
    parser.add_argument("--all", action="store_true", help="print every probe")
    parser.add_argument("-k", default="", help="only probes whose name contains this")
    args = parser.parse_args()
    torch.manual_seed(0)
    for build in (build_reference_probes, build_kernel_probes, build_model_probes, build_train_probes, build_mqar_probes):
        build()
    counts: Counter[str] = Counter()
    for p in PROBES:
        if args.k and args.k not in p.name:
            continue
        v, detail = verdict(p)
        counts[v] += 1
        if args.all or (args.verbose and v != "clear"):
            print(f"{v:8s} {p.name}: {detail}")
    total = sum(counts.values())
    print(f"probes: {total}  clear: {counts['clear']}  obscure: {counts['obscure']}  silent: {counts['silent']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
