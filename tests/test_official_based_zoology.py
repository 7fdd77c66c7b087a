"""The short convolutions and the MQAR stack against transcriptions of the official Based and Zoology code.

Each ``Official*`` class below is this file's own re-typing, in PyTorch, of one official module
(the source file and class are named in its docstring); the package's module gets the official
module's weights and must agree in float64 to 1e-12 (the issue asks for 1e-6 or better).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from linattn_edu.models import build_model, cache_bytes, model_state_bytes
from linattn_edu.models.linear import (
    CONV_FORMS,
    ZOOLOGY_MQAR_MODELS,
    BaseConv,
    ShortConv,
    ZoologyBaseConv,
    zoology_layer_pattern,
    zoology_mqar_options,
)

TOL = 1e-12


# ----------------------------------------------------------------------------------------------
# Transcriptions of the official modules (float64 oracles)
# ----------------------------------------------------------------------------------------------


class OfficialBasedShortConvolution(nn.Module):
    """Transcribes ``ShortConvolution`` of HazyResearch/based, ``based/models/mixers/convolution.py``.

    The PyTorch path (``use_cuda=False``): ``nn.Conv1d(d, d, k, groups=d, padding=k-1,
    bias=conv_bias)`` with ``conv_bias=False``, output truncated to the first ``l`` steps;
    ``step`` rolls a ``(b, d, k)`` state left, writes the new input last and contracts it with
    the weight (``einsum("bdk,dgk->bd")``).
    """

    def __init__(self, d_model: int, kernel_size: int, conv_bias: bool = False) -> None:
        super().__init__()
        self.d_model, self.kernel_size = d_model, kernel_size
        self.conv = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model, padding=kernel_size - 1,
                              bias=conv_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        l = x.shape[1]
        return self.conv(x.transpose(1, 2))[..., :l].transpose(1, 2)

    def step(self, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        state.copy_(torch.roll(state, shifts=-1, dims=-1))
        state[:, :, -1] = x.squeeze(1)
        return torch.einsum("bdk,dgk->bd", state, self.conv.weight).to(x.dtype).unsqueeze(1)


class OfficialBasedBaseConv(nn.Module):
    """Transcribes ``BaseConv`` of HazyResearch/based, ``based/models/mixers/convolution.py``.

    ``expand_proj=2``, ``use_bias=True``, ``use_cuda=False`` (SiLU applied after the conv)::

        d_inner = expand_proj * d_model // 2
        u = in_proj(u); u1, u2 = split(u, d_inner); y = out_proj(silu(conv(u1)) * u2)
    """

    def __init__(self, d_model: int, kernel_size: int = 3, use_bias: bool = True, expand_proj: int = 2) -> None:
        super().__init__()
        self.d_inner = expand_proj * d_model // 2
        self.in_proj = nn.Linear(d_model, expand_proj * d_model, bias=use_bias)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=use_bias)
        self.conv = OfficialBasedShortConvolution(self.d_inner, kernel_size=kernel_size)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        u = self.in_proj(u)
        u1, u2 = torch.split(u, self.d_inner, dim=-1)
        u_conv = F.silu(self.conv(u1))
        return self.out_proj(u_conv * u2)

    def step(self, u: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """One token ``(b, 1, d)`` with the ``(b, d_inner, k)`` conv state (the inference path)."""
        u = self.in_proj(u)
        u1, u2 = torch.split(u, self.d_inner, dim=-1)
        u_conv = F.silu(self.conv.step(u1, state))
        return self.out_proj(u_conv * u2)


class OfficialZoologyShortConvolution(nn.Module):
    """Transcribes ``ShortConvolution`` of HazyResearch/zoology, ``zoology/mixers/convolution.py``.

    ``nn.Conv1d(d, d, k, groups=d, padding=k-1)`` (default bias), first ``l`` outputs.
    """

    def __init__(self, d_model: int, kernel_size: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(d_model, d_model, kernel_size, groups=d_model, padding=kernel_size - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        l = x.size(1)
        return self.conv(x.transpose(1, 2))[..., :l].transpose(1, 2)


class OfficialZoologyBaseConv(nn.Module):
    """Transcribes ``BaseConv`` of HazyResearch/zoology, ``zoology/mixers/base_conv.py`` (``use_act=False``).

    ``y = conv(u) * projection(u); return y + u`` with ``projection = nn.Linear(d, d)``.
    """

    def __init__(self, d_model: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.projection = nn.Linear(d_model, d_model)
        self.conv = OfficialZoologyShortConvolution(d_model, kernel_size=kernel_size)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return self.conv(u) * self.projection(u) + u


class OfficialZoologyTaylorExp(nn.Module):
    """Transcribes ``TaylorExp.forward`` of HazyResearch/zoology, ``zoology/mixers/based.py``."""

    def __init__(self, input_dim: int) -> None:
        super().__init__()
        self.r2, self.rd = math.sqrt(2), math.sqrt(input_dim)
        self.rrd = math.sqrt(self.rd)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x2 = (x.unsqueeze(-1) * x.unsqueeze(-2)).flatten(start_dim=-2) / self.r2
        return torch.cat([torch.ones_like(x[..., :1]), x / self.rrd, x2 / self.rd], dim=-1)


class OfficialZoologyBased(nn.Module):
    """Transcribes ``Based`` of HazyResearch/zoology, ``zoology/mixers/based.py`` (causal, ``taylor_exp``).

    ``num_heads = num_key_value_heads = 1`` as in the Based paper's MQAR configs; ``eps=1e-12``.
    """

    def __init__(self, d_model: int, feature_dim: int, eps: float = 1e-12) -> None:
        super().__init__()
        self.d_model, self.feature_dim, self.eps = d_model, feature_dim, eps
        self.num_heads = self.num_key_value_heads = 1
        self.head_dim = d_model // self.num_key_value_heads
        self.feature_map = OfficialZoologyTaylorExp(feature_dim)
        self.proj_q = nn.Linear(d_model, feature_dim * self.num_heads, bias=False)
        self.proj_k = nn.Linear(d_model, feature_dim * self.num_heads, bias=False)
        self.proj_v = nn.Linear(d_model, self.num_key_value_heads * self.head_dim, bias=False)
        self.proj_o = nn.Linear(self.num_heads * self.head_dim, d_model, bias=False)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        b, l, _ = hidden_states.size()
        q, k, v = self.proj_q(hidden_states), self.proj_k(hidden_states), self.proj_v(hidden_states)
        q = q.view(b, l, self.num_heads, self.feature_dim).transpose(1, 2)
        k = k.view(b, l, self.num_key_value_heads, self.feature_dim).transpose(1, 2)
        v = v.view(b, l, self.num_key_value_heads, self.head_dim).transpose(1, 2)
        q, k = self.feature_map(q), self.feature_map(k)
        q, k, v = q.unsqueeze(-2), k.unsqueeze(-2), v.unsqueeze(-1)
        y = (q * (k * v).cumsum(dim=2)).sum(dim=-1) / ((q * k.cumsum(dim=2)).sum(dim=-1) + self.eps)
        y = y.transpose(1, 2).reshape(b, l, self.num_heads * self.head_dim)
        return self.proj_o(y)


class OfficialZoologyMQARModel(nn.Module):
    """Transcribes the Based paper's 2-layer MQAR model as HazyResearch/zoology builds it.

    ``zoology/model.py``: ``LanguageModel`` / ``LMBackbone`` / ``TransformerBlock`` (no position
    embeddings, ``state_mixer=torch.nn.Identity``, no dropout); ``zoology/mixers/hybrid.py``
    ``Hybrid``: layer ``i`` gets ``configs[i % len(configs)]`` with ``configs = [BaseConv, Based]``
    (``zoology/experiments/arxiv24_based_figure2/configs.py``). The block::

        residual = hidden + residual; h = norm1(residual); h = mixer(h)
        residual = h + residual;      h = norm2(residual); h = Identity(h)

    and the backbone ends with ``ln_f(hidden + residual)``; the LM head is tied to the embedding.
    """

    def __init__(self, vocab_size: int, d_model: int, n_layers: int, feature_dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, d_model)
        configs = [lambda: OfficialZoologyBaseConv(d_model, kernel_size),
                   lambda: OfficialZoologyBased(d_model, feature_dim)]
        self.mixers = nn.ModuleList(configs[i % len(configs)]() for i in range(n_layers))
        self.norm1 = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers))
        self.norm2 = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model, eps=1e-5)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden, residual = self.word_embeddings(input_ids), None
        for mixer, norm1, norm2 in zip(self.mixers, self.norm1, self.norm2):
            residual = hidden + residual if residual is not None else hidden
            hidden = mixer(norm1(residual))
            residual = hidden + residual
            hidden = norm2(residual)  # state_mixer = Identity
        residual = hidden + residual
        return F.linear(self.ln_f(residual), self.word_embeddings.weight)


# ----------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------


def _randomize(module: nn.Module, seed: int) -> nn.Module:
    """Every parameter (biases and norms included) drawn from N(0, 0.4²) so nothing is trivially 0 or 1."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * 0.4)
    return module


