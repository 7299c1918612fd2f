// tfaudio serve, train page: train the label's detector (a background job, its progress shown),
// its held-out metrics, precision-recall curve and reliability diagram, a threshold control that
// shows the precision and recall (with intervals) a threshold gives before it is committed, then
// export and detect, with the detections to download.
"use strict";

(() => {
  const {api, get, flash, element, labelBox} = tfaudio;
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  let shown = null;  // the detector as /api/detector described it
  let point = null;  // the operating point at the threshold on the slider

  const fmt = (value, digits = 3) => (value === null || value === undefined ? "–" : value.toFixed(digits));
  const interval = (ci) => (ci && ci[0] !== null && ci[0] !== undefined ? ` [${fmt(ci[0])}, ${fmt(ci[1])}]` : "");
  const sleep = (ms) => new Promise((done) => setTimeout(done, ms));
  const label = () => labelBox.value.trim();

  function svgNode(parent, tag, attributes, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    parent.append(node);
    return node;
  }

  // Axes over [0, 1] x [0, 1]; returns the maps from values to pixels.
  function frame(svg, xName, yName) {
    svg.replaceChildren();
    const [width, height, left, bottom, top, right] = [360, 300, 40, 35, 10, 10];
    const x = (v) => left + v * (width - left - right);
    const y = (v) => height - bottom - v * (height - bottom - top);
    svgNode(svg, "line", {class: "axis", x1: x(0), y1: y(0), x2: x(1), y2: y(0)});
    svgNode(svg, "line", {class: "axis", x1: x(0), y1: y(0), x2: x(0), y2: y(1)});
    for (const tick of [0, 0.5, 1]) {
      svgNode(svg, "text", {x: x(tick) - 6, y: y(0) + 14}, String(tick));
      svgNode(svg, "text", {x: x(0) - 24, y: y(tick) + 4}, String(tick));
    }
    svgNode(svg, "text", {x: x(0.5), y: height - 4, "text-anchor": "middle"}, xName);
    svgNode(svg, "text", {x: 10, y: y(0.5), "text-anchor": "middle", transform: `rotate(-90 10 ${y(0.5)})`}, yName);
    return {x, y};
  }

  function drawCurve() {
    const svg = $("pr-curve");
    const {x, y} = frame(svg, "recall", "precision");
    const curve = shown.curve;
    const points = curve.recall.map((r, i) => [r, curve.precision[i]]).filter(([r, p]) => r !== null && p !== null);
    if (points.length) {
      svgNode(svg, "polyline", {class: "curve", points: points.map(([r, p]) => `${x(r)},${y(p)}`).join(" ")});
    }
    if (point && point.recall !== null && point.precision !== null) {
      svgNode(svg, "circle", {class: "dot", cx: x(point.recall), cy: y(point.precision), r: 5});
    }
  }

  function drawReliability() {
    const svg = $("reliability");
    const {x, y} = frame(svg, "predicted probability", "share positive");
    svgNode(svg, "line", {class: "diagonal", x1: x(0), y1: y(0), x2: x(1), y2: y(1)});
    const calibration = shown.report.calibration;
    if (!calibration) return;
    const bins = calibration.reliability;
    const most = Math.max(...bins.map((b) => b.clips), 1);
    for (const b of bins) {  // bars: how many windows each bin holds
      const height = 0.25 * (b.clips / most);
      svgNode(svg, "rect", {class: "bar", x: x(b.bin[0]), y: y(height), width: x(b.bin[1]) - x(b.bin[0]) - 1,
                            height: y(0) - y(height)});
    }
    svgNode(svg, "polyline", {class: "curve",
                              points: bins.map((b) => `${x(b.confidence)},${y(b.accuracy)}`).join(" ")});
    for (const b of bins) svgNode(svg, "circle", {class: "dot", cx: x(b.confidence), cy: y(b.accuracy), r: 3});
  }

  // Labelled windows hold more of the sound than the archive; stratified rounds (their picks keep
  // inclusion weights) give precision and recall over every window, and the threshold is chosen on them.
  function archiveText(a) {
    if (!a) return "not estimated: label a stratified round (Rounds page) to estimate precision on every window";
    if (Math.abs(a.threshold - shown.threshold) > 1e-9) return `estimated at threshold ${fmt(a.threshold)}, not this one`;
    return `precision ${fmt(a.precision)}${interval(a.precision_ci95)}` +
      (a.reached ? "" : ` (target ${shown.target_precision} not reached)`) +
      `, recall ${fmt(a.recall)}${interval(a.recall_ci95)}; ${a.predicted} windows at or above the threshold ` +
      `(from ${a.picks} stratified labels)`;
  }

  function showMetrics() {
    const r = shown.report;
    const p = r.point;
    const c = r.calibration;
    const rows = [
      ["labelled windows", `${r.positives} positive, ${r.negatives} negative, ${r.unsure} unsure (left out)`],
      ["weak negatives", `${r.weak_negatives} unlabelled windows, in training only (not in these metrics)`],
      ["recordings", String(r.recordings)],
      ["average precision", `${fmt(r.average_precision)}${interval(r.average_precision_ci95)}`],
      ["ROC AUC", fmt(r.roc_auc)],
      ["calibration error (ECE)", c ? `${fmt(c.ece)}${interval(c.ece_ci95)}` : "–"],
      ["threshold in use", `${fmt(shown.threshold)} (probability)`],
      ["precision there", p ? `${fmt(p.precision)}${interval(p.precision_ci95)}` +
        (p.reached ? "" : ` (target ${shown.target_precision} not reached)`) : "–"],
      ["recall there", p ? `${fmt(p.recall)}${interval(p.recall_ci95)}` : "–"],
      ["on the whole archive", archiveText(r.archive)],
    ];
    $("metrics").replaceChildren(...rows.map(([name, value]) => {
      const row = element("tr");
      row.append(element("td", "", name), element("td", "num", value));
      return row;
    }));
    $("note").hidden = !r.note;
    $("note").textContent = r.note || "";
  }

  function show(described) {
    shown = described.trained ? described : null;
    $("trained").hidden = !shown;
    if (!shown) {
      $("train-status").textContent = `no detector for ${described.label} yet: label positives and negatives, then train`;
      return;
    }
    $("train-status").textContent = "";
    $("trained-path").textContent = shown.path;
    $("threshold").value = shown.threshold;
    $("threshold-value").value = shown.threshold.toFixed(3);
    showMetrics();
    drawReliability();
    preview(shown.threshold);
    $("export-status").textContent = shown.exports.length ? `exported: version ${shown.exports.join(", ")}` : "";
  }

  async function load() {
    if (!label()) { $("train-status").textContent = "type a label (top of the page)"; $("trained").hidden = true; return; }
    try {
      show(await get("/api/detector", {label: label()}));
    } catch (err) {
      $("train-status").textContent = err.message;
    }
  }

  // What a threshold would give, before it is committed.
  async function preview(threshold) {
    try {
      point = await get("/api/point", {label: label(), threshold});
      $("point").textContent = `precision ${fmt(point.precision)}${interval(point.precision_ci95)} · recall ` +
        `${fmt(point.recall)}${interval(point.recall_ci95)} · ${point.predicted} held-out windows at or above it, ` +
        `${point.positives} labelled positive`;
    } catch (err) {
      point = null;
      $("point").textContent = err.message;
    }
    drawCurve();
  }

  let pending = null;
  function moved(value) {
    clearTimeout(pending);
    pending = setTimeout(() => preview(Number(value)), 120);
  }
  $("threshold").addEventListener("input", () => {
    $("threshold-value").value = Number($("threshold").value).toFixed(3);
    moved($("threshold").value);
  });
  $("threshold-value").addEventListener("change", () => {
    const value = Math.min(1, Math.max(0, Number($("threshold-value").value) || 0));
    $("threshold").value = value;
    moved(value);
  });

  $("commit").addEventListener("click", async () => {
    const threshold = Number($("threshold-value").value);
    try {
      show(await api("/api/threshold", {label: label(), threshold}));
      $("commit-status").textContent = `saved: threshold ${threshold.toFixed(3)}`;
    } catch (err) {
      $("commit-status").textContent = err.message;
    }
  });

  // Follow a background job until it ends; its progress in `bar`, its step in `status`.
  async function follow(job, bar, status) {
    bar.hidden = false;
    for (;;) {
      const now = await get(`/api/jobs/${job.job}`);
      if (now.total) { bar.max = now.total; bar.value = now.done; }
      status.textContent = `${now.step || now.kind} (${now.seconds} s)`;
      if (now.state === "done") { bar.hidden = true; return now; }
      if (now.state === "failed") { bar.hidden = true; throw new Error(now.error); }
      await sleep(400);
    }
  }

  async function run(path, bar, status, button) {
    if (!label()) { flash("type a label first (top of the page)"); return null; }
    button.disabled = true;
    status.className = "status";
    try {
      return await follow(await api(path, {label: label()}), bar, status);
    } catch (err) {
      status.className = "status error";
      status.textContent = err.message;
      return null;
    } finally {
      button.disabled = false;
    }
  }

  $("train").addEventListener("click", async () => {
    const done = await run("/api/train", $("train-progress"), $("train-status"), $("train"));
    if (done) { await load(); $("train-status").textContent = `trained in ${done.seconds} s`; }
  });
  $("export").addEventListener("click", async () => {
    const done = await run("/api/export", $("detect-progress"), $("export-status"), $("export"));
    if (done) $("export-status").textContent = `exported: ${done.result.path}`;
  });
  $("detect").addEventListener("click", async () => {
    $("downloads").replaceChildren();
    const done = await run("/api/detect", $("detect-progress"), $("detect-status"), $("detect"));
    if (!done) return;
    const r = done.result;
    $("detect-status").textContent = `${r.detections} detections in ${r.windows} windows of ${r.files} files`;
    $("downloads").replaceChildren(...r.downloads.map((name) => {
      const link = element("a", "download", name);
      link.href = `/download/${done.job}/${encodeURIComponent(name)}`;
      link.download = "";
      return link;
    }));
  });

  labelBox.addEventListener("change", load);
  load();
})();
