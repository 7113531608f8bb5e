// mlcycle HTML report: renders the label table embedded as JSON in #report-data.
// Safety rule: data is only ever written with textContent / setAttribute, never as HTML.
// State lives in the URL hash, e.g. #filter=class:circle&filter=eval:fp&sort=hard_score&page=2&thr=model:0.4
// and the page mirrors what it shows into data-* attributes (for tests and scripts).
// Score thresholds: a prediction below its source's threshold is hidden; a ground truth
// is found when the prediction the evaluation matched to it is shown (greedy matching in
// score order makes this exact: docs/report.md). Default: each source's best-F1 point.
"use strict";
(function () {
  const t0 = performance.now();
  const D = JSON.parse(document.getElementById("report-data").textContent);
  const S = D.samples, R = D.rows, N = S.id.length;
  // text columns with repeated values come as {values, codes}
  for (const c in R) {
    const v = R[c];
    if (v && !Array.isArray(v) && Array.isArray(v.codes)) R[c] = v.codes.map((i) => (i === null ? null : v.values[i]));
  }
  const NROWS = R.source ? R.source.length : 0;
  const PAGE = 48, CARD_W = 300, CARD_H = 225, NULL = "\u0000null", LEGEND_SHOWN = 24;
  const SVGNS = "http://www.w3.org/2000/svg";
  // 80 colours for the classes, most frequent first: 20 familiar ones (Tableau's), then 60
  // chosen greedily to be as far as possible in CIELAB from all before them (lightness
  // 30..78; any two differ by delta-E >= 13.6); beyond 80, golden-angle hues
  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#76b7b2", "#edc948",
                   "#9c755f", "#ff9da7", "#17becf", "#bcbd22", "#7f7f7f", "#e377c2", "#1f3a93",
                   "#8c564b", "#2ca02c", "#ff7f0e", "#6a3d9a", "#b15928", "#a6cee3",
                   "#0000ff", "#ff1eff", "#2d5aff", "#ff0087", "#ff001e", "#5a5a00", "#0f5a3c", "#7896ff", "#b400a5", "#96004b",
                   "#c3c387", "#00d200", "#c378ff", "#8700d2", "#00d2a5", "#a50000", "#00b4ff", "#f0a578", "#5a3c69", "#005a00",
                   "#87d22d", "#a5780f", "#b4b4f0", "#ff0f5a", "#2d4b5a", "#4b4b2d", "#d2b4b4", "#698700", "#ff69f0", "#ff6996",
                   "#78875a", "#ff00b4", "#00d278", "#0f9678", "#4b2db4", "#e1a5ff", "#961e78", "#ff784b", "#2d7878", "#a5c35a",
                   "#962d2d", "#6969b4", "#0078ff", "#693c0f", "#873c5a", "#87c396", "#004b87", "#f04b00", "#3c2df0", "#c33ce1",
                   "#a5874b", "#a569b4", "#c30f4b", "#780f96", "#d22d87", "#c300ff", "#d27869", "#f03c3c", "#3cd24b", "#c35a87"];
  const ALIAS = {"class": "label"};
  const col = (name) => R[name] || [];
  const GT = "gt";
  const SOURCES = D.sources || [];
  const OP = D.operating || {};
  // (ground truth row -> prediction row) per source
  const MATCH = {};
  for (const src of SOURCES) {  // absent without label_id/eval_id: the stored eval is used as it is
    const pairs = (D.matches || {})[src];
    if (pairs) { MATCH[src] = new Map(); for (const [g, p] of pairs) MATCH[src].set(g, p); }
  }
  const scored = (src) => { const sc = R.score; if (!sc) return false; for (let r = 0; r < NROWS; r++) if (R.source[r] === src && sc[r] !== null) return true; return false; };
  const SLIDERS = SOURCES.filter(scored);

  // ------------------------------------------------------------------ helpers
  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const k in attrs || {}) if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs || {}) if (attrs[k] !== undefined && attrs[k] !== null) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(3);
    if (Array.isArray(v)) return v.map(fmt).join(", ");
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }
  const key = (v) => (v === null || v === undefined ? NULL : String(v));
  const classes = D.classes.map((c) => c.name);
  const colorOf = {};
  classes.forEach((c, i) => {
    const j = i - PALETTE.length;
    colorOf[c] = j < 0 ? PALETTE[i] : "hsl(" + Math.round((j * 137.508 + 20) % 360) + "," + [70, 55, 85][j % 3] + "%," + [42, 58, 32][Math.floor(j / 3) % 3] + "%)";
  });
  const color = (c) => colorOf[c] || "#888";

  // ------------------------------------------------------------------ state (URL hash)
  function readState() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ""));
    const filters = {};
    for (const f of p.getAll("filter")) {
      const i = f.indexOf(":");
      if (i > 0) filters[ALIAS[f.slice(0, i)] || f.slice(0, i)] = f.slice(i + 1);
    }
    const thr = {};
    for (const src of SLIDERS) thr[src] = defaultThr(src);
    for (const f of p.getAll("thr")) {
      const i = f.lastIndexOf(":"), v = parseFloat(f.slice(i + 1));
      if (i > 0 && Object.prototype.hasOwnProperty.call(thr, f.slice(0, i)) && isFinite(v)) thr[f.slice(0, i)] = v;
    }
    return {
      view: p.get("view") || "samples", filters: filters, q: p.get("q") || "",
      sort: p.get("sort") || "", desc: p.get("desc"), page: Math.max(1, parseInt(p.get("page") || "1", 10) || 1),
      sample: p.get("sample"), thr: thr, msrc: p.get("msrc"),
    };
  }
  function defaultThr(src) { const o = OP[src]; return o && o.threshold !== null && o.threshold !== undefined ? o.threshold : 0; }
  function writeState(st) {
    const p = new URLSearchParams();
    if (st.view !== "samples") p.set("view", st.view);
    for (const c in st.filters) p.append("filter", c + ":" + st.filters[c]);
    if (st.q) p.set("q", st.q);
    if (st.sort) p.set("sort", st.sort);
    if (st.desc !== null && st.desc !== undefined) p.set("desc", st.desc);
    if (st.page > 1) p.set("page", String(st.page));
    if (st.sample !== null && st.sample !== undefined) p.set("sample", st.sample);
    if (st.msrc) p.set("msrc", st.msrc);
    for (const src in st.thr || {}) if (st.thr[src] !== defaultThr(src)) p.append("thr", src + ":" + st.thr[src]);
    const h = "#" + p.toString();
    if (location.hash !== h) location.hash = h; else render();
  }
  let state = readState();

  // ------------------------------------------------------------------ filtering and sorting
  // ------------------------------------------------------------------ thresholds and statuses
  const isGt = (r) => R.source[r] === GT;
  function shown(r) {  // a prediction at or above its source's threshold (ground truth: always)
    if (isGt(r)) return true;
    const t = state.thr[R.source[r]], sc = R.score ? R.score[r] : null;
    return t === undefined || sc === null || sc === undefined || sc >= t;
  }
  // the sources drawn side by side: the source filter's, else every prediction source
  function panels() {
    const f = state.filters.source;
    if (f !== undefined && SOURCES.indexOf(f) >= 0) return [f];
    return SOURCES.length ? SOURCES.slice() : [null];
  }
  // the status of row r at the thresholds, seen against prediction source src
  function status(r, src) {
    const ev = R.eval ? R.eval[r] : null;
    if (ev === null || ev === undefined) return null;
    if (!isGt(r) || !src || !MATCH[src] || !(ev === "tp" || ev === "fn")) return ev;
    const m = MATCH[src].get(r);
    return m !== undefined && shown(m) ? "tp" : "fn";
  }
  function statusAny(r) {  // a ground truth missed by any source shown is fn
    if (!isGt(r)) return status(r, R.source[r]);
    let st = null;
    for (const src of panels()) { const x = status(r, src); if (x === "fn") return "fn"; if (x) st = x; }
    return st;
  }
  function rowMatches(r, filters) {
    if (!shown(r)) return false;
    for (const c in filters) {
      const v = c === "eval" ? statusAny(r) : col(c)[r], want = filters[c];
      if (Array.isArray(v)) { if (!v.some((x) => key(x) === want)) return false; }
      else if (key(v) !== want) return false;
    }
    return true;
  }
  function visibleSamples(st) {
    const active = Object.keys(st.filters).length > 0, q = st.q.toLowerCase(), out = [];
    for (let s = 0; s < N; s++) {
      if (q && S.id[s].toLowerCase().indexOf(q) < 0) continue;
      let ok = !active;
      for (let r = S.start[s]; !ok && r < S.end[s]; r++) ok = rowMatches(r, st.filters);
      if (ok) out.push(s);
    }
    return sortSamples(out, st);
  }
  let sortKeys = {}, keysFor = "";
  // errors at the thresholds: a false positive shown counts its score, a missed ground truth 1
  function errorKey(s) {
    let k = 0;
    for (let r = S.start[s]; r < S.end[s]; r++) {
      if (isGt(r)) { for (const src of panels()) if (src && status(r, src) === "fn") k += 1; }
      else if (shown(r) && status(r, R.source[r]) === "fp" && panels().indexOf(R.source[r]) >= 0)
        k += (R.score && R.score[r] !== null) ? R.score[r] : 1;
    }
    return k;
  }
  function sampleKey(name) {
    const now = JSON.stringify(state.thr) + "|" + panels().join("\u0000");
    if (now !== keysFor) { sortKeys = {}; keysFor = now; }
    if (sortKeys[name]) return sortKeys[name];
    if (name === "errors") { const k = new Array(N); for (let s = 0; s < N; s++) k[s] = errorKey(s); return (sortKeys[name] = k); }
    const k = new Array(N).fill(null);
    for (let s = 0; s < N; s++) {
      if (name === "sample_id") { k[s] = S.id[s]; continue; }
      for (let r = S.start[s]; r < S.end[s]; r++) {
        let v;
        if (name === "labels") v = R.label && R.label[r] !== null ? 1 : 0;
        else v = col(name)[r];
        if (v === null || v === undefined) continue;
        if (name === "labels") k[s] = (k[s] || 0) + v;
        else if (typeof v === "number") k[s] = k[s] === null ? v : Math.max(k[s], v);
        else if (k[s] === null || String(v) < k[s]) k[s] = String(v);
      }
    }
    return (sortKeys[name] = k);
  }
  function sortSamples(list, st) {
    if (!st.sort && !(D.sort.by === "errors" && thrMoved())) return list;  // the report's own order (export --sort-by)
    if (!st.sort) st = Object.assign({}, st, {sort: "errors"});
    const k = sampleKey(st.sort), desc = st.desc === null ? defaultDesc(st.sort) : st.desc === "1";
    return list.slice().sort((a, b) => {
      const x = k[a], y = k[b];
      if (x === y) return a - b;
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * (desc ? -1 : 1);
    });
  }
  function thrMoved() { for (const src in state.thr) if (state.thr[src] !== defaultThr(src)) return true; return false; }
  const defaultDesc = (name) => name !== "sample_id" && (name === "errors" || name === "labels" || D.numeric.indexOf(name) >= 0);

  // ------------------------------------------------------------------ drawing one sample
  function drawSample(s, width, height, withTags, full, panel) {
    const W = S.w[s] || guessSize(s)[0], H = S.h[s] || guessSize(s)[1];
    const scale = Math.max(W / width, H / height);
    const root = svg("svg", {viewBox: "0 0 " + W + " " + H, class: "view", preserveAspectRatio: "xMidYMid meet",
                              width: Math.round(W / scale), height: Math.round(H / scale)});
    const src = (full && S.full[s]) || S.img[s];
    if (src) {
      const im = svg("image", {href: src, x: 0, y: 0, width: W, height: H, preserveAspectRatio: "none"});
      if (full && S.full[s] && S.img[s]) im.addEventListener("error", () => im.setAttribute("href", S.img[s]), {once: true});
      else im.addEventListener("error", () => {  // a thumbnail that did not load (report moved?)
        root.setAttribute("data-broken", "1");
        im.replaceWith(svg("rect", {class: "missing", x: 0, y: 0, width: W, height: H}));
      }, {once: true});
      root.appendChild(im);
    } else {
      root.appendChild(svg("rect", {class: "missing", x: 0, y: 0, width: W, height: H}));
      const t = svg("text", {class: "missing-text", x: W / 2, y: H / 2, "font-size": 12 * scale, "text-anchor": "middle"}, "image not found");
      root.appendChild(t);
    }
    const boxes = svg("g", {class: "boxes"}), tags = svg("g", {class: "tags"}), alerts = svg("g", {class: "tags"});
    for (let r = S.start[s]; r < S.end[s]; r++) {
      const b = R.bbox ? R.bbox[r] : null;
      if (!b) continue;
      const src = R.source[r], gt = src === GT, lab = R.label ? R.label[r] : null;
      if (!gt && ((panel && src !== panel) || !shown(r))) continue;
      const st = status(r, gt ? panel : src);
      const g = svg("g", {class: "box " + (gt ? "gt" : "pred") + (st ? " st-" + st : ""), "data-row": r,
                          "data-label": key(lab), "data-source": src, "data-eval": st === null ? "" : st,
                          "data-label-id": R.label_id ? key(R.label_id[r]) : ""});
      if (st === "fp" || st === "fn") g.appendChild(svg("rect", {class: "halo", x: b[0], y: b[1], width: b[2], height: b[3]}));
      g.appendChild(svg("rect", {class: "outline", x: b[0], y: b[1], width: b[2], height: b[3], stroke: color(lab)}));
      // tags: everything in the detail view; predictions and missed ground truth in the grid
      if (withTags === "all" || (withTags && (!gt || st === "fn"))) {
        const fs = 11 * scale;
        let text = lab === null ? "?" : String(lab);
        if (!gt && R.score && R.score[r] !== null) text += " " + R.score[r].toFixed(2);
        if (st === "fp" || st === "fn") text += " " + st.toUpperCase();
        const ty = b[1] > fs * 1.4 ? b[1] - fs * 0.35 : b[1] + b[3] + fs * 1.05;
        const tw = (text.length * 0.6 + 0.6) * fs, tx = Math.max(0, Math.min(b[0], W - tw));  // keep it inside
        // tags go in layers above all boxes; errors on top so they are never hidden
        const t = svg("g", {class: "tag-group" + (st ? " st-" + st : ""), "data-row": r});
        t.appendChild(svg("rect", {class: "tag-bg", x: tx, y: ty - fs, height: fs * 1.3, width: tw, fill: color(lab)}));
        t.appendChild(svg("text", {class: "tag", x: tx + fs * 0.3, y: ty, "font-size": fs}, text));
        (st === "fp" || st === "fn" ? alerts : tags).appendChild(t);
      }
      const tip = svg("title", {}, (gt ? "ground truth " : "prediction (" + src + ") ") + fmt(lab) +
                      (st ? " — " + st : "") + (!gt && R.score && R.score[r] !== null ? " — score " + fmt(R.score[r]) : ""));
      g.appendChild(tip);
      boxes.appendChild(g);
    }
    root.appendChild(boxes);
    root.appendChild(tags);
    root.appendChild(alerts);
    return root;
  }
  function guessSize(s) {
    let w = 1, h = 1;
    for (let r = S.start[s]; r < S.end[s]; r++) {
      const b = R.bbox ? R.bbox[r] : null;
      if (b) { w = Math.max(w, b[0] + b[2]); h = Math.max(h, b[1] + b[3]); }
    }
    return [Math.ceil(w), Math.ceil(h)];
  }
  function counts(s, panel) {
    const c = {gt: 0, pred: 0, tp: 0, fp: 0, fn: 0};
    for (let r = S.start[s]; r < S.end[s]; r++) {
      if (!R.label || R.label[r] === null) { if (!(R.bbox && R.bbox[r])) continue; }
      const gt = isGt(r);
      if (!gt && ((panel && R.source[r] !== panel) || !shown(r))) continue;
      if (gt) c.gt++; else c.pred++;
      const st = status(r, gt ? panel : R.source[r]);
      if (st && c[st] !== undefined && (st !== "tp" || !gt)) c[st]++;
    }
    return c;
  }
  function countText(n) {
    const parts = [n.gt + " gt"];
    if (n.pred) parts.push(n.pred + " pred");
    if (R.eval) for (const k of ["tp", "fp", "fn"]) if (n[k]) parts.push(n[k] + " " + k);
    return parts;
  }
  // one panel per prediction source (ground truth in each): two models side by side
  function drawPanels(s, width, height, withTags, full) {
    const ps = panels(), box = el("div", {class: "panels" + (ps.length > 1 ? " multi" : "")});
    for (const src of ps) {
      const p = el("div", {class: "panel-src", "data-source": src === null ? "" : src});
      p.appendChild(drawSample(s, (width - 8 * (ps.length - 1)) / ps.length, height, withTags, full, src));
      if (ps.length > 1) {
        const cap = el("div", {class: "panel-cap"});
        cap.appendChild(el("strong", {}, src));
        cap.appendChild(document.createTextNode(" " + countText(counts(s, src)).slice(1).join(" · ")));
        p.appendChild(cap);
      }
      box.appendChild(p);
    }
    return box;
  }

  // ------------------------------------------------------------------ the grid
  function card(s) {
    const c = el("div", {class: "card", "data-sample-id": S.id[s], "data-index": s, tabindex: 0});
    const frame = el("div", {class: "frame"});
    frame.appendChild(drawPanels(s, panels().length > 1 ? 2 * CARD_W : CARD_W, CARD_H, true, false));
    c.appendChild(frame);
    const cap = el("div", {class: "caption"});
    cap.appendChild(el("div", {class: "sid", title: S.id[s]}, S.id[s]));
    if (!S.img[s]) cap.appendChild(el("div", {class: "path", title: S.path[s]}, S.path[s]));
    const badges = el("div", {class: "badges"}), ps = panels(), n = counts(s, ps.length === 1 ? ps[0] : null);
    badges.appendChild(el("span", {class: "badge"}, n.gt + " gt"));
    if (ps.length === 1) {
      if (n.pred) badges.appendChild(el("span", {class: "badge"}, n.pred + " pred"));
      if (R.eval) for (const k of ["tp", "fp", "fn"]) if (n[k]) badges.appendChild(el("span", {class: "badge st-" + k}, n[k] + " " + k));
    }
    const split = firstValue(s, "split");
    if (split !== null) badges.appendChild(el("span", {class: "badge muted"}, split));
    for (const k of ["hard_sample_score", "hard_score"]) {
      if (R[k]) { const v = sampleKey(k)[s]; if (v !== null) { badges.appendChild(el("span", {class: "badge hard"}, "hard " + v.toFixed(2))); break; } }
    }
    cap.appendChild(badges);
    const chips = imageLabels(s);
    if (chips) cap.appendChild(chips);
    c.appendChild(cap);
    c.addEventListener("click", () => openSample(s));
    c.addEventListener("keydown", (e) => { if (e.key === "Enter") openSample(s); });
    return c;
  }
  // image-level labels (a class, no box: classification) as chips under the image
  function imageLabels(s) {
    let box = null;
    for (let r = S.start[s]; r < S.end[s]; r++) {
      if (!R.label || R.label[r] === null || (R.bbox && R.bbox[r]) || !shown(r)) continue;
      const gt = R.source[r] === GT, st = gt ? statusAny(r) : status(r, R.source[r]);
      box = box || el("div", {class: "chips"});
      const chip = el("span", {class: "chip " + (gt ? "gt" : "pred") + (st ? " st-" + st : ""), "data-row": r,
                               "data-label": key(R.label[r]), "data-source": R.source[r], "data-eval": st === null ? "" : st});
      const sw = el("span", {class: "swatch"}); sw.style.background = color(R.label[r]);
      chip.appendChild(sw);
      let text = (gt ? "" : R.source[r] + ": ") + R.label[r];
      if (!gt && R.score && R.score[r] !== null) text += " " + R.score[r].toFixed(2);
      if (st) text += " " + st.toUpperCase();
      chip.appendChild(document.createTextNode(text));
      box.appendChild(chip);
    }
    return box;
  }
  function firstValue(s, name) {
    for (let r = S.start[s]; r < S.end[s]; r++) if (R[name] && R[name][r] !== null && R[name][r] !== undefined) return R[name][r];
    return null;
  }
  function openSample(s) { state.sample = S.id[s]; writeState(state); }

  function valuesOf(c) {
    const seen = new Map();
    for (const v of col(c)) for (const x of (Array.isArray(v) ? v : [v])) seen.set(key(x), (seen.get(key(x)) || 0) + 1);
    return Array.from(seen.keys()).sort((a, b) => (a === NULL) - (b === NULL) || (a < b ? -1 : a > b ? 1 : 0));
  }
  function buildFilters() {
    const bar = document.getElementById("filters");
    bar.textContent = "";
    const search = el("input", {type: "search", id: "q", placeholder: "sample id contains…", value: state.q});
    search.addEventListener("change", () => { state.q = search.value; state.page = 1; writeState(state); });
    bar.appendChild(labelled("search", search));
    for (const c of D.filters) {
      const sel = el("select", {"data-column": c, id: "filter-" + c});
      sel.appendChild(el("option", {value: ""}, "all"));
      for (const v of valuesOf(c)) sel.appendChild(el("option", {value: v}, v === NULL ? "(none)" : v));
      sel.value = state.filters[c] !== undefined ? state.filters[c] : "";
      sel.addEventListener("change", () => {
        if (sel.value === "") delete state.filters[c]; else state.filters[c] = sel.value;
        state.page = 1; writeState(state);
      });
      bar.appendChild(labelled(c === "label" ? "class" : c, sel));
    }
    const sort = el("select", {id: "sort"});
    const opts = [["", "report order (" + D.sort.by + ")"], ["sample_id", "sample id"], ["labels", "number of labels"]];
    if (R.eval) opts.push(["errors", "errors (fp + fn)"]);
    for (const c of D.numeric) opts.push([c, c]);
    for (const [v, t] of opts) sort.appendChild(el("option", {value: v}, t));
    sort.value = state.sort;
    sort.addEventListener("change", () => { state.sort = sort.value; state.desc = null; state.page = 1; writeState(state); });
    bar.appendChild(labelled("sort", sort));
    const dir = el("button", {type: "button", id: "sort-dir", title: "reverse the order"}, "⇅");
    dir.addEventListener("click", () => {
      const cur = state.desc === null ? defaultDesc(state.sort || D.sort.by) : state.desc === "1";
      if (!state.sort) state.sort = D.sort.by;
      state.desc = cur ? "0" : "1"; writeState(state);
    });
    bar.appendChild(dir);
    const reset = el("button", {type: "button", id: "reset"}, "reset");
    reset.addEventListener("click", () => {
      const thr = {}; for (const src of SLIDERS) thr[src] = defaultThr(src);
      state = {view: "samples", filters: {}, q: "", sort: "", desc: null, page: 1, sample: null, thr: thr}; writeState(state);
    });
    bar.appendChild(reset);
    // one score threshold per prediction source: boxes below it are hidden
    const sliders = el("div", {class: "bar sliders", id: "sliders"});
    SLIDERS.forEach((src, i) => {
      const o = OP[src] || {};
      const range = el("input", {type: "range", min: 0, max: 1, step: 0.01, id: "thr-" + i, "data-source": src,
                                 value: state.thr[src], "aria-label": "score threshold of " + src});
      const out = el("output", {id: "thr-value-" + i, class: "thr-value"}, fmtThr(state.thr[src]));
      range.addEventListener("input", () => { out.textContent = fmtThr(parseFloat(range.value)); });
      range.addEventListener("change", () => { state.thr[src] = parseFloat(range.value); state.page = 1; writeState(state); });
      const best = el("button", {type: "button", class: "thr-best", id: "thr-best-" + i,
                                 title: "back to the best-F1 threshold"}, "best F1");
      best.disabled = o.threshold === null || o.threshold === undefined;
      best.addEventListener("click", () => { state.thr[src] = defaultThr(src); writeState(state); });
      const f = el("label", {class: "field slider"});
      f.appendChild(el("span", {}, "score ≥ (" + src + ")"));
      const row = el("span", {class: "slider-row"});
      row.appendChild(range); row.appendChild(out); row.appendChild(best);
      f.appendChild(row);
      sliders.appendChild(f);
    });
    const note = el("div", {class: "operating muted", id: "operating"});
    const parts = [];
    for (const src of SOURCES) {
      const o = OP[src];
      if (!o) continue;
      if (o.threshold === null || o.threshold === undefined)
        parts.push(src + ": " + (o.scored ? "no threshold reaches F1 > 0" : "no scores") + " (every prediction shown)");
      else parts.push(src + ": best F1 " + o.f1.toFixed(3) + " at score ≥ " + fmtThr(o.threshold) + " (precision " +
                      o.precision.toFixed(3) + ", recall " + (o.recall === null ? "n/a" : o.recall.toFixed(3)) + ", " +
                      o.tp + " tp, " + o.fp + " fp, " + o.fn + " fn)");
    }
    if (SLIDERS.length) {
      note.appendChild(el("span", {}, "Predictions below the score threshold are hidden and ground truth they matched counts as missed. " +
        "Default threshold: each model's best-F1 point over all " + D.limit.total + " samples at the evaluation's IoU — "));
      note.appendChild(el("span", {id: "operating-points"}, parts.join("; ")));
      sliders.appendChild(note);
      bar.parentNode.insertBefore(sliders, bar.nextSibling);
    }
    if (D.limit && D.limit.shown < D.limit.total) {
      const lim = el("div", {class: "note", id: "limit-note"},
        "This report holds " + D.limit.shown + " of " + D.limit.total + " samples: the first in report order (" + D.sort.by +
        ")" + (D.limit["default"] ? ", the default limit" : "") + ". Filters, sorting and counts cover these samples only. " +
        "Export again with --limit N for more (--limit 0: every sample; the page grows with it).");
      bar.parentNode.insertBefore(lim, bar);
    }
  }
  function fmtThr(t) { return Number.isInteger(Math.round(t * 1e6) / 1e4) ? t.toFixed(2) : String(+t.toFixed(4)); }
  function labelled(text, input) {
    const l = el("label", {class: "field"});
    l.appendChild(el("span", {}, text));
    l.appendChild(input);
    return l;
  }
  let legendOpen = false;
  function buildLegend() {
    const lg = document.getElementById("legend");
    lg.textContent = "";
    // classes by number of labels; a click filters on the class; long lists fold
    D.classes.forEach((c, i) => {
      const item = el("button", {type: "button", class: "item class-key" + (i >= LEGEND_SHOWN && !legendOpen ? " folded" : ""),
                                 "data-label": c.name, title: c.gt + " ground truth, " + c.pred + " predictions — click to filter"});
      const sw = el("span", {class: "swatch"});
      sw.style.background = color(c.name);
      item.appendChild(sw);
      item.appendChild(document.createTextNode(c.name));
      item.appendChild(el("span", {class: "count"}, String(c.gt + c.pred)));
      item.addEventListener("click", () => {
        if (state.filters.label === c.name) delete state.filters.label; else state.filters.label = c.name;
        state.page = 1; writeState(state);
      });
      lg.appendChild(item);
    });
    if (D.classes.length > LEGEND_SHOWN) {
      const more = el("button", {type: "button", id: "legend-more", class: "item"},
                      legendOpen ? "fewer classes" : "all " + D.classes.length + " classes");
      more.addEventListener("click", () => { legendOpen = !legendOpen; buildLegend(); });
      lg.appendChild(more);
    }
    lg.appendChild(el("span", {class: "item key-gt"}, "ground truth"));
    lg.appendChild(el("span", {class: "item key-pred"}, "prediction (score)"));
    for (const b of lg.querySelectorAll(".class-key")) b.classList.toggle("active", b.getAttribute("data-label") === state.filters.label);
    if (R.eval) {
      lg.appendChild(el("span", {class: "item key-fp"}, "FP: false positive"));
      lg.appendChild(el("span", {class: "item key-fn"}, "FN: missed"));
    }
  }

  function renderGrid() {
    const list = visibleSamples(state), pages = Math.max(1, Math.ceil(list.length / PAGE));
    const page = Math.min(state.page, pages), grid = document.getElementById("grid");
    grid.textContent = "";
    grid.classList.toggle("multi", panels().length > 1);
    const slice = list.slice((page - 1) * PAGE, page * PAGE);
    for (const s of slice) grid.appendChild(card(s));
    if (!slice.length) grid.appendChild(el("p", {class: "empty"}, "No sample matches these filters."));
    const pager = document.getElementById("pager");
    pager.textContent = "";
    const prev = el("button", {type: "button", id: "prev"}, "‹ previous"), next = el("button", {type: "button", id: "next"}, "next ›");
    prev.disabled = page <= 1; next.disabled = page >= pages;
    prev.addEventListener("click", () => { state.page = page - 1; writeState(state); window.scrollTo(0, 0); });
    next.addEventListener("click", () => { state.page = page + 1; writeState(state); window.scrollTo(0, 0); });
    pager.appendChild(prev);
    pager.appendChild(el("span", {}, "page " + page + " of " + pages + " · " + list.length + " of " + N + " samples"));
    pager.appendChild(next);
    document.getElementById("summary").textContent = list.length + " of " + N + " samples";
    const b = document.body.dataset;
    b.shown = String(list.length); b.total = String(N); b.page = String(page); b.pages = String(pages);
    b.filters = JSON.stringify(state.filters);
    b.thresholds = JSON.stringify(state.thr);
    b.panels = JSON.stringify(panels());
  }

  // ------------------------------------------------------------------ detail view
  function renderDetail() {
    const box = document.getElementById("detail");
    const s = state.sample === null ? -1 : S.id.indexOf(state.sample);
    box.textContent = "";
    if (s < 0) { box.hidden = true; document.body.dataset.detail = ""; return; }
    box.hidden = false;
    document.body.dataset.detail = S.id[s];
    const panel = el("div", {class: "panel" + (panels().length > 1 ? " wide" : ""), role: "dialog", "aria-label": "sample " + S.id[s]});
    const head = el("div", {class: "panel-head"});
    head.appendChild(el("h2", {}, S.id[s]));
    for (const [id, text, d] of [["detail-prev", "‹", -1], ["detail-next", "›", 1]]) {
      const b = el("button", {type: "button", id: id, title: d < 0 ? "previous sample (←)" : "next sample (→)"}, text);
      b.addEventListener("click", () => step(d));
      head.appendChild(b);
    }
    const close = el("button", {type: "button", id: "close", title: "close (Esc)"}, "×");
    close.addEventListener("click", closeDetail);
    head.appendChild(close);
    panel.appendChild(head);
    const info = el("p", {class: "muted"});
    info.textContent = [(S.w[s] && S.h[s]) ? S.w[s] + "×" + S.h[s] + " px" : "size unknown",
                        firstValue(s, "split"), S.path[s]].filter((x) => x).join(" · ");
    panel.appendChild(info);
    const body = el("div", {class: "panel-body"});
    const pic = el("div", {class: "big"});
    const W = Math.min(panels().length > 1 ? 1400 : 900, window.innerWidth - 80);
    pic.appendChild(drawPanels(s, W, Math.max(300, window.innerHeight * 0.55), "all", true));
    if (!S.img[s]) pic.appendChild(el("p", {class: "path"}, "image not found: " + S.path[s]));
    const chips = imageLabels(s);
    if (chips) pic.appendChild(chips);
    body.appendChild(pic);
    body.appendChild(labelTable(s, pic));
    panel.appendChild(body);
    box.appendChild(panel);
  }
  function labelTable(s, pic) {
    const first = ["source", "label", "score", "eval", "eval_iou", "hard_score", "hard_reason", "bbox", "label_id"];
    const cols = first.filter((c) => D.columns.indexOf(c) >= 0)
      .concat(D.columns.filter((c) => c !== "sample_id" && first.indexOf(c) < 0));
    const t = el("table", {class: "labels"}), tr = el("tr");
    for (const c of cols) tr.appendChild(el("th", {}, c));
    const thead = el("thead"); thead.appendChild(tr); t.appendChild(thead);
    const tb = el("tbody");
    for (let r = S.start[s]; r < S.end[s]; r++) {
      const st = statusAny(r);
      const row = el("tr", {"data-row": r, class: (st ? "st-" + st : "") + (shown(r) ? "" : " below"),
                            title: shown(r) ? null : "below the score threshold: hidden"});
      for (const c of cols) {
        const td = el("td", {}, fmt(col(c)[r]));
        if (c === "label" && R.label[r] !== null) {
          const sw = el("span", {class: "swatch"}); sw.style.background = color(R.label[r]);
          td.insertBefore(sw, td.firstChild);
        }
        row.appendChild(td);
      }
      row.addEventListener("mouseenter", () => highlight(pic, r, true));
      row.addEventListener("mouseleave", () => highlight(pic, r, false));
      tb.appendChild(row);
    }
    t.appendChild(tb);
    const wrap = el("div", {class: "table-wrap"}); wrap.appendChild(t);
    return wrap;
  }
  function highlight(pic, r, on) {
    for (const g of pic.querySelectorAll("g.box")) if (g.getAttribute("data-row") === String(r)) g.classList.toggle("hl", on);
  }
  function closeDetail() { state.sample = null; writeState(state); }
  function step(delta) {  // the previous / next sample of the filtered, sorted list
    const list = visibleSamples(state), i = list.indexOf(S.id.indexOf(state.sample));
    const j = i + delta;
    if (i >= 0 && j >= 0 && j < list.length) { state.sample = S.id[list[j]]; state.page = Math.floor(j / PAGE) + 1; writeState(state); }
  }
  document.addEventListener("keydown", (e) => {
    if (state.sample === null) return;
    if (e.key === "Escape") closeDetail();
    else if (e.key === "ArrowLeft") step(-1);
    else if (e.key === "ArrowRight") step(1);
  });
  document.getElementById("detail").addEventListener("click", (e) => { if (e.target.id === "detail") closeDetail(); });

  // ------------------------------------------------------------------ metrics page
  function renderMetrics() {
    const M = D.metrics, v = document.getElementById("metrics-view");
    v.textContent = "";
    if (!M) { v.appendChild(el("p", {class: "empty"}, "No metrics in this report: export with --metrics metrics.json (from mlcycle evaluate --metrics).")); return; }
    // evaluate with several prediction sources: {sources: {name: document}, comparison: {...}}
    if (M.sources && typeof M.sources === "object" && !Array.isArray(M.sources) && !M.metrics) {
      const names = Object.keys(M.sources), C = M.comparison || {};
      const pick = names.indexOf(state.msrc) >= 0 ? state.msrc : names[0];
      if (C.metrics && typeof C.metrics === "object") {
        const rows = names.map((n) => Object.assign({source: n + (n === C.baseline ? " (baseline)" : "")}, C.metrics[n] || {}));
        if (C.deltas) for (const n in C.deltas) rows.push(Object.assign({source: "  Δ " + n + " − " + C.baseline}, C.deltas[n]));
        section(v, "Models compared", objectTable(rows, "comparison"));
      }
      const tabs = el("div", {class: "source-tabs", id: "metric-sources"});
      for (const n of names) {
        const b = el("button", {type: "button", class: n === pick ? "active" : "", "data-source": n}, n);
        b.addEventListener("click", () => { state.msrc = n; writeState(state); });
        tabs.appendChild(b);
      }
      section(v, "One model", tabs);
      document.body.dataset.metricsSource = pick;
      if (M.sources[pick]) renderDoc(v, M.sources[pick]);
      return;
    }
    renderDoc(v, M);
  }
  function renderDoc(v, M) {
    const p = M.params || {};
    v.appendChild(el("p", {class: "muted"}, ["method " + fmt(M.method || "?"), p.gt_source ? "ground truth " + p.gt_source : null,
      p.pred_source ? "predictions " + p.pred_source : null, M.iou_type ? "iou type " + M.iou_type : null].filter((x) => x).join(" · ")));
    const cards = el("div", {class: "tiles", id: "metric-summary"});
    const tile = (k, val) => { const t = el("div", {class: "tile", "data-key": k}); t.appendChild(el("div", {class: "value"}, fmt(val))); t.appendChild(el("div", {class: "key"}, k)); cards.appendChild(t); };
    // every document of evaluate (coco, voc, classification) and older or hand-made ones:
    // each part is drawn only when its keys are there
    const shown = {};
    const numbers = (obj, prefix) => {
      if (!obj || typeof obj !== "object") return;
      for (const k in obj) if ((typeof obj[k] === "number" || obj[k] === null) && !shown[prefix + k]) { shown[prefix + k] = 1; tile(prefix + k, obj[k]); }
    };
    numbers(M.metrics, "");
    if (typeof M.accuracy === "number") numbers({accuracy: M.accuracy}, "");
    if (M.at_iou) for (const k of ["precision", "recall", "f1", "tp", "fp", "fn"]) if (k in M.at_iou) tile(k + " @" + fmt(M.at_iou.iou), M.at_iou[k]);
    for (const avg of ["macro", "micro", "weighted"]) numbers(M[avg], avg + " ");
    numbers(M.top_k_accuracy, "top-");
    if (cards.childNodes.length) section(v, "Summary", cards);
    let perClass = M.per_class;
    if (perClass && !Array.isArray(perClass) && typeof perClass === "object")  // {class: {...}} (voc, classification)
      perClass = Object.keys(perClass).map((k) => Object.assign({label: k}, perClass[k]));
    if (Array.isArray(perClass) && perClass.length) section(v, "Per class", objectTable(perClass, "per-class"));
    let pr = M.pr_curves;
    if (!(pr && Array.isArray(pr.curves)) && Array.isArray(perClass)) {  // voc: a curve in each class's row
      const iou = M.iou !== undefined ? M.iou : (M.params || {}).iou;
      pr = {curves: perClass.filter((r) => Array.isArray(r.precision) && Array.isArray(r.recall))
                             .map((r) => ({label: r.label, iou: iou, precision: r.precision, recall: r.recall}))};
    }
    if (pr && Array.isArray(pr.curves) && pr.curves.length) section(v, "Precision–recall curves", prCharts(pr));
    const cm = M.confusion_matrix;
    if (cm && Array.isArray(cm.matrix)) section(v, "Confusion matrix", confusion(cm));
  }
  function section(parent, title, content) {
    const s = el("section", {class: "block"});
    s.appendChild(el("h2", {}, title));
    s.appendChild(content);
    parent.appendChild(s);
  }
  function objectTable(rows, id) {
    const cols = [];
    for (const r of rows) for (const k in r) if (cols.indexOf(k) < 0 && (typeof r[k] !== "object" || r[k] === null)) cols.push(k);
    const t = el("table", {class: "labels", id: id}), head = el("tr");
    for (const c of cols) head.appendChild(el("th", {}, c));
    const thead = el("thead"); thead.appendChild(head); t.appendChild(thead);
    const tb = el("tbody");
    for (const r of rows) {
      const tr = el("tr");
      for (const c of cols) {
        const td = el("td", {}, fmt(r[c]));
        if (c === "label" && colorOf[r[c]]) { const sw = el("span", {class: "swatch"}); sw.style.background = color(r[c]); td.insertBefore(sw, td.firstChild); }
        tr.appendChild(td);
      }
      tb.appendChild(tr);
    }
    t.appendChild(tb);
    const wrap = el("div", {class: "table-wrap"}); wrap.appendChild(t);
    return wrap;
  }
  function prCharts(pr) {
    const wrap = el("div", {class: "charts"}), byIou = {};
    for (const c of pr.curves) (byIou[key(c.iou)] = byIou[key(c.iou)] || []).push(c);
    for (const iou in byIou) {
      const W = 360, H = 280, L = 42, B = 34, T = 14, Rm = 12, w = W - L - Rm, h = H - T - B;
      const g = svg("svg", {viewBox: "0 0 " + W + " " + H, class: "chart pr", "data-iou": iou, width: W, height: H});
      for (let i = 0; i <= 5; i++) {
        const x = L + w * i / 5, y = T + h - h * i / 5;
        g.appendChild(svg("line", {class: "grid-line", x1: L, x2: L + w, y1: y, y2: y}));
        g.appendChild(svg("line", {class: "grid-line", x1: x, x2: x, y1: T, y2: T + h}));
        g.appendChild(svg("text", {class: "axis", x: L - 6, y: y + 4, "text-anchor": "end"}, (i / 5).toFixed(1)));
        g.appendChild(svg("text", {class: "axis", x: x, y: T + h + 14, "text-anchor": "middle"}, (i / 5).toFixed(1)));
      }
      g.appendChild(svg("text", {class: "axis-title", x: L + w / 2, y: H - 4, "text-anchor": "middle"}, "recall"));
      g.appendChild(svg("text", {class: "axis-title", x: 11, y: T + h / 2, transform: "rotate(-90 11 " + (T + h / 2) + ")", "text-anchor": "middle"}, "precision"));
      for (const c of byIou[iou]) {
        const rec = pr.recall || c.recall || [], pts = [];
        (c.precision || []).forEach((p, i) => { if (p !== null && p >= 0 && rec[i] !== undefined) pts.push((L + w * rec[i]).toFixed(1) + "," + (T + h - h * p).toFixed(1)); });
        const line = svg("polyline", {class: "curve", points: pts.join(" "), stroke: color(c.label), "data-label": key(c.label)});
        line.appendChild(svg("title", {}, fmt(c.label)));
        g.appendChild(line);
      }
      const box = el("figure", {class: "chart-box"});
      box.appendChild(g);
      const cap = el("figcaption", {}, "IoU " + iou + " ");
      for (const c of byIou[iou]) {
        const it = el("span", {class: "item"}), sw = el("span", {class: "swatch"});
        sw.style.background = color(c.label); it.appendChild(sw); it.appendChild(document.createTextNode(fmt(c.label))); cap.appendChild(it);
      }
      box.appendChild(cap);
      wrap.appendChild(box);
    }
    return wrap;
  }
  function confusion(cm) {
    const rows = cm.labels || cm.rows || [], cols = cm.labels || cm.columns || [], m = cm.matrix;
    let max = 1;
    for (const r of m) for (const x of r) max = Math.max(max, x || 0);
    const compact = cols.length > 15;  // 80 classes: small cells, vertical headers, scrolls in its box
    const t = el("table", {class: "confusion" + (compact ? " compact" : ""), id: "confusion"}), head = el("tr");
    head.appendChild(el("th", {class: "corner"}, compact ? "truth ↓ predicted →" : "truth ↓ / predicted →"));
    for (const c of cols) { const th = el("th", {class: "col", title: fmt(c)}); th.appendChild(el("span", {}, c)); head.appendChild(th); }
    t.appendChild(head);
    m.forEach((r, i) => {
      const tr = el("tr");
      tr.appendChild(el("th", {class: "row"}, rows[i] !== undefined ? rows[i] : ""));
      r.forEach((x, j) => {
        const diag = rows[i] === cols[j] && rows[i] !== "(none)";
        const td = el("td", {class: diag ? "diag" : "", title: fmt(rows[i]) + " → " + fmt(cols[j]), "data-count": fmt(x)}, compact && !x ? "" : fmt(x));
        const a = (x || 0) / max;
        td.style.background = diag ? "rgba(46,157,79," + (0.12 + 0.6 * a).toFixed(3) + ")" : x ? "rgba(214,39,40," + (0.12 + 0.6 * a).toFixed(3) + ")" : "";
        tr.appendChild(td);
      });
      t.appendChild(tr);
    });
    const wrap = el("div", {class: "table-wrap" + (compact ? " confusion-wrap" : "")}); wrap.appendChild(t);
    if (cm.iou !== undefined) wrap.appendChild(el("p", {class: "muted"}, "class-agnostic matching at IoU " + fmt(cm.iou) + (cm.conf ? ", score ≥ " + fmt(cm.conf) : "") + "; (none) row: predictions on background, (none) column: missed ground truth"));
    return wrap;
  }

  // ------------------------------------------------------------------ main
  let built = false;
  function render() {
    state = readState();
    if (!built) { buildFilters(); buildLegend(); built = true; }
    else syncControls();
    const metrics = state.view === "metrics";
    document.getElementById("samples-view").hidden = metrics;
    document.getElementById("metrics-view").hidden = !metrics;
    document.getElementById("tab-samples").className = metrics ? "" : "active";
    document.getElementById("tab-metrics").className = metrics ? "active" : "";
    if (!D.metrics) document.getElementById("tab-metrics").classList.add("dim");
    document.body.dataset.view = state.view;
    if (metrics) renderMetrics(); else renderGrid();
    renderDetail();
    document.body.dataset.ready = "1";
    document.body.dataset.renderMs = (performance.now() - t0).toFixed(0);
  }
  function syncControls() {
    for (const c of D.filters) { const s = document.getElementById("filter-" + c); if (s) s.value = state.filters[c] !== undefined ? state.filters[c] : ""; }
    document.getElementById("sort").value = state.sort;
    document.getElementById("q").value = state.q;
    SLIDERS.forEach((src, i) => {
      const r = document.getElementById("thr-" + i), o = document.getElementById("thr-value-" + i);
      if (r) { r.value = state.thr[src]; o.textContent = fmtThr(state.thr[src]); }
    });
    buildLegend();
  }
  window.addEventListener("hashchange", render);
  render();
})();