def _x(b: int, t: int, c: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(b, t, c, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


# ----------------------------------------------------------------------------------------------
# The Based LM's BaseConv
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel_size", [3, 4])
def test_based_baseconv_equals_the_official_module(kernel_size: int) -> None:
    c = 8
    official = _randomize(OfficialBasedBaseConv(c, kernel_size).double(), 1)
    ours = BaseConv(c, kernel_size).double()
    with torch.no_grad():
        ours.in_proj.load_state_dict(official.in_proj.state_dict())
        ours.out_proj.load_state_dict(official.out_proj.state_dict())
        ours.conv.weight.copy_(official.conv.conv.weight)
    assert ours.conv.bias is None and official.conv.conv.bias is None  # no conv bias in either
    x = _x(2, 13, c)
    y, _ = ours(x)
    diff = (y - official(x)).abs().max().item()
    assert diff <= TOL, diff


def test_based_baseconv_decode_equals_the_official_step() -> None:
    c, k = 6, 3
    official = _randomize(OfficialBasedBaseConv(c, k).double(), 2)
    ours = BaseConv(c, k).double()
    ours.load_state_dict({"in_proj.weight": official.in_proj.weight, "in_proj.bias": official.in_proj.bias,
                          "conv.weight": official.conv.conv.weight, "out_proj.weight": official.out_proj.weight,
                          "out_proj.bias": official.out_proj.bias})
    x = _x(2, 9, c, seed=3)
    official_state = torch.zeros(2, c, k, dtype=torch.float64)  # allocate_inference_cache: (b, d, k)
    state = None
    with torch.no_grad():
        for t in range(x.shape[1]):
            want = official.step(x[:, t:t + 1], official_state)
            got, state = ours(x[:, t:t + 1], state)
            assert (got - want).abs().max().item() <= TOL
            assert torch.equal(state, official_state[:, :, 1:])  # ours keeps the last k-1 inputs
        assert (official(x) - ours(x)[0]).abs().max().item() <= TOL


# ----------------------------------------------------------------------------------------------
# Zoology's BaseConv and the Based paper's MQAR model
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel_size", [3, 5])
def test_zoology_baseconv_equals_the_official_module(kernel_size: int) -> None:
    c = 8
    official = _randomize(OfficialZoologyBaseConv(c, kernel_size).double(), 4)
    ours = ZoologyBaseConv(c, kernel_size).double()
    ours.load_state_dict({"projection.weight": official.projection.weight, "projection.bias": official.projection.bias,
                          "conv.weight": official.conv.conv.weight, "conv.bias": official.conv.conv.bias})
    assert official.conv.conv.bias is not None  # Zoology's conv keeps nn.Conv1d's bias
    x = _x(3, 11, c, seed=5)
    diff = (ours(x)[0] - official(x)).abs().max().item()
    assert diff <= TOL, diff


def _copy_zoology_weights(ours: nn.Module, official: OfficialZoologyMQARModel) -> None:
    sd = {"tok_emb.weight": official.word_embeddings.weight, "lm_head.weight": official.word_embeddings.weight,
          "norm_out.weight": official.ln_f.weight, "norm_out.bias": official.ln_f.bias}
    for i, mixer in enumerate(official.mixers):
        for name in ("weight", "bias"):
            sd[f"blocks.{i}.norms.0.{name}"] = getattr(official.norm1[i], name)
            sd[f"blocks.{i}.norm_mlp.{name}"] = getattr(official.norm2[i], name)
        if isinstance(mixer, OfficialZoologyBaseConv):
            for name in ("weight", "bias"):
                sd[f"blocks.{i}.mixers.conv.projection.{name}"] = getattr(mixer.projection, name)
                sd[f"blocks.{i}.mixers.conv.conv.{name}"] = getattr(mixer.conv.conv, name)
        else:
            pairs = (("proj_q", "q_proj"), ("proj_k", "k_proj"), ("proj_v", "v_proj"), ("proj_o", "out_proj"))
            for theirs, mine in pairs:
                sd[f"blocks.{i}.mixers.linear.{mine}.weight"] = getattr(mixer, theirs).weight
    ours.load_state_dict(sd, strict=True)


@pytest.mark.parametrize("n_layers", [2, 3])
def test_zoology_mqar_model_equals_the_official_stack(n_layers: int) -> None:
    vocab, c, fdim = 40, 16, 4
    official = _randomize(OfficialZoologyMQARModel(vocab, c, n_layers, fdim).double(), 6)
    options = zoology_mqar_options("based", n_layers=n_layers, feature_dim=fdim, mlp="identity")
    ours = build_model("based", vocab_size=vocab, d_model=c, n_layers=n_layers, n_heads=1, **options).double().eval()
    assert ours.config.layer_pattern == (["conv", "linear"] * 2)[:n_layers]
    _copy_zoology_weights(ours, official)
    tokens = torch.randint(0, vocab, (2, 17), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        diff = (ours(tokens) - official(tokens)).abs().max().item()
    assert diff <= 1e-10, diff


# ----------------------------------------------------------------------------------------------
# Causality, decode == prefill and state bytes, for every conv form
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [BaseConv, ZoologyBaseConv, ShortConv])
def test_conv_mixers_are_causal_and_chunked_prefill_equals_one_pass(cls: type) -> None:
    c, k = 8, 3
    mixer = _randomize(cls(c, k).double(), 8)
    x = _x(2, 12, c, seed=9)
    full, _ = mixer(x)
    x2 = x.clone()
    x2[:, 7:] += 1.0  # change the future
    assert torch.equal(mixer(x2)[0][:, :7], full[:, :7])
    assert not torch.allclose(mixer(x2)[0][:, 7:], full[:, 7:])
    # chunks of 5, 1 and 6 tokens carrying the conv state equal one pass
    y1, s = mixer(x[:, :5])
    y2, s = mixer(x[:, 5:6], s)
    y3, s = mixer(x[:, 6:], s)
    assert (torch.cat([y1, y2, y3], 1) - full).abs().max().item() <= TOL
    assert s.shape == (2, c, k - 1)


@pytest.mark.parametrize("conv_form", CONV_FORMS)
def test_based_lm_decode_equals_prefill_and_state_bytes_count_the_conv(conv_form: str) -> None:
    model = build_model("based", vocab_size=32, d_model=16, n_layers=3, n_heads=2, feature_dim=2, window=4,
                        conv_form=conv_form, conv_kernel_size=4)
    model = _randomize(model, 10).double().eval()
    tokens = torch.randint(0, 32, (2, 14), generator=torch.Generator().manual_seed(11))
    with torch.no_grad():
        full = model(tokens)
        logits, cache = model.prefill(tokens[:, :6])
        outs = [logits]
        for t in range(6, tokens.shape[1]):
            step, cache = model.step(tokens[:, t], cache)
            outs.append(step[:, None])
    assert (torch.cat(outs, 1) - full).abs().max().item() <= 1e-10
    conv_layers = [i for i, m in enumerate(model.config.pattern) if "conv" in m]
    assert conv_layers  # the period conv, linear, window has a conv layer
    for i in conv_layers:
        assert cache.layers[i]["conv"].shape == (2, 16, 3)
    # state_bytes counts the conv state: it equals the real cache (batch 1) for every form
    _, cache1 = model.prefill(tokens[:1])
    assert model_state_bytes(model, seq_len=14) == cache_bytes(cache1)


@pytest.mark.parametrize("mlp", ["none", "identity"])
def test_zoology_mqar_models_by_name_decode_and_count_their_state(mlp: str) -> None:
    for name in ZOOLOGY_MQAR_MODELS:
        opts = zoology_mqar_options(name, seq_len=12, feature_dim=2, mlp=mlp,
                                    **({"window": 5} if name == "sliding_window" else {}))
        assert opts["layer_pattern"][0] == "conv" and opts["mlp"] == mlp and opts["conv_form"] == "zoology"
        assert zoology_mqar_options(name, seq_len=12)["mlp"] == "none"  # the book's default: no MLP
        model = _randomize(build_model("based", vocab_size=24, d_model=8, n_layers=2, n_heads=1, **opts), 12)
        model = model.double().eval()
        tokens = torch.randint(0, 24, (1, 12), generator=torch.Generator().manual_seed(13))
        with torch.no_grad():
            full = model(tokens)
            logits, cache = model.prefill(tokens[:, :4])
            outs = [logits]
            for t in range(4, 12):
                step, cache = model.step(tokens[:, t], cache)
                outs.append(step[:, None])
        assert (torch.cat(outs, 1) - full).abs().max().item() <= 1e-10, name
        assert model_state_bytes(model, seq_len=12) == cache_bytes(cache), name


def test_default_based_conv_is_the_official_form_and_the_book_form_is_an_option() -> None:
    model = build_model("based", vocab_size=16, d_model=8, n_layers=2, n_heads=2)
    assert model.config.conv_form == "based"
    assert isinstance(model.blocks[0].mixers["conv"], BaseConv)
    book = build_model("based", vocab_size=16, d_model=8, n_layers=2, n_heads=2, conv_form="book")
    assert isinstance(book.blocks[0].mixers["conv"], ShortConv)
    zoo = build_model("based", vocab_size=16, d_model=8, n_layers=2, n_heads=2, conv_form="zoology")
    assert isinstance(zoo.blocks[0].mixers["conv"], ZoologyBaseConv)


def test_zoology_layer_pattern_cycles_and_rejects_bad_input() -> None:
    assert zoology_layer_pattern(["conv", "linear"], 2) == ["conv", "linear"]
    assert zoology_layer_pattern(["conv", "linear", "window"], 5) == ["conv", "linear", "window", "conv", "linear"]
    with pytest.raises(ValueError, match="configs"):
        zoology_layer_pattern([], 2)
    with pytest.raises(ValueError, match="configs"):
        zoology_layer_pattern("conv", 2)
    with pytest.raises(ValueError, match="n_layers"):
        zoology_layer_pattern(["conv"], 0)
    with pytest.raises(ValueError, match="name"):
        zoology_mqar_options("mamba")
    with pytest.raises(ValueError, match="seq_len"):
        zoology_mqar_options("attention")
    assert zoology_mqar_options("attention", seq_len=64)["window"] == 64
