"""Static (kernel-free) widgets: the precomputed numbers are the package's, the markup keeps its contract.

The payloads are compared with the functions the ipywidgets draw (one source of truth); the
embedded, quantized JSON with the payloads; the HTML with the contract the site check relies on.
The last test renders a page in headless Chromium (when installed) and moves every slider.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from linattn_edu import bench
from linattn_edu.experiments.mqar_sweep import MODEL_FAMILIES, pareto_frontier
from linattn_edu.reference import alibi_bias, alibi_slopes
from linattn_edu.widgets import (
    StaticWidget,
    alibi_payload,
    gates_payload,
    recall_payload,
    static_alibi_widget,
    static_gates_widget,
    static_recall_widget,
)
from linattn_edu.widgets.alibi import attention_weights
from linattn_edu.widgets.gates import decay, horizon, impulse_response
from linattn_edu.widgets.recall import WIDTHS, chosen_state_bytes, find_stored_row
from linattn_edu.widgets.static import (
    ALIBI_SEQ_LENS,
    GATES_I_VALUES,
    GATES_R_VALUES,
    RECALL_FEATURE_DIMS,
    RECALL_WINDOWS,
    decode_array,
    encode_array,
    recall_key,
    static_js,
)

#: Largest embedded payload per widget (bytes).
MAX_PAYLOAD = 200 * 1024


@pytest.fixture(scope="module")
def widgets() -> dict[str, StaticWidget]:
    return {"alibi": static_alibi_widget(), "gates": static_gates_widget(), "recall": static_recall_widget()}


def _embedded(widget: StaticWidget) -> dict:
    """The payload JSON as the page holds it."""
    m = re.search(r'<script type="application/json" id="[^"]+" data-role="payload">(.*?)</script>', widget.html, re.S)
    assert m, "payload script missing"
    return json.loads(m.group(1).replace("<\\/", "</"))


# ----------------------------------------------------------------------------------------------
# The numbers
# ----------------------------------------------------------------------------------------------


def test_alibi_payload_is_the_package_functions(widgets: dict[str, StaticWidget]) -> None:
    p = widgets["alibi"].payload
    assert p["seq_lens"] == list(ALIBI_SEQ_LENS)
    assert len(p["slopes"]) == 32, "32 distinct slopes for 1..32 heads"
    rng = np.random.default_rng(0)
    states = [(8, 0, 32), (12, 9, 64), (1, 0, 8), (32, 31, 16)] + [
        (n, int(rng.integers(n)), int(rng.choice(ALIBI_SEQ_LENS))) for n in rng.integers(1, 33, size=8)]
    for n, h, t_len in states:
        k = p["slope_index"][n - 1][h]
        m = p["slopes"][k]
        assert m == pytest.approx(alibi_slopes(n)[h], rel=1e-12)
        # the page draws the bias as -m (i - j): the package's alibi_bias on the visible pairs
        i, j = np.tril_indices(t_len)
        assert np.allclose(alibi_bias(n, t_len)[h][i, j], -m * (i - j), rtol=1e-12, atol=1e-12)
        w = p["weights"][ALIBI_SEQ_LENS.index(t_len)]
        assert w.shape == (33, t_len * (t_len + 1) // 2)
        assert np.allclose(w[k], attention_weights(n, h, t_len)[i, j], rtol=0, atol=1e-12), (n, h, t_len)
        assert np.allclose(w[-1], attention_weights(n, h, t_len, alibi=False)[i, j], rtol=0, atol=1e-12)


def test_alibi_embedded_weights_decode_within_quantization(widgets: dict[str, StaticWidget]) -> None:
    p, emb = widgets["alibi"].payload, _embedded(widgets["alibi"])
    assert emb["slopes"] == p["slopes"], "slopes are embedded exactly"
    for exact, spec in zip(p["weights"], emb["weights"]):
        got = decode_array(spec).reshape(exact.shape)
        # u8 on the square root: |q/255 - sqrt(w)| <= 1/510
        bound = (2.0 * np.sqrt(exact) + 1.0 / 510.0) / 510.0 + 1e-12
        assert np.all(np.abs(got - exact) <= bound)


def test_gates_payload_is_the_package_functions(widgets: dict[str, StaticWidget]) -> None:
    p = widgets["gates"].payload
    r_curve = np.asarray(p["r_curve"])
    assert p["r_values"] == list(GATES_R_VALUES) and np.array_equal(r_curve[::2], p["r_values"])
    for ia, a in enumerate(p["a_values"]):
        for ic, c in enumerate(p["c_values"]):
            assert np.array_equal(p["decay"][ia, ic], decay(a, c, r_curve))
            assert np.array_equal(p["horizon"][ia, ic], horizon(a, c, r_curve[1:]))
            a_t = decay(a, c, r_curve[1:])
            assert np.allclose(p["variance_without"][ia, ic], 1.0 / (1.0 - a_t**2), rtol=1e-6)
    rng = np.random.default_rng(1)
    states = [(3, 3, 10, 20), (0, 0, 0, 0), (9, 4, 20, 7), (9, 0, 1, 13)] + [
        tuple(int(rng.integers(n)) for n in (len(p["a_values"]), len(p["c_values"]), 21, 21)) for _ in range(12)]
    for ia, ic, ir, ii in states:
        a, c, r, i = p["a_values"][ia], p["c_values"][ic], p["r_values"][ir], GATES_I_VALUES[ii]
        row = p["impulse"][p["impulse_index"][ia, ic, ir]]
        # the page scales the stored i = 1 response by i: the reference rg_lru is linear in i
        assert np.allclose(i * row, impulse_response(a, c, r, i, p["steps"]), rtol=1e-9, atol=1e-12), (a, c, r, i)


def test_gates_embedded_arrays_decode_within_quantization(widgets: dict[str, StaticWidget]) -> None:
    p, emb = widgets["gates"].payload, _embedded(widgets["gates"])
    got = decode_array(emb["impulse"]).reshape(p["impulse"].shape)
    assert np.max(np.abs(got - p["impulse"])) <= emb["impulse"]["scale"] / 131070 + 1e-12
    assert np.array_equal(emb["impulse_index"], p["impulse_index"].tolist())
    for key in ("decay", "horizon", "variance_without"):
        assert np.allclose(np.asarray(emb[key], dtype=float), p[key], rtol=1e-4, atol=0)
    assert emb["a_values"] == p["a_values"] and emb["r_curve"] == p["r_curve"], "grids are embedded exactly"


def test_recall_payload_is_the_stored_sweep_and_the_package_functions(widgets: dict[str, StaticWidget]) -> None:
    p = widgets["recall"].payload
    stored = bench.load_results("mqar_sweep")
    assert [r["accuracy"] for r in p["rows"]] == [r["accuracy"] for r in stored["rows"]]
    assert [r["state_bytes"] for r in p["rows"]] == [r["state_bytes"] for r in stored["rows"]]
    for (seq_len, n_pairs), front in zip(p["settings"], p["frontier"]):
        want = pareto_frontier(stored["rows"], seq_len=seq_len, n_pairs=n_pairs)
        assert [p["rows"][k]["state_bytes"] for k in front] == [r["state_bytes"] for r in want]
        assert [p["rows"][k]["accuracy"] for k in front] == [r["accuracy"] for r in want]
    assert [f["name"] for f in p["families"]] == list(MODEL_FAMILIES)
    rng = np.random.default_rng(2)
    for _ in range(25):
        fam = str(rng.choice(MODEL_FAMILIES))
        seq_len, n_pairs = p["settings"][int(rng.integers(len(p["settings"])))]
        d = int(rng.choice(RECALL_FEATURE_DIMS))
        w = int(rng.choice([w for w in RECALL_WINDOWS if w <= seq_len]))
        width = int(rng.choice(WIDTHS))
        entry = p["chosen"][recall_key(fam, d, w, width, seq_len, n_pairs)]
        assert entry["state_bytes"] == chosen_state_bytes(fam, feature_dim=d, window=w, d_model=width, seq_len=seq_len)
        row = find_stored_row(stored, fam, feature_dim=d, window=w, d_model=width, seq_len=seq_len, n_pairs=n_pairs)
        assert entry["row"] == (-1 if row is None else stored["rows"].index(row))
    # every stored point can be chosen with the sliders, and its state is the one the sweep stored
    reached = {e["row"] for e in p["chosen"].values()} - {-1}
    assert reached == set(range(len(stored["rows"])))
    for e in p["chosen"].values():
        if e["row"] >= 0:
            assert e["state_bytes"] == stored["rows"][e["row"]]["state_bytes"]


def test_encode_decode_round_trip_and_bad_input() -> None:
    x = np.array([0.0, 1e-5, 0.25, 0.5, 3.0])
    assert np.allclose(decode_array(encode_array(x, "u16")), x, atol=3.0 / 131070 + 1e-15, rtol=0)
    assert np.allclose(decode_array(encode_array(x, "u8sqrt")), x, atol=3.0 * 2 / 510 + 1e-3, rtol=0)
    assert decode_array(encode_array(np.zeros(3), "u16")).tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="encoding"):
        encode_array(x, "f16")
    with pytest.raises(ValueError, match="values"):
        encode_array(-x - 1, "u16")
    with pytest.raises(ValueError, match="spec"):
        decode_array({"enc": "zip"})


# ----------------------------------------------------------------------------------------------
# The markup
# ----------------------------------------------------------------------------------------------


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


@pytest.mark.parametrize("name", ["alibi", "gates", "recall"])
def test_html_contract(widgets: dict[str, StaticWidget], name: str) -> None:
    w = widgets[name]
    assert w._repr_html_() == w.html
    tags = _tags(w.html)
    root_tag, root = tags[0]
    assert root_tag == "div" and "linattn-static-widget" in root["class"].split()
    assert root["data-widget"] == name and root["id"] == w.element_id
    ids = [a["id"] for _, a in tags if a.get("id")]
    assert len(ids) == len(set(ids)) and all(i.startswith(w.element_id) for i in ids)
    sliders = [a for t, a in tags if t == "input" and a.get("type") == "range"]
    assert len(sliders) >= 2
    labels = {a["for"] for t, a in tags if t == "label"}
    outputs = {a["for"] for t, a in tags if t == "output"}
    for s in sliders:
        assert s["id"] in labels, f"slider {s['id']} has no visible label"
        assert s["id"] in outputs, f"slider {s['id']} shows no current value"
        assert int(s["min"]) <= int(s["value"]) <= int(s["max"])
    assert f'window.linattnStatic.init("{w.element_id}")' in w.html
    assert "<svg" not in w.html, "the SVG is drawn by the script"
    assert w.payload_bytes < MAX_PAYLOAD, f"{name}: payload {w.payload_bytes / 1024:.0f} KiB"


def test_two_instances_have_disjoint_ids() -> None:
    a, b = static_alibi_widget(), static_alibi_widget(n_heads=12, head=9, seq_len=64)
    ids_a = {x["id"] for _, x in _tags(a.html) if x.get("id")}
    ids_b = {x["id"] for _, x in _tags(b.html) if x.get("id")}
    assert a.element_id != b.element_id and not ids_a & ids_b


def test_js_uses_no_network_and_is_script_safe() -> None:
    js = static_js()
    for needle in ("fetch(", "XMLHttpRequest", "import(", "importScripts", "WebSocket", "<script", "</script", "<!--",
                   "eval(", "localStorage", "document.write"):
        assert needle not in js, needle
    urls = set(re.findall(r"https?://[^\s\"']+", js))
    assert urls == {"http://www.w3.org/2000/svg"}, "only the SVG namespace name, which is not fetched"


def test_initial_state_is_embedded() -> None:
    tags = _tags(static_gates_widget(a=0.99, c=4.0, r=0.25, i=0.5).html)
    values = {a["data-key"]: int(a["value"]) for t, a in tags if t == "input" and a.get("data-key")}
    assert values == {"a": 5, "c": 2, "r": 5, "i": 10}
    tags = _tags(static_recall_widget("linear_taylor", feature_dim=2, window=8, seq_len=128).html)
    assert ("option", {"value": "linear_taylor", "selected": None}) in tags
    disabled = {a["data-key"] for t, a in tags if t == "input" and "disabled" in a}
    assert disabled == {"window"}, "linear_taylor ignores the window"


# ----------------------------------------------------------------------------------------------
# Bad arguments
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: static_alibi_widget(n_heads=0), "n_heads"),
        (lambda: static_alibi_widget(n_heads=40), "n_heads"),
        (lambda: static_alibi_widget(n_heads=4, head=4), "head"),
        (lambda: static_alibi_widget(seq_len=33), "seq_len"),
        (lambda: static_alibi_widget(alibi="yes"), "alibi"),
        (lambda: static_alibi_widget(seed=-1), "seed"),
        (lambda: alibi_payload(seq_lens=[8, 4]), "seq_lens"),
        (lambda: alibi_payload(seq_lens=[8, 256]), "seq_lens"),
        (lambda: alibi_payload(max_heads=65), "max_heads"),
        (lambda: static_gates_widget(a=0.96), "a"),
        (lambda: static_gates_widget(c=3.0), "c"),
        (lambda: static_gates_widget(r=0.33), "r"),
        (lambda: static_gates_widget(i=1.5), "i"),
        (lambda: static_gates_widget(r=math.nan), "r"),
        (lambda: gates_payload(a_values=[0.5, 1.0]), "a_values"),
        (lambda: gates_payload(c_values=[0.0, 1.0]), "c_values"),
        (lambda: gates_payload(steps=0), "steps"),
        (lambda: static_recall_widget("mamba"), "family"),
        (lambda: static_recall_widget(feature_dim=3), "feature_dim"),
        (lambda: static_recall_widget(window=128, seq_len=64), "window"),
        (lambda: static_recall_widget(d_model=48), "d_model"),
        (lambda: static_recall_widget(seq_len=96), "seq_len, n_pairs"),
        (lambda: recall_payload(stored={"rows": None}), "stored"),
    ],
)
def test_bad_arguments_raise_naming_them(call, name: str) -> None:
    with pytest.raises(ValueError, match=re.escape(name)):
        call()


# ----------------------------------------------------------------------------------------------
# The script in a browser
# ----------------------------------------------------------------------------------------------


_DRIVER = """
(function () {
  var rep = { errors: window.__errors, widgets: [] };
  function svgs(root) {
    return Array.prototype.map.call(root.querySelectorAll("svg"), function (s) { return s.outerHTML; }).join("");
  }
  Array.prototype.forEach.call(document.querySelectorAll(".linattn-static-widget"), function (root) {
    var w = { name: root.dataset.widget, rendered: root.getAttribute("data-rendered"),
              svgs: root.querySelectorAll("svg").length, moved: 0, changed: 0 };
    Array.prototype.forEach.call(root.querySelectorAll('input[type="range"]'), function (inp) {
      if (inp.disabled) return;
      var before = svgs(root);
      inp.value = String(+inp.value < +inp.max ? +inp.max : +inp.min);
      inp.dispatchEvent(new Event("input", { bubbles: true }));
      w.moved++;
      if (svgs(root) !== before) w.changed++;
    });
    rep.widgets.push(w);
  });
  var pre = document.createElement("pre"); pre.id = "report"; pre.textContent = JSON.stringify(rep);
  document.body.appendChild(pre);
})();
"""


@pytest.mark.slow
def test_widgets_render_and_respond_in_chromium(widgets: dict[str, StaticWidget]) -> None:
    """All three on one page (two ALiBi): drawn, no script errors, every slider changes the SVG.

    Never skipped: ``tools.sitecheck.ensure_chromium`` finds Chromium or installs it
    (as ``.ci/run`` does), and fails with instructions when it cannot.
    """
    from tools.sitecheck import ensure_chromium

    chromium = str(ensure_chromium())
    head = ("<script>window.__errors = []; window.addEventListener('error', function (e) { window.__errors.push("
            "String(e.message)); }); var _e = console.error; console.error = function () { window.__errors.push("
            "Array.prototype.join.call(arguments, ' ')); _e.apply(console, arguments); };</script>")
    body = "".join(w.html for w in widgets.values()) + static_alibi_widget(n_heads=3, head=2, seq_len=8).html
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "page.html"
        page.write_text(f'<!doctype html><html><head><meta charset="utf-8">{head}</head><body>{body}'
                        f"<script>{_DRIVER}</script></body></html>", encoding="utf-8")
        cmd = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={Path(tmp) / 'profile'}", "--dump-dom", page.as_uri()]
        dom = subprocess.run(cmd, capture_output=True, text=True, timeout=180).stdout
    m = re.search(r'<pre id="report">(.*?)</pre>', dom, re.S)
    assert m, "the driver did not run"
    import html as html_lib

    rep = json.loads(html_lib.unescape(m.group(1)))
    assert rep["errors"] == []
    assert [w["name"] for w in rep["widgets"]] == ["alibi", "gates", "recall", "alibi"]
    for w in rep["widgets"]:
        assert w["rendered"] == "1" and w["svgs"] >= 1, w
        assert w["moved"] >= 2 and w["changed"] == w["moved"], w
