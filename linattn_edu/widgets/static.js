/* linattn_edu/widgets/static.js: the renderer of the book's static widgets (see static.py).
 *
 * Dependency-free on purpose: it draws inline SVG with the DOM API and redraws whenever a slider
 * moves; it loads nothing (no network, no library). One file serves the three widgets:
 *   alibi  (Chapter 3): bias heatmap, slopes bar chart, attention-weights heatmap
 *   gates  (Chapter 6): four line charts of the RG-LRU's decay, horizon, impulse response, variance
 *   recall (Chapter 5): MQAR accuracy against decode-state bytes (log x) with the Pareto frontier
 * Every number drawn comes from the JSON payload Python computed with the package's functions; the
 * script only looks them up, except two one-line identities: ALiBi's bias -m (i - j) from the stored
 * slope m, and the impulse response (variance) scaled by the input gate i (i^2), which it is linear in.
 *
 * Entry point: window.linattnStatic.init(rootId), called by the script tag of each widget.
 */
(function () {
  "use strict";
  var VERSION = "1";
  if (window.linattnStatic && window.linattnStatic.version === VERSION) return;

  var NS = "http://www.w3.org/2000/svg";
  var FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif';
  var HALO = { stroke: "#ffffff", "stroke-width": 3, "stroke-linejoin": "round", "paint-order": "stroke" };
  var BLUE = "#1f77b4", ORANGE = "#ff7f0e", RED = "#d62728", GREY = "#777777", MASKED = "#e0e0e0";

  // ------------------------------------------------------------------------------- SVG helpers

  function el(parent, tag, attrs, text) {
    var node = document.createElementNS(NS, tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        if (attrs[k] !== undefined && attrs[k] !== null) node.setAttribute(k, attrs[k]);
      });
    }
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  // Plain text.
  function txt(parent, x, y, str, attrs) {
    return el(parent, "text", Object.assign({ x: x, y: y, "font-size": 11 }, attrs || {}), str);
  }

  // Text with light math markup: "a_t" and "m_{h}" subscripts, "2^{-8}" superscripts.
  function rich(parent, x, y, str, attrs) {
    var size = (attrs && attrs["font-size"]) || 12;
    var t = el(parent, "text", Object.assign({ x: x, y: y, "font-size": size }, attrs || {}));
    var re = /([_^])(\{[^}]*\}|[^\s{}])/g;
    var last = 0, shift = 0, m;
    str = str.replace(/\\_/g, "\u0001").replace(/\\\^/g, "\u0002");  // "\_" and "\^" stay literal
    function piece(s, dy, small) {
      var a = {};
      if (Math.abs(dy) > 1e-9) a.dy = dy.toFixed(2);
      if (small) a["font-size"] = (size * 0.72).toFixed(1);
      el(t, "tspan", a, s.replace(/\u0001/g, "_").replace(/\u0002/g, "^"));
    }
    while ((m = re.exec(str)) !== null) {
      if (m.index > last) { piece(str.slice(last, m.index), -shift, false); shift = 0; }
      var body = m[2].charAt(0) === "{" ? m[2].slice(1, -1) : m[2];
      var target = m[1] === "_" ? size * 0.3 : -size * 0.42;
      piece(body, target - shift, true);
      shift = target;
      last = re.lastIndex;
    }
    if (last < str.length) piece(str.slice(last), -shift, false);
    return t;
  }

  function textWidth(node, fallbackChars, size) {
    var w = 0;
    try { w = node.getComputedTextLength(); } catch (e) { w = 0; }
    return w > 0 ? w : fallbackChars * (size || 11) * 0.56;
  }

  // A new SVG panel in the chart container; the plot area is [x0, x1] x [y0, y1].
  function panel(container, width, height, margin, title, label) {
    var svg = el(null, "svg", {
      xmlns: NS, width: width, height: height, viewBox: "0 0 " + width + " " + height,
      role: "img", "aria-label": label || title.replace(/[_^{}]/g, ""), "font-family": FONT,
    });
    container.appendChild(svg);
    el(svg, "rect", { x: 0, y: 0, width: width, height: height, fill: "#ffffff" });
    var lines = title.split("\n");
    lines.forEach(function (line, k) {
      rich(svg, width / 2, 16 + 15 * k, line, { "text-anchor": "middle", "font-size": k === 0 ? 12.5 : 11.5,
        "font-weight": k === 0 ? 600 : 400, fill: "#111" });
    });
    return { svg: svg, w: width, h: height, x0: margin[0], x1: width - margin[1], y0: margin[2],
      y1: height - margin[3] };
  }

  // ------------------------------------------------------------------------------- scales and ticks

  function linear(d0, d1, r0, r1) {
    var k = (r1 - r0) / (d1 - d0);
    var f = function (v) { return r0 + (v - d0) * k; };
    f.lo = d0; f.hi = d1;
    return f;
  }

  function logscale(d0, d1, r0, r1) {
    var a = Math.log10(d0), k = (r1 - r0) / (Math.log10(d1) - a);
    var f = function (v) { return r0 + (Math.log10(v) - a) * k; };
    f.lo = d0; f.hi = d1;
    return f;
  }

  function niceStep(span, n) {
    var raw = span / Math.max(n, 1), mag = Math.pow(10, Math.floor(Math.log10(raw))), e = raw / mag;
    return (e >= 7.5 ? 10 : e >= 3.5 ? 5 : e >= 1.5 ? 2 : 1) * mag;
  }

  function linTicks(lo, hi, n, format) {
    var step = niceStep(hi - lo, n), out = [];
    for (var v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) {
      var w = Math.abs(v) < step * 1e-9 ? 0 : v;
      out.push({ v: w, label: format ? format(w) : fmt(w, 4) });
    }
    return out;
  }

  // Powers of ten in [lo, hi] (with 2 and 5 times them when fewer than three fit).
  function logTicks(lo, hi, format) {
    var out = [], e0 = Math.ceil(Math.log10(lo) - 1e-9), e1 = Math.floor(Math.log10(hi) + 1e-9);
    var mults = e1 - e0 >= 2 ? [1] : [1, 2, 5];
    for (var e = e0 - 1; e <= e1; e++) {
      mults.forEach(function (m) {
        var v = m * Math.pow(10, e);
        if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push(v);
      });
    }
    return out.map(function (v) { return { v: v, label: (format || logLabel)(v) }; });
  }

  var SUP = { "-": "\u207b", "0": "\u2070", "1": "\u00b9", "2": "\u00b2", "3": "\u00b3", "4": "\u2074",
    "5": "\u2075", "6": "\u2076", "7": "\u2077", "8": "\u2078", "9": "\u2079", ".": "\u00b7" };
  function sup(s) { return String(s).split("").map(function (c) { return SUP[c] || c; }).join(""); }

  function pow10(v) {
    var e = Math.log10(v);
    if (Math.abs(e - Math.round(e)) < 1e-9) {
      e = Math.round(e);
      return e === 0 ? "1" : e === 1 ? "10" : "10" + sup(e);
    }
    return fmt(v, 2);
  }

  // Plain numbers from 0.001 to 10^4, powers of ten beyond.
  function logLabel(v) { return v >= 1e-3 && v < 1e4 ? fmt(v, 3) : pow10(v); }

  function fmt(v, sig) {
    if (v === Infinity) return "\u221e";
    if (v === 0) return "0";
    var s = Number(v).toPrecision(sig || 3);
    if (s.indexOf("e") >= 0) {
      var parts = s.split("e");
      return parts[0].replace(/\.?0+$/, "") + "\u00d710" + sup(parseInt(parts[1], 10));
    }
    return s.indexOf(".") >= 0 ? s.replace(/\.?0+$/, "") : s;
  }

  function bytesTick(v) {
    var units = [[1e6, " MB"], [1e3, " kB"], [1, " B"]];
    for (var k = 0; k < units.length; k++) if (v >= units[k][0]) return fmt(v / units[k][0], 3) + units[k][1];
    return fmt(v, 3) + " B";
  }

  function binary(n) { return n >= 1048576 ? (n / 1048576).toFixed(2) + " MiB" : (n / 1024).toFixed(1) + " KiB"; }

  function thousands(n) { return Math.round(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ","); }

  // ------------------------------------------------------------------------------- axes, legend, marks

  // Grid, ticks, tick labels, axis labels and frame of a panel; o = {x, y, xticks, yticks, xlabel, ylabel}.
  function axes(p, o) {
    var g = el(p.svg, "g", { fill: "#333", "font-size": 10.5 });
    (o.yticks || []).forEach(function (t) {
      var yy = o.y(t.v);
      if (o.grid !== false) el(g, "line", { x1: p.x0, x2: p.x1, y1: yy, y2: yy, stroke: "#e8e8e8" });
      el(g, "line", { x1: p.x0 - 4, x2: p.x0, y1: yy, y2: yy, stroke: "#444" });
      txt(g, p.x0 - 6, yy + 3.5, t.label, { "text-anchor": "end", "font-size": 10.5 });
    });
    (o.xticks || []).forEach(function (t) {
      var xx = o.x(t.v);
      if (o.grid !== false) el(g, "line", { x1: xx, x2: xx, y1: p.y0, y2: p.y1, stroke: "#e8e8e8" });
      el(g, "line", { x1: xx, x2: xx, y1: p.y1, y2: p.y1 + 4, stroke: "#444" });
      txt(g, xx, p.y1 + 15, t.label, { "text-anchor": "middle", "font-size": 10.5 });
    });
    if (o.xlabel) {
      rich(g, (p.x0 + p.x1) / 2, p.y1 + 32, o.xlabel, { "text-anchor": "middle", "font-size": 11.5, fill: "#111" });
    }
    if (o.ylabel) {
      var cx = p.x0 - (o.ylabelOffset || 40), cy = (p.y0 + p.y1) / 2;
      rich(g, cx, cy, o.ylabel, { "text-anchor": "middle", "font-size": 11.5, fill: "#111",
        transform: "rotate(-90 " + cx + " " + cy + ")" });
    }
    return g;
  }

  function frame(p) {
    el(p.svg, "rect", { x: p.x0, y: p.y0, width: p.x1 - p.x0, height: p.y1 - p.y0, fill: "none", stroke: "#444" });
  }

  function clampY(p, y) { return Math.max(p.y0, Math.min(p.y1, y)); }

  function polyline(p, xs, ys, x, y, attrs) {
    var pts = [];
    for (var k = 0; k < xs.length; k++) {
      var yv = ys[k];
      if (yv === null || !isFinite(yv)) continue;
      pts.push(x(xs[k]).toFixed(2) + "," + clampY(p, y(yv)).toFixed(2));
    }
    return el(p.svg, "polyline", Object.assign({ points: pts.join(" "), fill: "none", stroke: BLUE,
      "stroke-width": 1.8, "stroke-linejoin": "round" }, attrs || {}));
  }

  function marker(parent, kind, x, y, size, color, filled, extra) {
    var s = size / 2;
    var a = Object.assign({ fill: filled ? color : "#ffffff", "fill-opacity": filled ? 1 : 0.85, stroke: color,
      "stroke-width": 1.6 }, extra || {});
    function poly(pts) {
      var points = pts.map(function (q) { return (x + q[0]).toFixed(2) + "," + (y + q[1]).toFixed(2); }).join(" ");
      return el(parent, "polygon", Object.assign({ points: points }, a));
    }
    switch (kind) {
      case "s":
        return el(parent, "rect", Object.assign({ x: x - 0.85 * s, y: y - 0.85 * s, width: 1.7 * s, height: 1.7 * s },
          a));
      case "^": return poly([[0, -s], [s, s * 0.8], [-s, s * 0.8]]);
      case "v": return poly([[0, s], [s, -s * 0.8], [-s, -s * 0.8]]);
      case "D": return poly([[0, -s], [s * 0.8, 0], [0, s], [-s * 0.8, 0]]);
      case "*": {
        var pts = [];
        for (var k = 0; k < 10; k++) {
          var r = k % 2 ? s * 0.5 : s * 1.25, ang = -Math.PI / 2 + k * Math.PI / 5;
          pts.push([r * Math.cos(ang), r * Math.sin(ang)]);
        }
        return poly(pts);
      }
      case "P": {
        var t = s * 0.35;
        return poly([[-t, -s], [t, -s], [t, -t], [s, -t], [s, t], [t, t], [t, s], [-t, s], [-t, t], [-s, t],
          [-s, -t], [-t, -t]]);
      }
      case "o": return el(parent, "circle", Object.assign({ cx: x, cy: y, r: s }, a));
      default: {
        var g = el(parent, "g", { stroke: color, "stroke-width": 2 });
        el(g, "line", { x1: x - s, y1: y - s, x2: x + s, y2: y + s });
        el(g, "line", { x1: x - s, y1: y + s, x2: x + s, y2: y - s });
        return g;
      }
    }
  }

  // A legend box; items = [{label, color, dash, width, marker, filled, ring, rich}], at (x, y) = its
  // top-left corner, or anchored to a corner of the plot area with corner = "ur" | "ul" | "lr" | "ll".
  function legend(p, items, corner, at) {
    var size = 10.5, rowH = 15, sym = 24;
    var g = el(p.svg, "g", {});
    var box = el(g, "rect", { fill: "#ffffff", "fill-opacity": 0.88, stroke: "#c8c8c8", rx: 3 });
    var width = 0;
    var texts = items.map(function (it, k) {
      var t = it.rich ? rich(g, 0, 0, it.label, { "font-size": size, fill: "#222" })
                      : txt(g, 0, 0, it.label, { "font-size": size, fill: "#222" });
      width = Math.max(width, textWidth(t, it.label.length, size));
      return t;
    });
    var w = sym + 10 + width + 8, h = items.length * rowH + 8;
    var x, y;
    if (at) { x = at[0]; y = at[1]; }
    else {
      x = corner[1] === "r" ? p.x1 - w - 6 : p.x0 + 6;
      y = corner[0] === "u" ? p.y0 + 6 : p.y1 - h - 6;
    }
    box.setAttribute("x", x); box.setAttribute("y", y); box.setAttribute("width", w); box.setAttribute("height", h);
    items.forEach(function (it, k) {
      var cy = y + 4 + rowH * k + rowH / 2, x0 = x + 6;
      if (it.dash !== undefined || it.width) {
        el(g, "line", { x1: x0, x2: x0 + sym, y1: cy, y2: cy, stroke: it.color, "stroke-width": it.width || 1.8,
          "stroke-dasharray": it.dash || null, "stroke-opacity": it.opacity || 1 });
      }
      if (it.marker) marker(g, it.marker, x0 + sym / 2, cy, it.markerSize || 8, it.color, it.filled);
      if (it.ring) el(g, "circle", { cx: x0 + sym / 2, cy: cy, r: 6, fill: "none", stroke: "#000", "stroke-width": 2 });
      texts[k].setAttribute("x", x0 + sym + 6);
      texts[k].setAttribute("y", cy + 3.5);
    });
    return { w: w, h: h };
  }

  // ------------------------------------------------------------------------------- colour scales

  function cmap(stops) {
    var rgb = stops.map(function (h) {
      return [parseInt(h.slice(1, 3), 16), parseInt(h.slice(3, 5), 16), parseInt(h.slice(5, 7), 16)];
    });
    var n = rgb.length;
    return function (t) {
      t = Math.max(0, Math.min(1, t));
      var u = t * (n - 1), k = Math.min(n - 2, Math.floor(u)), f = u - k, a = rgb[k], b = rgb[k + 1];
      return "rgb(" + [0, 1, 2].map(function (c) { return Math.round(a[c] + (b[c] - a[c]) * f); }).join(",") + ")";
    };
  }

  // A vertical colour bar right of the plot area: t in [0, 1] from bottom to top, ticks {t, label}.
  function colorbar(p, color, ticks, label) {
    var x = p.x1 + 10, wbar = 12, n = 64, hh = (p.y1 - p.y0) / n;
    var g = el(p.svg, "g", {});
    for (var k = 0; k < n; k++) {
      el(g, "rect", { x: x, y: (p.y1 - (k + 1) * hh).toFixed(2), width: wbar, height: (hh + 0.6).toFixed(2),
        fill: color((k + 0.5) / n) });
    }
    el(g, "rect", { x: x, y: p.y0, width: wbar, height: p.y1 - p.y0, fill: "none", stroke: "#444" });
    ticks.forEach(function (t) {
      var yy = p.y1 - t.t * (p.y1 - p.y0);
      el(g, "line", { x1: x + wbar, x2: x + wbar + 3, y1: yy, y2: yy, stroke: "#444" });
      txt(g, x + wbar + 5, yy + 3.5, t.label, { "font-size": 10, fill: "#333" });
    });
    var cx = x + wbar + 40, cy = (p.y0 + p.y1) / 2;
    txt(g, cx, cy, label, { "text-anchor": "middle", "font-size": 10.5, fill: "#111",
      transform: "rotate(90 " + cx + " " + cy + ")" });
  }

  // A causal T x T heatmap: value(i, j) for j <= i, colour(value); masked cells grey; hover readout.
  function heatmap(p, T, value, color, readout) {
    var cw = (p.x1 - p.x0) / T, ch = (p.y1 - p.y0) / T;
    el(p.svg, "rect", { x: p.x0, y: p.y0, width: p.x1 - p.x0, height: p.y1 - p.y0, fill: MASKED });
    var g = el(p.svg, "g", { "shape-rendering": "crispEdges" });
    for (var i = 0; i < T; i++) {
      for (var j = 0; j <= i; j++) {
        el(g, "rect", { x: (p.x0 + j * cw).toFixed(2), y: (p.y0 + i * ch).toFixed(2), width: (cw + 0.35).toFixed(2),
          height: (ch + 0.35).toFixed(2), fill: color(value(i, j)) });
      }
    }
    var info = txt(p.svg, p.x0, p.h - 6, "", { "font-size": 10.5, fill: "#444" });
    var hover = el(p.svg, "rect", { x: p.x0, y: p.y0, width: p.x1 - p.x0, height: p.y1 - p.y0, fill: "transparent" });
    hover.addEventListener("mousemove", function (ev) {
      var box = hover.getBoundingClientRect();
      var j = Math.floor((ev.clientX - box.left) / box.width * T);
      var i = Math.floor((ev.clientY - box.top) / box.height * T);
      if (i < 0 || j < 0 || i >= T || j >= T) return;
      info.textContent = j > i ? "query i = " + i + ", key j = " + j + ": future key (masked)"
                               : "query i = " + i + ", key j = " + j + ": " + readout(value(i, j));
    });
    hover.addEventListener("mouseleave", function () { info.textContent = ""; });
  }

  function positionTicks(T) {
    var step = T <= 8 ? 2 : niceStep(T, 4), out = [];
    for (var v = 0; v < T; v += step) out.push(v);
    return out;
  }

  // ------------------------------------------------------------------------------- payload decoding

  // Arrays quantized in Python (static.encode_array): "u8sqrt" one byte, "u16" two bytes little-endian.
  function decode(spec) {
    if (spec._decoded) return spec._decoded;
    var bin = atob(spec.b64), n = spec.count, out = new Float64Array(n), k, q;
    if (spec.enc === "u8sqrt") {
      for (k = 0; k < n; k++) { q = bin.charCodeAt(k) / 255; out[k] = spec.scale * q * q; }
    } else if (spec.enc === "u16") {
      for (k = 0; k < n; k++) out[k] = spec.scale * (bin.charCodeAt(2 * k) | (bin.charCodeAt(2 * k + 1) << 8)) / 65535;
    } else {
      throw new Error("unknown encoding " + spec.enc);
    }
    spec._decoded = out;
    return out;
  }

  function setOut(ctx, key, text) {
    if (ctx.out[key]) ctx.out[key].textContent = text;
    if (ctx.ui[key] && ctx.ui[key].type === "range") ctx.ui[key].setAttribute("aria-valuetext", text);
  }

  function caption(ctx, text) {
    var div = document.createElement("div");
    div.setAttribute("style", "flex-basis:100%;font-weight:600;margin:2px 0 2px 4px");
    div.textContent = text;
    ctx.chart.appendChild(div);
  }

  function slopeText(m) {
    var e = Math.log2(m);
    return Math.abs(e - Math.round(e)) < 1e-9 ? "2^{" + Math.round(e) + "}" : "2^{" + fmt(e, 3) + "}";
  }

  // ------------------------------------------------------------------------------- ALiBi (Chapter 3)

  var KEY_J = "key position j (token)", QUERY_I = "query position i (token)";

  function alibiWidget(ctx) {
    var d = ctx.data, ui = ctx.ui, S = d.slopes.length;
    var magma = cmap(d.cmaps.magma), viridis = cmap(d.cmaps.viridis), floor = d.bias_floor;
    return function draw() {
      // the state: fewer heads may clamp the head slider
      var n = +ui.n_heads.value;
      ui.head.max = String(n - 1);
      if (+ui.head.value > n - 1) ui.head.value = String(n - 1);
      var h = +ui.head.value, t = +ui.seq_len.value, T = d.seq_lens[t], withBias = ui.alibi.checked;
      var idx = d.slope_index[n - 1];
      var slopes = idx.map(function (k) { return d.slopes[k]; }), m = slopes[h];
      setOut(ctx, "n_heads", String(n));
      setOut(ctx, "head", h + " (m = " + slopeText(m).replace(/\^\{(.*)\}/, function (_, e) { return sup(e); }) + ")");
      setOut(ctx, "seq_len", String(T));
      setOut(ctx, "alibi", withBias ? "softmax(q\u00b7k/\u221aD \u2212 m\u00b7(i\u2212j))"
                                    : "softmax(q\u00b7k/\u221aD), no bias");
      // the stored weights: row idx[h] of the lower triangles at length T (the last row: no bias)
      var tri = T * (T + 1) / 2, W = decode(d.weights[t]), off = (withBias ? idx[h] : S) * tri;
      var weight = function (i, j) { return W[off + i * (i + 1) / 2 + j]; };
      var bias = function (i, j) { return -m * (i - j); };
      ctx.chart.replaceChildren();
      caption(ctx, "ALiBi with " + n + " head" + (n > 1 ? "s" : "") + ", T = " + T +
        " tokens (grey: future keys, masked)");
      var ticks = positionTicks(T).map(function (v) { return { v: v, label: String(v) }; });

      // (a) the bias of head h, on one colour scale for every head: -10 and below look the same
      var pa = panel(ctx.chart, 340, 330, [48, 76, 50, 58], "(a) ALiBi bias of head " + h + ": \u2212m_{" + h +
        "}\u00b7(i\u2212j)\nm_{" + h + "} = " + slopeText(m) + " = " + fmt(m, 4));
      var pos = function (v) { return pa.x0 + (v + 0.5) * (pa.x1 - pa.x0) / T; };
      var posY = function (v) { return pa.y0 + (v + 0.5) * (pa.y1 - pa.y0) / T; };
      heatmap(pa, T, bias, function (v) { return magma((v - floor) / -floor); },
        function (v) { return "bias " + fmt(v, 3); });
      axes(pa, { x: pos, y: posY, xticks: ticks, yticks: ticks, xlabel: KEY_J, ylabel: QUERY_I, grid: false,
        ylabelOffset: 34 });
      frame(pa);
      var biasTicks = [-10, -8, -6, -4, -2, 0].map(function (v) {
        return { t: (v - floor) / -floor, label: (v < 0 ? "\u2212" : "") + Math.abs(v) };
      });
      colorbar(pa, magma, biasTicks, "bias added to the score (\u2264 \u221210 clipped)");

      // (b) the slopes of all heads, log2 axis
      var pb = panel(ctx.chart, 300, 330, [58, 14, 50, 58],
        "(b) slopes of all " + n + " heads\n(log scale, red: head " + h + ")");
      var minE = Math.floor(Math.log2(Math.min.apply(null, slopes)) + 1e-9) - 1;
      var y = function (v) { return pb.y1 - (Math.log2(v) - minE) / (0 - minE) * (pb.y1 - pb.y0); };
      var x = linear(-0.5, n - 0.5, pb.x0, pb.x1);
      var estep = -minE > 8 ? 2 : 1, yt = [], xt = [], xstep = Math.max(1, Math.ceil(n / 12));
      for (var e = 0; e >= minE; e -= estep) yt.push({ v: Math.pow(2, e), label: e === 0 ? "1" : "2" + sup(e) });
      for (var k = 0; k < n; k += xstep) xt.push({ v: k, label: String(k) });
      axes(pb, { x: x, y: y, xticks: xt, yticks: yt, xlabel: "head h", ylabel: "slope m_h (log scale)",
        ylabelOffset: 42 });
      var bw = 0.75 * (pb.x1 - pb.x0) / n;
      slopes.forEach(function (s, k) {
        var top = y(s);
        el(pb.svg, "rect", { x: (x(k) - bw / 2).toFixed(2), y: top.toFixed(2), width: bw.toFixed(2),
          height: (pb.y1 - top).toFixed(2), fill: k === h ? RED : BLUE });
      });
      frame(pb);

      // (c) the attention weights, square-root colour scale
      var pc = panel(ctx.chart, 340, 330, [48, 76, 50, 58], "(c) causal attention weights, " +
        (withBias ? "ALiBi head " + h : "no bias") + "\nrandom q, k (seed " + d.seed + ", D = " + d.head_dim + ")");
      heatmap(pc, T, weight, function (v) { return viridis(Math.sqrt(v)); },
        function (v) { return "weight " + fmt(v, 3); });
      axes(pc, { x: pos, y: posY, xticks: ticks, yticks: ticks, xlabel: KEY_J, ylabel: QUERY_I, grid: false,
        ylabelOffset: 34 });
      frame(pc);
      var weightTicks = [0, 0.01, 0.1, 0.25, 0.5, 1].map(function (v) {
        return { t: Math.sqrt(v), label: String(v) };
      });
      colorbar(pc, viridis, weightTicks, "attention weight (\u221a colour scale)");
    };
  }

  // ------------------------------------------------------------------------------- RG-LRU gates (Chapter 6)

  var GATE_R = "recurrence gate r_t";

  function gatesWidget(ctx) {
    var d = ctx.data, ui = ctx.ui, rc = d.r_curve, rpos = rc.slice(1), steps = d.steps;
    var impulse = decode(d.impulse);
    function curve(row) { return impulse.subarray(row * steps, (row + 1) * steps); }
    function rIndex(r) {
      for (var k = 0; k < d.r_values.length; k++) if (Math.abs(d.r_values[k] - r) < 1e-9) return k;
      return -1;
    }
    function scaled(row, s) { return Array.prototype.map.call(row, function (v) { return s * v; }); }
    var ts = [];
    for (var k = 0; k < steps; k++) ts.push(k);
    var W = 300, Hh = 290, margin = [56, 12, 50, 50], note = { fill: RED, "font-size": 10.5 };
    return function draw() {
      // the state: slider positions index the stored grids; r_values[k] = r_curve[2 k]
      var ia = +ui.a.value, ic = +ui.c.value, ir = +ui.r.value, ii = +ui.i.value;
      var a = d.a_values[ia], c = d.c_values[ic], r = d.r_values[ir], gi = d.i_values[ii];
      var dec = d.decay[ia][ic], hor = d.horizon[ia][ic], varw = d.variance_without[ia][ic];
      var at = dec[2 * ir], H = ir > 0 ? hor[2 * ir - 1] : Infinity;
      setOut(ctx, "a", fmt(a, 6) + " (1 \u2212 a = " + fmt(1 - a, 2) + ")");
      setOut(ctx, "c", fmt(c, 3));
      setOut(ctx, "r", r.toFixed(2));
      setOut(ctx, "i", gi.toFixed(2));
      ctx.chart.replaceChildren();
      caption(ctx, "RG-LRU gates: a = " + fmt(a, 6) + ", c = " + fmt(c, 3) + ", r = " + fmt(r, 3) + ", i = " +
        fmt(gi, 3) + "  \u2192  decay per token " + fmt(at, 4) + ", horizon " + fmt(H, 3) + " tokens");
      var rticks = linTicks(0, 1, 5, function (v) { return fmt(v, 2); });

      // (1) decay against r
      var p1 = panel(ctx.chart, W, Hh, margin, "(1) decay per token a_t = a^{c\u00b7r}\n(a = " + fmt(a, 6) +
        ", c = " + fmt(c, 3) + ")");
      var x1 = linear(0, 1, p1.x0, p1.x1), y1 = linear(0, 1.03, p1.y1, p1.y0);
      axes(p1, { x: x1, y: y1, xticks: rticks, yticks: linTicks(0, 1, 5), xlabel: GATE_R,
        ylabel: "decay per token a_t" });
      if (1 / c <= 1) {
        el(p1.svg, "line", { x1: p1.x0, x2: p1.x1, y1: y1(a), y2: y1(a), stroke: GREY, "stroke-dasharray": "2,3" });
      }
      polyline(p1, rc, dec, x1, y1, {});
      marker(p1.svg, "o", x1(r), y1(at), 8, RED, true);
      frame(p1);
      legend(p1, [
        { label: "a_t = a^{c\u00b7r}", color: BLUE, width: 1.8, rich: true },
        { label: "a = " + fmt(a, 6) + " (at r = 1/c)", color: GREY, dash: "2,3", width: 1.2 },
        { label: "r = " + fmt(r, 3) + ": a_t = " + fmt(at, 4), color: RED, marker: "o", filled: true, rich: true },
      ], "ll");

      // (2) horizon against r, log axis
      var p2 = panel(ctx.chart, W, Hh, margin, "(2) memory horizon: tokens until\nan impulse decays to 1/e");
      var hlo = Math.min.apply(null, hor) / 2, hhi = Math.max.apply(null, hor) * 2;
      var x2 = linear(0, 1, p2.x0, p2.x1), y2 = logscale(hlo, hhi, p2.y1, p2.y0);
      axes(p2, { x: x2, y: y2, xticks: rticks, yticks: logTicks(hlo, hhi), xlabel: GATE_R,
        ylabel: "horizon \u22121/log a_t (tokens, log)", ylabelOffset: 44 });
      polyline(p2, rpos, hor, x2, y2, {});
      var items2 = [{ label: "\u22121/log a_t", color: BLUE, width: 1.8, rich: true }];
      if (ir > 0) {
        marker(p2.svg, "o", x2(r), y2(H), 8, RED, true);
        items2.push({ label: "r = " + fmt(r, 3) + ": " + fmt(H, 3) + " tokens", color: RED, marker: "o",
          filled: true });
      } else {
        txt(p2.svg, p2.x0 + 8, p2.y1 - 8, "r = 0: nothing decays (horizon \u221e)", note);
      }
      frame(p2);
      legend(p2, items2, "ur");

      // (3) impulse response: the stored i = 1 responses times i (the recurrence is linear in i x)
      var compare = d.compare_r.map(rIndex);
      var rows = [ir].concat(compare).map(function (k) { return scaled(curve(d.impulse_index[ia][ic][k]), gi); });
      var ymax = Math.max.apply(null, rows.map(function (row) { return Math.max.apply(null, row); }));
      ymax = ymax > 0 ? ymax * 1.08 : 1;
      var p3 = panel(ctx.chart, W, Hh, margin, "(3) impulse response: x_0 = 1, i = " + fmt(gi, 3) +
        "\nh_t = \u221a(1\u2212a_t^2)\u00b7i\u00b7a_t^t (reference rg\\_lru)");
      var x3 = linear(0, Math.max(steps - 1, 1), p3.x0, p3.x1), y3 = linear(0, ymax, p3.y1, p3.y0);
      axes(p3, { x: x3, y: y3, xticks: linTicks(0, steps - 1, 5), yticks: linTicks(0, ymax, 5),
        xlabel: "time since the impulse t (tokens)", ylabel: "state h_t" });
      var dashes = ["6,4", "7,3,2,3"], items3 = [];
      compare.forEach(function (k, n) {
        polyline(p3, ts, rows[n + 1], x3, y3, { stroke: GREY, "stroke-opacity": 0.75, "stroke-width": 1.3,
          "stroke-dasharray": dashes[n] });
        var hk = k > 0 ? hor[2 * k - 1] : Infinity;
        items3.push({ label: "r = " + fmt(d.r_values[k], 3) + " (horizon " + fmt(hk, 3) + ")", color: GREY,
          dash: dashes[n], width: 1.3 });
      });
      polyline(p3, ts, rows[0], x3, y3, { stroke: RED, "stroke-width": 2.2 });
      items3.push({ label: "r = " + fmt(r, 3) + " (horizon " + fmt(H, 3) + ")", color: RED, width: 2.2 });
      if (ir > 0 && H <= steps - 1) {
        el(p3.svg, "line", { x1: x3(H), x2: x3(H), y1: p3.y0, y2: p3.y1, stroke: RED, "stroke-dasharray": "2,3" });
      }
      frame(p3);
      legend(p3, items3, "ur");

      // (4) stationary variance with and without the sqrt(1 - a_t^2) factor: i^2 and i^2 / (1 - a_t^2)
      var i2 = gi * gi, y4, yt4, ylabel;
      var p4 = panel(ctx.chart, W, Hh, margin, "(4) variance of h for i.i.d.\nunit-variance inputs x");
      var x4 = linear(0, 1, p4.x0, p4.x1);
      var without = varw.map(function (v) { return i2 * v; });
      if (gi > 0) {
        var lo = Math.min(i2, Math.min.apply(null, without)) / 2, hi = Math.max.apply(null, without) * 2;
        y4 = logscale(lo, hi, p4.y1, p4.y0);
        yt4 = logTicks(lo, hi);
        ylabel = "stationary Var[h] (log scale)";
      } else {
        y4 = linear(-0.05, 1, p4.y1, p4.y0);
        yt4 = linTicks(0, 1, 5);
        ylabel = "stationary Var[h] (linear: both 0)";
      }
      axes(p4, { x: x4, y: y4, xticks: rticks, yticks: yt4, xlabel: GATE_R, ylabel: ylabel });
      polyline(p4, rpos, without, x4, y4, { stroke: ORANGE });
      polyline(p4, [rpos[0], 1], [i2, i2], x4, y4, { stroke: BLUE });
      var mid = (p4.y0 + p4.y1) / 2;
      if (ir > 0) {
        marker(p4.svg, "o", x4(r), clampY(p4, y4(without[2 * ir - 1])), 8, RED, true);
        marker(p4.svg, "o", x4(r), clampY(p4, y4(i2)), 8, RED, true);
      } else {
        txt(p4.svg, p4.x0 + 8, mid, "r = 0: the state is frozen, nothing written", note);
      }
      if (gi === 0) txt(p4.svg, p4.x0 + 8, mid + 16, "i = 0: no input is written, Var[h] = 0", note);
      frame(p4);
      legend(p4, [
        { label: "without: i^2/(1\u2212a_t^2)", color: ORANGE, width: 1.8, rich: true },
        { label: "with \u221a(1\u2212a_t^2): i^2", color: BLUE, width: 1.8, rich: true },
      ], "ur");
    };
  }

  // ------------------------------------------------------------------------------- recall vs state (Chapter 5)

  function recallWidget(ctx) {
    var d = ctx.data, ui = ctx.ui, fams = {};
    d.families.forEach(function (f) { fams[f.name] = f; });
    // one x range for every state, so that moving a slider moves the line, not the axis
    var all = d.rows.map(function (r) { return r.state_bytes; });
    Object.keys(d.chosen).forEach(function (k) { all.push(d.chosen[k].state_bytes); });
    var xlo = Math.min.apply(null, all) / 1.6, xhi = Math.max.apply(null, all) * 1.6;
    function enable(key, on) {
      var lab = ctx.root.querySelector('label[for="' + ui[key].id + '"]');
      ui[key].disabled = !on;
      if (lab) lab.className = on ? "" : "lsw-off";
      if (ctx.out[key]) ctx.out[key].className = on ? "" : "lsw-off";
    }
    function size(q) { return q.marker === "*" ? 11 : 9; }
    function percent(acc) { return (100 * acc).toFixed(1) + "%"; }
    return function draw() {
      // the state: a shorter sequence may clamp the window slider
      var fam = ui.family.value, f = fams[fam], si = +ui.setting.value, L = d.settings[si][0], P = d.settings[si][1];
      var wins = d.windows.filter(function (w) { return w <= L; });
      ui.window.max = String(wins.length - 1);
      if (+ui.window.value > wins.length - 1) ui.window.value = String(wins.length - 1);
      var dim = d.feature_dims[+ui.feature_dim.value], win = wins[+ui.window.value], width = d.widths[+ui.width.value];
      enable("feature_dim", f.uses_feature_dim);
      enable("window", f.uses_window);
      setOut(ctx, "family", "");
      setOut(ctx, "feature_dim", dim + (f.uses_feature_dim ? "" : " (not used by " + fam + ")"));
      setOut(ctx, "window", win + (f.uses_window ? "" : " (not used by " + fam + ")"));
      setOut(ctx, "width", String(width));
      setOut(ctx, "setting", "L = " + L + ", " + P + " pairs");
      // the chosen model, precomputed (knobs the family ignores count as 0 in the key)
      var key = [fam, f.uses_feature_dim ? dim : 0, f.uses_window ? win : 0, width, L, P].join("|");
      var ch = d.chosen[key];
      if (!ch) throw new Error("no precomputed state for " + key);
      var rows = d.rows.filter(function (r) { return r.seq_len === L && r.n_pairs === P; });
      var front = d.frontier[si].map(function (k) { return d.rows[k]; });
      var verdict = ch.row >= 0 ? "in the stored sweep: " + percent(d.rows[ch.row].accuracy) + " recall"
        : width !== d.stored.d_model ? "not in the stored sweep (width " + d.stored.d_model + " there): train it live"
        : "not in the stored sweep: train it live";
      ctx.chart.replaceChildren();
      var p = panel(ctx.chart, 820, 440, [66, 222, 56, 56], "Recall vs state size: MQAR, L = " + L + " tokens, " +
        P + " key\u2013value pairs\nchosen: " + ch.label + ", width " + width + ", state " +
        thousands(ch.state_bytes) + " B: " + verdict, "Recall against decode-state size, MQAR L = " + L);
      var x = logscale(xlo, xhi, p.x0, p.x1), y = linear(-0.03, 1.05, p.y1, p.y0);
      axes(p, { x: x, y: y, xticks: logTicks(xlo, xhi, bytesTick),
        yticks: linTicks(0, 1, 5, function (v) { return Math.round(v * 100) + "%"; }),
        xlabel: "decode state (bytes per sequence, float32, log scale)", ylabel: "MQAR accuracy (held-out queries)",
        ylabelOffset: 46 });

      // the frontier: a staircase, the best accuracy reached with at most x bytes
      var maxX = Math.max.apply(null, rows.map(function (r) { return r.state_bytes; })), pts = [];
      front.forEach(function (r, k) {
        var next = k + 1 < front.length ? front[k + 1].state_bytes : maxX;
        pts.push(x(r.state_bytes).toFixed(2) + "," + y(r.accuracy).toFixed(2));
        pts.push(x(next).toFixed(2) + "," + y(r.accuracy).toFixed(2));
      });
      el(p.svg, "polyline", { points: pts.join(" "), fill: "none", stroke: "#000", "stroke-opacity": 0.45,
        "stroke-dasharray": "5,4", "stroke-width": 1.2 });

      // the chosen model's state: a dotted line, labelled with its size
      var cx = x(ch.state_bytes), ty = (p.y0 + p.y1) / 2;
      el(p.svg, "line", { x1: cx, x2: cx, y1: p.y0, y2: p.y1, stroke: f.color, "stroke-width": 2.2,
        "stroke-dasharray": "2,3" });
      txt(p.svg, cx - 5, ty, thousands(ch.state_bytes) + " B (" + binary(ch.state_bytes) + ")", Object.assign({
        "text-anchor": "middle", fill: f.color, "font-size": 10.5, "font-weight": 600,
        transform: "rotate(-90 " + (cx - 5) + " " + ty + ")" }, HALO));

      // the stored points, one marker and colour per family; each label goes to the candidate position that
      // overlaps the markers and the labels placed before it least, inside the plot area
      var sorted = rows.slice().sort(function (u, v) { return u.state_bytes - v.state_bytes; });
      var boxes = sorted.map(function (r) { return [x(r.state_bytes) - 6, y(r.accuracy) - 6, 12, 12]; });
      function overlap(b, c) {
        return Math.max(0, Math.min(b[0] + b[2], c[0] + c[2]) - Math.max(b[0], c[0])) *
               Math.max(0, Math.min(b[1] + b[3], c[1] + c[3]) - Math.max(b[1], c[1]));
      }
      sorted.forEach(function (r) {
        var q = fams[r.family] || { color: GREY, marker: "x" }, px = x(r.state_bytes), py = y(r.accuracy);
        marker(p.svg, q.marker, px, py, size(q), q.color, false);
        var w = r.label.length * 5.8, hgt = 12, best = null, bestScore = Infinity;
        var offsets = [[8, -15], [8, 4], [-8 - w, -15], [-8 - w, 4], [-w / 2, -22], [-w / 2, 10], [8, -28], [8, 17],
          [-8 - w, -28], [-8 - w, 17]];
        offsets.forEach(function (o) {
          var box = [px + o[0], py + o[1], w, hgt];
          var score = boxes.reduce(function (acc, b) { return acc + overlap(box, b); }, 0);
          score += w * hgt - overlap(box, [p.x0, p.y0, p.x1 - p.x0, p.y1 - p.y0]);  // outside the plot area
          if (score < bestScore - 1e-9) { best = box; bestScore = score; }
        });
        boxes.push(best);
        txt(p.svg, best[0], best[1] + 9.5, r.label, Object.assign({ "font-size": 10, fill: q.color }, HALO));
      });
      if (ch.row >= 0) {
        var sr = d.rows[ch.row];
        el(p.svg, "circle", { cx: x(sr.state_bytes), cy: y(sr.accuracy), r: 10, fill: "none", stroke: "#000",
          "stroke-width": 2 });
      }
      frame(p);

      var items = d.families.filter(function (q) {
        return rows.some(function (r) { return r.family === q.name; });
      }).map(function (q) {
        return { label: q.name + " (stored)", color: q.color, marker: q.marker, markerSize: size(q) };
      });
      items.push({ label: "Pareto frontier (stored)", color: "#000", dash: "5,4", width: 1.2, opacity: 0.45 });
      items.push({ label: "chosen model's state size", color: f.color, dash: "2,3", width: 2.2 });
      if (ch.row >= 0) {
        items.push({ label: "chosen, stored: " + percent(d.rows[ch.row].accuracy), color: "#000", ring: true });
      }
      legend(p, items, null, [p.x1 + 12, p.y0]);
    };
  }

  // ------------------------------------------------------------------------------- wiring

  var WIDGETS = { alibi: alibiWidget, gates: gatesWidget, recall: recallWidget };

  function init(id) {
    var root = document.getElementById(id);
    if (!root || root.getAttribute("data-rendered") === "1") return;
    var data = JSON.parse(root.querySelector('script[data-role="payload"]').textContent);
    var ui = {}, out = {};
    Array.prototype.forEach.call(root.querySelectorAll("[data-key]"), function (e) {
      ui[e.getAttribute("data-key")] = e;
    });
    Array.prototype.forEach.call(root.querySelectorAll("[data-out]"), function (e) {
      out[e.getAttribute("data-out")] = e;
    });
    var ctx = { root: root, id: id, data: data, ui: ui, out: out, chart: root.querySelector('[data-role="chart"]') };
    var draw = WIDGETS[root.getAttribute("data-widget")](ctx);
    var redraw = function () {
      try {
        draw();
      } catch (err) {
        ctx.chart.textContent = "This chart failed to draw: " + err.message;
        throw err;
      }
    };
    Object.keys(ui).forEach(function (k) {
      ui[k].addEventListener("input", redraw);
      if (ui[k].type === "checkbox" || ui[k].tagName === "SELECT") ui[k].addEventListener("change", redraw);
    });
    redraw();
    root.setAttribute("data-rendered", "1");
  }

  window.linattnStatic = { version: VERSION, init: init };
})();
