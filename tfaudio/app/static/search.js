// tfaudio serve, search page: choose a query (an indexed file or an upload) and its region (type
// the times, or drag across the spectrogram), collect negative examples, search, judge the hits.
"use strict";

(() => {
  const {api, flash, mediaUrl, element, Grid, labelBox} = tfaudio;
  const VIEW = 60;  // seconds of the query drawn at once (the server's MAX_SPAN)
  const $ = (id) => document.getElementById(id);
  const picker = $("query-file");
  const view = {source: null, id: null, name: "", duration: 0, start: 0};
  const negatives = [];

  const grid = new Grid($("grid"), "search", (card, item, buttons) => {
    const away = element("button", "push-away", "push away");
    away.type = "button";
    away.title = "add this hit as a negative example for the next search";
    away.addEventListener("click", (event) => {
      event.stopPropagation();
      addNegative({source: "file", id: item.file_id, start: item.start, end: item.end, name: item.name});
    });
    buttons.append(away);
  }).listen();

  function region() {
    const start = parseFloat($("region-start").value);
    const end = parseFloat($("region-end").value);
    return {start: Number.isFinite(start) ? start : null, end: Number.isFinite(end) ? end : null};
  }

  function viewLength() {
    return Math.max(0.05, Math.min(VIEW, view.duration - view.start));
  }

  function drawRegion() {
    const box = $("query-region");
    const {start, end} = region();
    const length = viewLength();
    const from = Math.max(start ?? 0, view.start);
    const to = Math.min(end ?? view.duration, view.start + length);
    if ((start === null && end === null) || to <= from) { box.hidden = true; return; }
    box.hidden = false;
    box.style.left = `${(100 * (from - view.start)) / length}%`;
    box.style.width = `${(100 * (to - from)) / length}%`;
  }

  function drawView() {
    const length = viewLength();
    $("query-view").hidden = false;
    $("query-name").textContent = view.name;
    $("view-span").textContent = `${view.start.toFixed(1)}–${(view.start + length).toFixed(1)} s of ${view.duration.toFixed(1)} s`;
    $("query-image").src = mediaUrl(view.source, view.id, "spectrogram.png", view.start, view.start + length, "wide");
    drawRegion();
    setPlayer();
  }

  function setPlayer() {
    const {start, end} = region();
    const from = start ?? view.start;
    const to = Math.min(end ?? view.duration, from + VIEW);
    if (to > from) $("query-audio").src = mediaUrl(view.source, view.id, "audio.wav", from, to);
  }

  function choose(source, id, name, duration) {
    Object.assign(view, {source, id, name, duration, start: 0});
    $("view-start").value = 0;
    $("region-start").value = "";
    $("region-end").value = "";
    drawView();
  }

  picker.addEventListener("change", () => {
    const option = picker.selectedOptions[0];
    if (!picker.value) return;
    choose("file", Number(picker.value), option.textContent, Number(option.dataset.end));
  });

  $("query-upload").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    const status = $("upload-status");
    status.className = "status";
    status.textContent = `uploading ${file.name}…`;
    const form = new FormData();
    form.append("file", file);
    try {
      const done = await api("/api/upload", form);
      status.textContent = `uploaded (${done.duration.toFixed(1)} s)`;
      picker.value = "";
      choose("upload", done.upload, done.name, done.duration);
    } catch (err) {
      status.className = "status error";
      status.textContent = err.message;
    }
  });

  $("view-start").addEventListener("change", () => {
    const wanted = Math.max(0, parseFloat($("view-start").value) || 0);
    view.start = Math.min(wanted, Math.max(0, view.duration - 0.05));
    drawView();
  });
  for (const id of ["region-start", "region-end"]) {
    $(id).addEventListener("change", () => { drawRegion(); setPlayer(); });
  }
  $("region-clear").addEventListener("click", () => {
    $("region-start").value = "";
    $("region-end").value = "";
    drawRegion();
    setPlayer();
  });

  // Drag across the picture: the region spans where the button went down and came up.
  const spectro = $("query-spectro");
  let anchor = null;
  const timeAt = (event) => {
    const box = $("query-image").getBoundingClientRect();
    const share = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
    return view.start + share * viewLength();
  };
  const setRegion = (a, b) => {
    $("region-start").value = Math.min(a, b).toFixed(2);
    $("region-end").value = Math.max(a, b).toFixed(2);
    drawRegion();
  };
  spectro.addEventListener("mousedown", (event) => { anchor = timeAt(event); event.preventDefault(); });
  window.addEventListener("mousemove", (event) => { if (anchor !== null) setRegion(anchor, timeAt(event)); });
  window.addEventListener("mouseup", (event) => {
    if (anchor === null) return;
    const at = timeAt(event);
    if (Math.abs(at - anchor) > 0.02) setRegion(anchor, at);
    anchor = null;
    setPlayer();
  });

  function addNegative(spec) {
    negatives.push(spec);
    const item = element("li");
    const where = spec.start === null ? "whole file" : `${spec.start.toFixed(2)}–${(spec.end ?? view.duration).toFixed(2)} s`;
    item.append(element("span", "file", spec.name), document.createTextNode(` ${where} `));
    const remove = element("button", "", "remove");
    remove.type = "button";
    remove.addEventListener("click", () => {
      negatives.splice(negatives.indexOf(spec), 1);
      item.remove();
      $("negatives-box").hidden = negatives.length === 0;
    });
    item.append(remove);
    $("negatives").append(item);
    $("negatives-box").hidden = false;
    flash(`${spec.name} added as a negative example`);
  }

  $("add-negative").addEventListener("click", () => {
    if (view.source === null) { flash("choose a file first"); return; }
    addNegative({source: view.source, id: view.id, name: view.name, ...region()});
  });

  $("run-search").addEventListener("click", async () => {
    if (view.source === null) { flash("choose or upload a query file first"); return; }
    const status = $("search-status");
    const button = $("run-search");
    status.className = "status";
    status.textContent = "searching…";
    button.disabled = true;
    try {
      const found = await api("/api/search", {
        query: {source: view.source, id: view.id, ...region()},
        negatives: negatives.map(({source, id, start, end}) => ({source, id, start, end})),
        top: Number($("top").value) || 12, other_files: $("other-files").checked,
        label: labelBox.value.trim() || null});
      $("notes").replaceChildren(...found.notes.map((note) => element("li", "", note)));
      status.textContent = `${found.hits.length} hits (${found.exact ? "exact" : "approximate candidates, re-ranked exactly"})`;
      grid.show(found.hits);
    } catch (err) {
      status.className = "status error";
      status.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  });
})();
