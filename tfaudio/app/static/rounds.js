// tfaudio serve, rounds page: ask for the next windows to judge for the label in the top bar, by
// strategy, and judge them (each label stored with its round and strategy, and a stratified or
// random pick's inclusion weight).
"use strict";

(() => {
  const {api, flash, Grid, labelBox} = tfaudio;
  const $ = (id) => document.getElementById(id);
  const grid = new Grid($("grid"), "round").listen();

  $("run-round").addEventListener("click", async () => {
    const label = labelBox.value.trim();
    if (!label) { flash("type the label to work on first (top of the page)"); labelBox.focus(); return; }
    const status = $("round-status");
    const button = $("run-round");
    status.className = "status";
    status.textContent = "choosing windows…";
    button.disabled = true;
    try {
      const found = await api("/api/rounds", {label, strategy: $("round-strategy").value,
                                              n: Number($("round-n").value) || 10});
      const round = found.windows.length ? found.windows[0].round : "-";
      status.textContent = `${found.windows.length} windows for ${label} (round ${round})`;
      for (const pick of found.windows) pick.round_label = label;  // the label its weight is for
      grid.show(found.windows);
    } catch (err) {
      status.className = "status error";
      status.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  });
})();
