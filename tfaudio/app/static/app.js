// tfaudio serve: what every page shares. The JSON calls (with the CSRF token the page carries),
// the label and annotator boxes (remembered in this browser), and the grid of windows to judge:
// cards with a spectrogram, a player, buttons and keys for positive / negative / unsure, undo.
// Names and labels reach the page as text (textContent), never as markup.
"use strict";

const tfaudio = (() => {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const labelBox = document.getElementById("label-name");
  const annotatorBox = document.getElementById("annotator");

  // The label and annotator typed last, kept across pages and reloads.
  for (const [box, key] of [[labelBox, "tfaudio-label"], [annotatorBox, "tfaudio-annotator"]]) {
    const kept = window.localStorage.getItem(key);
    if (kept !== null && kept !== "") box.value = kept;
    box.addEventListener("change", () => window.localStorage.setItem(key, box.value.trim()));
  }

  function flash(message, seconds = 3) {
    const line = document.getElementById("flash");
    line.textContent = message;
    line.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(() => { line.hidden = true; }, seconds * 1000);
  }

  // The JSON of an answer; Error(message) when it is a refusal (JSON {error} or plain text).
  async function answered(answer) {
    const raw = await answer.text();
    let data;
    try { data = JSON.parse(raw); } catch (err) { data = {error: raw.trim() || answer.statusText}; }
    if (!answer.ok) throw new Error(data.error || `${answer.status} ${answer.statusText}`);
    return data;
  }

  // POST a JSON body (or FormData) and return the JSON answer; throw Error(message) on refusal.
  async function api(path, body) {
    const form = body instanceof FormData;
    const headers = {"X-CSRF-Token": csrf};
    if (!form) headers["Content-Type"] = "application/json";
    return answered(await fetch(path, {method: "POST", headers, credentials: "same-origin",
                                       body: form ? body : JSON.stringify(body)}));
  }

  async function get(path, params) {
    const query = params ? `?${new URLSearchParams(params)}` : "";
    return answered(await fetch(`${path}${query}`, {credentials: "same-origin"}));
  }

  function mediaUrl(source, id, what, start, end, size) {
    const query = new URLSearchParams({start: start.toFixed(3), end: end.toFixed(3)});
    if (size) query.set("size", size);
    return `/media/${encodeURIComponent(source)}/${encodeURIComponent(id)}/${what}?${query}`;
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const seconds = (value) => `${value.toFixed(2)}`;

  // A grid of windows to judge. items: objects from /api/search or /api/rounds. source: the
  // label's source ("search" or "round"). extra(card, item): more buttons for a card.
  class Grid {
    constructor(container, source, extra) {
      this.container = container;
      this.source = source;
      this.extra = extra;
      this.cards = [];
      this.current = -1;
      this.done = [];  // labels saved from this page, newest last: what z takes back
    }

    show(items) {
      this.container.replaceChildren();
      this.cards = items.map((item, position) => this.card(item, position));
      this.container.append(...this.cards);
      this.current = -1;
      if (this.cards.length) this.focus(0);
    }

    card(item, position) {
      const card = element("div", "card");
      card.tabIndex = -1;
      card.item = item;
      card.addEventListener("click", () => this.focus(this.cards.indexOf(card), false));
      if (item.clip) {
        const [from, to] = item.clip;
        const picture = element("div", "spectro thumb");
        const image = element("img");
        image.alt = "log-mel spectrogram";
        image.src = mediaUrl("file", item.file_id, "spectrogram.png", from, to, "thumb");
        const mark = element("div", "mark");
        mark.style.left = `${(100 * (item.start - from)) / (to - from)}%`;
        mark.style.width = `${(100 * (Math.min(item.end, to) - item.start)) / (to - from)}%`;
        picture.append(image, mark);
        const player = element("audio");
        player.controls = true;
        player.preload = "none";
        player.src = mediaUrl("file", item.file_id, "audio.wav", from, to);
        card.append(picture, player);
      } else {
        card.append(element("p", "missing", "missing or changed since the build: no playback"));
      }
      const line = element("div", "line");
      line.append(element("span", "rank", `#${item.rank || position + 1}`),
                  element("span", "score", item.score === null ? "–" : item.score.toFixed(4)),
                  element("span", "time", `${seconds(item.start)}–${seconds(item.end)} s`));
      const file = element("div", "file", item.name);
      file.title = item.path;
      const buttons = element("div", "buttons");
      for (const [kind, key] of [["positive", "p"], ["negative", "n"], ["unsure", "u"]]) {
        const button = element("button", `label-${kind}`, `${key} ${kind}`);
        button.type = "button";
        button.addEventListener("click", (event) => { event.stopPropagation(); this.label(card, kind); });
        buttons.append(button);
      }
      if (this.extra) this.extra(card, item, buttons);
      const state = element("div", "state", item.labelled && item.labelled.length
        ? `already: ${item.labelled.join(", ")}` : "");
      card.append(line, file, buttons, state);
      return card;
    }

    focus(position, scroll = true) {
      if (position < 0 || position >= this.cards.length) return;
      if (this.current >= 0 && this.cards[this.current]) this.cards[this.current].classList.remove("current");
      this.current = position;
      const card = this.cards[position];
      card.classList.add("current");
      card.focus({preventScroll: !scroll});
      if (scroll) card.scrollIntoView({block: "nearest"});
    }

    // Store one judgement; the card says "saved" only once the server has committed it. The
    // label joins the undo list when pressed (not when answered), so z takes back the last
    // key pressed even while earlier answers are still on their way.
    label(card, kind) {
      const label = labelBox.value.trim();
      if (!label) {
        flash("type a label name first (top of the page)");
        labelBox.focus();
        return null;
      }
      const item = card.item;
      const state = card.querySelector(".state");
      card.classList.remove("failed", "saved-positive", "saved-negative", "saved-unsure");
      card.classList.add("saving");
      state.textContent = `saving ${kind}…`;
      // A round's inclusion weight holds for the label the round sampled for, not for another
      // label typed since: that label's judgement is no probability sample.
      const weight = item.weight != null && item.round_label === label ? item.weight : null;
      const saving = api("/api/label", {
        id: item.file_id, start: item.start, end: item.end, label, kind, source: this.source,
        annotator: annotatorBox.value.trim(), round: item.round ?? null, strategy: item.strategy ?? null, weight,
      }).then((saved) => {
        card.classList.remove("saving");
        card.classList.add(`saved-${saved.kind}`);
        card.dataset.saved = String(saved.id);
        state.textContent = `saved: ${saved.kind} (${saved.label})`;
        return saved.id;
      }, (err) => {
        card.classList.remove("saving");
        card.classList.add("failed");
        state.textContent = `not saved: ${err.message}`;
        return null;
      });
      this.done.push({card, saving});
      return saving;
    }

    async undo() {
      const last = this.done.pop();
      if (!last) { flash("nothing to undo on this page"); return; }
      const id = await last.saving;
      if (id === null) { flash("the last label was not saved: nothing to undo"); return; }
      const state = last.card.querySelector(".state");
      try {
        await api("/api/undo", {id});
        last.card.classList.remove("saved-positive", "saved-negative", "saved-unsure");
        delete last.card.dataset.saved;
        state.textContent = "undone";
        this.focus(this.cards.indexOf(last.card));
      } catch (err) {
        this.done.push(last);
        flash(`undo failed: ${err.message}`);
      }
    }

    togglePlay() {
      const card = this.cards[this.current];
      const player = card && card.querySelector("audio");
      if (!player) return;
      if (player.paused) {
        for (const other of this.container.querySelectorAll("audio")) if (other !== player) other.pause();
        player.play().catch((err) => flash(`cannot play: ${err.message}`));
      } else {
        player.pause();
      }
    }

    // j/k move, p/n/u label the current card (then move on), z undo, space play.
    keys(event) {
      const typing = event.target.closest("input, select, textarea");
      if (typing || event.ctrlKey || event.metaKey || event.altKey || !this.cards.length) return;
      const kinds = {p: "positive", n: "negative", u: "unsure"};
      if (event.key === "j") this.focus(Math.min(this.current + 1, this.cards.length - 1));
      else if (event.key === "k") this.focus(Math.max(this.current - 1, 0));
      else if (event.key in kinds && this.current >= 0) {
        const card = this.cards[this.current];
        this.label(card, kinds[event.key]);
        if (labelBox.value.trim()) this.focus(Math.min(this.current + 1, this.cards.length - 1));
      } else if (event.key === "z") this.undo();
      else if (event.key === " ") this.togglePlay();
      else return;
      event.preventDefault();
    }

    listen() {
      document.addEventListener("keydown", (event) => this.keys(event));
      return this;
    }
  }

  return {api, get, flash, mediaUrl, element, Grid, labelBox, annotatorBox};
})();
