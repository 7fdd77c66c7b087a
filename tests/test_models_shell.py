"""The language-model shell: every zoo family builds on ``LanguageModel``, its config sizes its own
decode state, and the registry declares how each experiment family is drawn."""

from __future__ import annotations

import pytest
import torch

from linattn_edu.models import (
    FAMILY_INFO,
    MODEL_REGISTRY,
    STATE_KINDS,
    LanguageModel,
    TreeLanguageModel,
    available_models,
    build_model,
    cache_bytes,
    count_parameters,
    family_info,
    model_state_bytes,
    register_family,
    state_bytes,
)

#: The zoo's kinds (tests elsewhere may register private ``_test_*`` kinds).
ZOO_KINDS = [k for k in available_models() if not k.startswith("_")]

#: One or more option sets per kind; small windows and groups so the lengths below cross them.
CASES = [
    ("transformer", {}),
    ("transformer", {"pos": "rope", "window": 4, "n_kv_heads": 2}),
    ("linear", {"feature_map": "taylor", "feature_dim": 2}),
    ("based", {"window": 4, "feature_dim": 2}),
    ("based", {"layer_pattern": ["conv", "linear"], "conv_form": "zoology", "mlp": "none"}),
    ("hawk", {"conv_width": 3}),
    ("griffin", {"window": 4}),
    ("linearized", {"group_size": 4}),
    ("linearized", {"attention": "linear", "conv": False}),
]
LENGTHS = (1, 3, 4, 6, 9)


def test_every_zoo_kind_subclasses_the_shell_and_sizes_its_state():
    assert set(ZOO_KINDS) == set(STATE_KINDS)
    for kind in ZOO_KINDS:
        builder = MODEL_REGISTRY[kind]
        assert isinstance(builder, type) and issubclass(builder, LanguageModel), kind
        assert callable(getattr(builder.config_class, "state_bytes", None)), kind
        assert {case[0] for case in CASES} >= {kind}


def test_tree_decoding_only_where_implemented():
    assert issubclass(MODEL_REGISTRY["transformer"], TreeLanguageModel)
    assert issubclass(MODEL_REGISTRY["linearized"], TreeLanguageModel)
    for kind in ("linear", "based", "hawk", "griffin"):
        assert not hasattr(MODEL_REGISTRY[kind], "tree_step"), kind


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind,options", CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_config_state_bytes_equals_a_real_decode_cache(kind, options, dtype):
    torch.manual_seed(0)
    model = build_model(kind, vocab_size=11, d_model=16, n_layers=2, n_heads=2, **options).to(dtype).eval()
    cfg = model.config
    bpe = torch.empty((), dtype=dtype).element_size()
    tokens = torch.randint(0, 11, (1, max(LENGTHS)))
    seen = []
    with torch.no_grad():
        # prefill of each length
        for t in LENGTHS:
            _, cache = model.prefill(tokens[:, :t])
            seen.append((t, cache_bytes(cache)))
        # a prefill of one token, then steps: the cache a decode loop actually holds
        _, cache = model.prefill(tokens[:, :1])
        for t in range(2, max(LENGTHS) + 1):
            _, cache = model.step(tokens[:, t - 1], cache)
            if t in LENGTHS:
                seen.append((t, cache_bytes(cache)))
    for t, actual in seen:
        assert cfg.state_bytes(t, bpe) == actual, (kind, options, t)
        assert model_state_bytes(model, seq_len=t) == actual
        assert state_bytes(kind, seq_len=t, bytes_per_element=bpe, d_model=16, n_layers=2, n_heads=2,
                           **options) == actual
    sizes = {actual for _, actual in seen}
    if kind == "transformer" and "window" not in options:
        assert len(sizes) == len(LENGTHS)  # the KV cache grows with every token


def test_state_bytes_counts_float32_states_of_a_16bit_model():
    cfg = build_model("hawk", vocab_size=11, d_model=16, n_layers=2, n_heads=2).config
    # conv inputs at 2 bytes, h at 4: 2 layers x (16 x 3 x 2 + 16 x 4)
    assert cfg.state_bytes(5, 2, 4) == 2 * (16 * 3 * 2 + 16 * 4)
    assert cfg.state_bytes(5, 2) == 2 * (16 * 3 * 2 + 16 * 2)


@pytest.mark.parametrize("args,match", [((-1, 2), "seq_len"), ((3, 0), "bytes_per_element"),
                                        ((3, 2, 0), "state_bytes_per_element"), ((True, 2), "seq_len")])
def test_config_state_bytes_rejects_bad_sizes(args, match):
    for kind in ZOO_KINDS:
        cfg = build_model(kind, vocab_size=11, d_model=16, n_layers=2, n_heads=2).config
        with pytest.raises(ValueError, match=match):
            cfg.state_bytes(*args)


def test_shell_checks_options_tokens_and_caches_for_every_kind():
    for kind in ZOO_KINDS:
        with pytest.raises(ValueError, match=rf"unknown option\(s\) \['nope'\] for kind '{kind}'"):
            build_model(kind, vocab_size=11, d_model=16, n_layers=2, n_heads=2, nope=1)
        model = build_model(kind, vocab_size=11, d_model=16, n_layers=2, n_heads=2)
        assert model.num_parameters() == count_parameters(model)
        assert model.lm_head.weight is model.tok_emb.weight  # tied by default
        with pytest.raises(ValueError, match="tokens must be in"):
            model(torch.tensor([[0, 11]]))
        with pytest.raises(TypeError, match="token must hold integer"):
            model.step(torch.zeros(1), None)
        with pytest.raises(TypeError, match=f"cache must be a {model.cache_class.__name__}"):
            model.step(torch.zeros(1, dtype=torch.long), {"layers": []})
        _, cache = model.prefill(torch.zeros(2, 3, dtype=torch.long))
        with pytest.raises(ValueError, match="batch size"):
            model.step(torch.zeros(1, dtype=torch.long), cache)


def test_families_declare_label_colour_and_marker():
    from linattn_edu.experiments import compare, mqar_sweep

    families = set(mqar_sweep._ALL_FAMILIES) | {spec["mqar"] for spec in compare.MECHANISMS.values()}
    assert families <= set(FAMILY_INFO)
    for name, spec in compare.MECHANISMS.items():
        info = family_info(spec["mqar"])
        assert info.label == name  # the comparison's mechanism names are the families' labels
        assert (compare.COLORS[name], compare.MARKERS[name]) == (info.color, info.marker)
    for fam in mqar_sweep._ALL_FAMILIES:
        assert mqar_sweep.FAMILY_STYLES[fam] == (FAMILY_INFO[fam].color, FAMILY_INFO[fam].marker)
    styles = [(i.color, i.marker) for i in FAMILY_INFO.values()]
    assert len(set(styles)) == len(styles)  # no two families look alike


def test_register_family_rejects_conflicts_and_bad_names():
    info = FAMILY_INFO["hawk"]
    assert register_family("hawk", label=info.label, color=info.color, marker=info.marker) == info  # a reload
    with pytest.raises(ValueError, match="already registered"):
        register_family("hawk", label="Hawk", color="tab:red", marker="D")
    with pytest.raises(ValueError, match="label must be a non-empty str"):
        register_family("_x", label="", color="tab:red", marker="D")
    with pytest.raises(ValueError, match="family must be one of"):
        family_info("nope")
    assert "_x" not in FAMILY_INFO
