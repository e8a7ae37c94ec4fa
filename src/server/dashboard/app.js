// warmline supervisor dashboard: /v1/calls snapshot + /v1/events SSE feed.
// Events only mark rows dirty; one requestAnimationFrame pass applies the changes, so hundreds
// of calls stay cheap. All text goes in through textContent (call data is untrusted).
"use strict";
(function () {
  const token = new URLSearchParams(location.search).get("token");
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const SPARK_WINDOW_MS = 60000;
  const SPARK_MAX_POINTS = 120;
  const ENDED_LINGER_MS = 15000;
  const MAX_HANDOFF_CARDS = 50;
  const SPARK_W = 120, SPARK_H = 28;

  const calls = new Map(); // call_id -> call state
  const dirty = new Set();
  const handoffCards = new Map(); // handoff_id -> card element
  let handoffTotal = 0;
  let orderDirty = true;
  let frameQueued = false;

  const tbody = document.getElementById("calls");
  const emptyEl = document.getElementById("empty");
  const handoffsEl = document.getElementById("handoffs");
  const handoffsEmpty = document.getElementById("handoffs-empty");
  const statActive = document.getElementById("stat-active");
  const statHandoffs = document.getElementById("stat-handoffs");
  const connEl = document.getElementById("conn");

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function fmtDuration(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    const m = Math.floor(s / 60);
    return m + ":" + String(s % 60).padStart(2, "0");
  }

  function fmtDelta(v, unit) {
    if (v === null || v === undefined) return "–";
    return (v >= 0 ? "+" : "") + v.toFixed(1) + " " + unit;
  }

  function schedule() {
    if (!frameQueued) {
      frameQueued = true;
      requestAnimationFrame(flush);
    }
  }

  function getCall(id, provider) {
    let c = calls.get(id);
    if (!c) {
      c = {
        id, provider: provider || "", tone: 0, tMs: 0, wallStart: Date.now(),
        points: [], f0Rel: null, energyRel: null, signals: new Set(),
        handoff: null, ended: false, row: null,
      };
      calls.set(id, c);
      orderDirty = true;
    }
    if (provider) c.provider = provider;
    dirty.add(c);
    schedule();
    return c;
  }

  function pushPoint(c, tMs, score) {
    c.points.push([tMs, score]);
    const from = tMs - SPARK_WINDOW_MS;
    let drop = 0;
    while (drop < c.points.length && c.points[drop][0] < from) drop++;
    if (c.points.length - drop > SPARK_MAX_POINTS) drop = c.points.length - SPARK_MAX_POINTS;
    if (drop) c.points.splice(0, drop);
  }

  function buildRow(c) {
    const tr = el("tr");
    tr.dataset.callId = c.id;
    const idCell = el("td");
    const idEl = el("div", "call-id", c.id);
    const provEl = el("span", "provider");
    idCell.append(idEl, provEl);
    const durEl = el("td", "num duration");
    const toneCell = el("td", "num");
    const toneEl = el("span", "tone", "0.00");
    const bar = el("span", "tone-bar");
    const barFill = el("i");
    bar.append(barFill);
    toneCell.append(toneEl, bar);
    const sparkCell = el("td");
    const canvas = el("canvas", "spark");
    const dpr = window.devicePixelRatio || 1;
    canvas.width = SPARK_W * dpr; canvas.height = SPARK_H * dpr;
    canvas.style.width = SPARK_W + "px"; canvas.style.height = SPARK_H + "px";
    sparkCell.append(canvas);
    const f0El = el("td", "num delta f0");
    const enEl = el("td", "num delta energy");
    const sigCell = el("td");
    const chips = el("div", "chips signals");
    sigCell.append(chips);
    tr.append(idCell, durEl, toneCell, sparkCell, f0El, enEl, sigCell);
    c.row = { tr, provEl, durEl, toneEl, barFill, canvas, f0El, enEl, chips, chipCount: 0, hasHandoffChip: false };
  }

  function drawSpark(c) {
    const cv = c.row.canvas;
    const ctx = cv.getContext("2d");
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, SPARK_W, SPARK_H);
    ctx.strokeStyle = "#e3e7ee";
    ctx.beginPath(); ctx.moveTo(0, SPARK_H - 0.5); ctx.lineTo(SPARK_W, SPARK_H - 0.5); ctx.stroke();
    const pts = c.points;
    if (pts.length < 2) return;
    const end = pts[pts.length - 1][0];
    const start = end - SPARK_WINDOW_MS;
    ctx.strokeStyle = c.tone >= 0.7 ? "#d9480f" : c.tone >= 0.4 ? "#f08c00" : "#2b8a3e";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    for (let i = 0; i < pts.length; i++) {
      const x = ((pts[i][0] - start) / SPARK_WINDOW_MS) * (SPARK_W - 2) + 1;
      const y = SPARK_H - 2 - Math.max(0, Math.min(1, pts[i][1])) * (SPARK_H - 4);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    }
    ctx.stroke();
  }

  function renderRow(c) {
    if (!c.row) buildRow(c);
    const r = c.row;
    r.provEl.textContent = c.provider;
    r.toneEl.textContent = c.tone.toFixed(2);
    r.toneEl.dataset.tone = c.tone.toFixed(3);
    r.tr.dataset.tone = c.tone.toFixed(3);
    r.barFill.style.width = Math.round(Math.max(0, Math.min(1, c.tone)) * 100) + "%";
    r.tr.classList.toggle("lvl-warm", c.tone >= 0.4 && c.tone < 0.7);
    r.tr.classList.toggle("lvl-hot", c.tone >= 0.7);
    r.f0El.textContent = fmtDelta(c.f0Rel, "st");
    r.f0El.className = "num delta f0" + (c.f0Rel > 1 ? " up" : c.f0Rel < -1 ? " down" : "");
    r.enEl.textContent = fmtDelta(c.energyRel, "dB");
    r.enEl.className = "num delta energy" + (c.energyRel > 3 ? " up" : c.energyRel < -3 ? " down" : "");
    const names = Array.from(c.signals);
    for (let i = r.chipCount; i < names.length; i++) {
      const chip = el("span", "chip", names[i].replace(/_/g, " "));
      chip.dataset.signal = names[i];
      r.chips.append(chip);
    }
    r.chipCount = names.length;
    if (c.handoff && !r.hasHandoffChip) {
      const chip = el("span", "chip handoff", "handoff");
      chip.dataset.signal = "handoff";
      r.chips.prepend(chip);
      r.hasHandoffChip = true;
    }
    r.tr.classList.toggle("handed-off", !!c.handoff);
    r.tr.classList.toggle("ended", c.ended);
    r.tr.dataset.handoff = c.handoff ? "1" : "0";
    drawSpark(c);
  }

  function reorder() {
    const sorted = Array.from(calls.values())
      .filter((c) => c.row)
      .sort((a, b) => b.tone - a.tone || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    // Move only rows that are out of place.
    let cursor = tbody.firstChild;
    for (const c of sorted) {
      if (c.row.tr === cursor) cursor = cursor.nextSibling;
      else tbody.insertBefore(c.row.tr, cursor);
    }
  }

  function flush() {
    frameQueued = false;
    for (const c of dirty) {
      if (!calls.has(c.id)) continue;
      const prevTone = c.row ? Number(c.row.tr.dataset.tone) : -1;
      renderRow(c);
      if (prevTone !== c.tone) orderDirty = true;
    }
    dirty.clear();
    if (orderDirty) { reorder(); orderDirty = false; }
    const active = Array.from(calls.values()).filter((c) => !c.ended).length;
    statActive.textContent = String(active);
    statHandoffs.textContent = String(handoffTotal);
    emptyEl.style.display = calls.size ? "none" : "";
    handoffsEmpty.style.display = handoffCards.size ? "none" : "";
  }

  function tickDurations() {
    const now = Date.now();
    for (const c of calls.values()) {
      if (c.row && !c.ended) c.row.durEl.textContent = fmtDuration(now - c.wallStart);
    }
  }

  function removeCall(c) {
    if (c.row) c.row.tr.remove();
    calls.delete(c.id);
    schedule();
  }

  // --- handoffs -----------------------------------------------------------------------------

  function addHandoffCard(e) {
    const h = e;
    if (handoffCards.has(h.handoff_id)) return;
    handoffTotal++;
    const card = el("div", "handoff-card");
    card.dataset.handoffId = h.handoff_id;
    card.dataset.callId = e.call_id;
    const head = el("div", "head");
    head.append(el("span", "call-id", e.call_id));
    const status = el("span", "delivery", "delivering…");
    status.dataset.status = "pending";
    head.append(status);
    card.append(head);
    const s = h.summary || {};
    card.append(el("div", "why-now", s.why_now || ""));
    const intent = el("div", "intent");
    intent.append(el("span", "k", "intent"), document.createTextNode(s.caller_intent || "–"));
    const whisper = el("div", "whisper");
    whisper.append(el("span", "k", "whisper"), document.createTextNode(s.whisper || ""));
    card.append(intent, whisper);
    const ul = el("ul", "reasons");
    for (const r of h.reasons || []) {
      const li = el("li");
      li.dataset.signal = r.signal;
      li.append(el("span", "sig", r.signal.replace(/_/g, " ")));
      const vals = Object.entries((r.evidence && r.evidence.values) || {})
        .map(([k, v]) => k + " " + Number(v).toFixed(1)).join(", ");
      li.append(el("span", "num", r.value.toFixed(2) + " ≥ " + r.threshold.toFixed(2) + (vals ? " · " + vals : "")));
      ul.append(li);
    }
    card.append(ul);
    handoffsEl.prepend(card);
    handoffCards.set(h.handoff_id, card);
    while (handoffsEl.children.length > MAX_HANDOFF_CARDS) {
      const last = handoffsEl.lastChild;
      handoffCards.delete(last.dataset.handoffId);
      last.remove();
    }
  }

  function markDelivery(e, ok) {
    const card = handoffCards.get(e.handoff_id);
    if (!card) return;
    const st = card.querySelector(".delivery");
    st.dataset.status = ok ? "delivered" : "failed";
    st.textContent = (ok ? "delivered → " : "failed → ") + e.target;
    st.title = e.error || "";
  }

  // --- data in ------------------------------------------------------------------------------

  async function loadSnapshot() {
    const res = await fetch("/v1/calls", { headers });
    if (!res.ok) throw new Error("GET /v1/calls: " + res.status);
    const list = await res.json();
    const seen = new Set();
    for (const v of list) {
      seen.add(v.call_id);
      const c = getCall(v.call_id, v.provider);
      const started = Date.parse(v.started_at);
      c.wallStart = Number.isFinite(started) ? started : Date.now() - v.t_ms;
      c.tMs = v.t_ms;
      const tone = v.scores && typeof v.scores.tone === "number" ? v.scores.tone : c.tone;
      c.tone = tone;
      for (const k of Object.keys(v.scores || {})) if (k !== "tone" && v.scores[k] > 0 && c.signals.has(k)) c.signals.add(k);
      if (v.handoff && !c.handoff) { c.handoff = v.handoff; addHandoffCard(Object.assign({ call_id: v.call_id }, v.handoff)); }
    }
    for (const c of calls.values()) if (!seen.has(c.id) && !c.ended) removeCall(c);
  }

  const handlers = {
    call_started(e) {
      const c = getCall(e.call_id, e.provider);
      c.wallStart = Date.now() - e.t_ms;
    },
    prosody(e) {
      if (e.track !== "caller") return;
      const c = getCall(e.call_id);
      c.tMs = e.t_ms;
      c.tone = e.tone_score;
      if (e.f0_rel_st !== undefined) c.f0Rel = e.f0_rel_st;
      if (e.energy_rel_db !== undefined) c.energyRel = e.energy_rel_db;
      pushPoint(c, e.t_ms, e.tone_score);
    },
    signal(e) {
      getCall(e.call_id).signals.add(e.signal);
    },
    handoff(e) {
      const c = getCall(e.call_id);
      c.handoff = e;
      addHandoffCard(e);
    },
    handoff_delivered(e) { markDelivery(e, true); },
    handoff_failed(e) { markDelivery(e, false); },
    call_ended(e) {
      const c = calls.get(e.call_id);
      if (!c) return;
      c.ended = true;
      dirty.add(c); schedule();
      setTimeout(() => { if (calls.get(c.id) === c) removeCall(c); }, ENDED_LINGER_MS);
    },
  };

  function connect() {
    const url = "/v1/events" + (token ? "?token=" + encodeURIComponent(token) : "");
    const es = new EventSource(url);
    es.onopen = () => {
      connEl.dataset.state = "live"; connEl.textContent = "live";
      loadSnapshot().catch(showError);
    };
    es.onerror = () => { connEl.dataset.state = "error"; connEl.textContent = "reconnecting"; };
    for (const name of Object.keys(handlers)) {
      es.addEventListener(name, (m) => {
        try { handlers[name](JSON.parse(m.data)); } catch (err) { console.error(name, err); }
      });
    }
    es.addEventListener("resync", () => loadSnapshot().catch(showError));
  }

  function showError(err) {
    console.error(err);
    connEl.dataset.state = "error";
    connEl.textContent = String(err.message || err);
  }

  connect();
  setInterval(tickDurations, 1000);
  setInterval(() => { if (dirty.size === 0) { orderDirty = true; schedule(); } }, 2000);
  schedule();
})();
