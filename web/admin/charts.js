// Small SVG charts drawn by hand: per-minute bars (jobs a minute) and lines (time-to-pinned p50/p95).
// No library: a few dozen lines give what the overview needs, in the page's own colours, with no CDN.

const NS = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text) {
  const node = document.createElementNS(NS, name);
  for (const k of Object.keys(attrs)) node.setAttribute(k, String(attrs[k]));
  if (text !== undefined) node.textContent = text;
  return node;
}

function frame(width, height, label) {
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img", "aria-label": label });
  svg.append(el("title", {}, label));
  return svg;
}

// values: numbers (null = no data). Stacked second series (e.g. failed) drawn on top in another colour.
export function barChart(values, options) {
  const o = options || {};
  const height = o.height || 64;
  const label = o.label || "";
  const extra = o.extra || null;
  const unit = o.unit || "";
  const width = 300;
  const n = values.length;
  const top = Math.max(1, ...values.map((v, i) => (v || 0) + ((extra && extra[i]) || 0)));
  const svg = frame(width, height + 14, label);
  const step = width / n;
  values.forEach((v, i) => {
    const h = ((v || 0) / top) * height;
    const f = extra ? ((extra[i] || 0) / top) * height : 0;
    if (h > 0) svg.append(el("rect", { x: i * step + 0.5, y: height - h, width: Math.max(step - 1, 1), height: h, class: "bar" }));
    if (f > 0) svg.append(el("rect", { x: i * step + 0.5, y: height - h - f, width: Math.max(step - 1, 1), height: f, class: "bar bad" }));
  });
  svg.append(el("line", { x1: 0, x2: width, y1: height + 0.5, y2: height + 0.5, class: "axis" }));
  svg.append(el("text", { x: 0, y: height + 12, class: "tick" }, "-60 min"));
  svg.append(el("text", { x: width, y: height + 12, class: "tick end" }, "now"));
  svg.append(el("text", { x: 2, y: 10, class: "tick" }, `max ${Math.round(top * 10) / 10}${unit}`));
  return svg;
}

// series: [{values, cls, name}]; gaps where a value is null.
export function lineChart(series, options) {
  const o = options || {};
  const height = o.height || 64;
  const label = o.label || "";
  const unit = o.unit || "s";
  const width = 300;
  const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
  // The scale's top is the highest value shown (the label says it): a floor of 1 s read as "max 1.0 s" when
  // every job took 0.3 s.
  const top = Math.max(0.1, ...all);
  const svg = frame(width, height + 14, label);
  const pad = 3; // the last minute's dot sits at the right edge: keep it whole
  for (const s of series) {
    const n = s.values.length;
    const step = (width - 2 * pad) / Math.max(n - 1, 1);
    let d = "";
    let pen = false;
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) { pen = false; return; }
      const x = pad + i * step;
      const y = Math.max(pad, height - (v / top) * height);
      d += `${pen ? "L" : "M"}${x.toFixed(1)},${y.toFixed(1)}`;
      pen = true;
      if (i === n - 1 || s.values[i + 1] === null) svg.append(el("circle", { cx: x, cy: y, r: 2.6, class: `dot ${s.cls}` }));
    });
    if (d) svg.append(el("path", { d, class: `line ${s.cls}` }));
  }
  svg.append(el("line", { x1: 0, x2: width, y1: height + 0.5, y2: height + 0.5, class: "axis" }));
  svg.append(el("text", { x: 0, y: height + 12, class: "tick" }, "-60 min"));
  svg.append(el("text", { x: width, y: height + 12, class: "tick end" }, "now"));
  svg.append(el("text", { x: 2, y: 10, class: "tick" }, all.length ? `max ${top.toFixed(1)} ${unit}` : "no jobs pinned"));
  return svg;
}
