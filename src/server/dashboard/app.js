// warmline supervisor dashboard: /v1/calls and /v1/handoffs snapshots, then the /v1/events
// feed (SSE batches, at most four a second). Events only update per-call state and mark rows
// dirty; one requestAnimationFrame pass renders at most MAX_ROWS_PER_FRAME rows and re-sorts
// at most once per REORDER_MS. Only the MAX_ROWS hottest calls have rows in the page (the rest
// are counted below the table), so the DOM and the work per update stay bounded however many
// calls are live. All text goes in through textContent: call data is untrusted.
"use strict";
(function () {
  const token = new URLSearchParams(location.search).get("token");
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const SPARK_WINDOW_MS = 60000;
  const SPARK_MAX_POINTS = 120;
  const ENDED_LINGER_MS = 20000;
  const MAX_HANDOFF_CARDS = 50;
  const MAX_ROWS_PER_FRAME = 100;
  const MAX_ROWS = Number(new URLSearchParams(location.search).get("rows")) || 100;
  const REORDER_MS = 1000;
  const SPARK_W = 120, SPARK_H = 28;
  const TONE_WARM = 0.4, TONE_HOT = 0.7;

  const calls = new Map(); // call_id -> call state
  let shown = new Set(); // calls with a row in the table, hottest MAX_ROWS
  const dirty = new Set();
  const handoffCards = new Map(); // handoff_id -> card element
  const handoffIds = new Set(); // every handoff seen, for the total
  let orderDirty = true;
  let lastReorder = 0;
  let frameQueued = false;
  let selected = null; // call id whose details are open

  // Numbers the browser test and the 500-call check read.
  const stats = (window.warmlineStats = {
    batches: 0, events: 0, rowRenders: 0, flushes: 0, maxFlushMs: 0,
    // ms from a batch's arrival to the end of the frame that rendered it (last 2000).
    updateToRenderMs: [],
  });
  let oldestUnrendered = null;

  const $ = (id) => document.getElementById(id);
  const tbody = $("calls");
  const emptyEl = $("empty");
  const handoffsEl = $("handoffs");
  const handoffsEmpty = $("handoffs-empty");
  const statActive = $("stat-active");
  const statHot = $("stat-hot");
  const statHandoffs = $("stat-handoffs");
  const connEl = $("conn");
  const moreEl = $("more");

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  const fmtDuration = (ms) => {
    const s = Math.max(0, Math.floor(ms / 1000));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  };
  const fmtDelta = (v, unit) =>
    v === null || v === undefined ? "" : (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(1) + " " + unit;
  const label = (s) => String(s).replace(/_/g, " ");
  const level = (tone) => (tone >= TONE_HOT ? "hot" : tone >= TONE_WARM ? "warm" : "calm");

  function setText(e, t) {
    if (e.textContent !== t) e.textContent = t;
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
        id, provider: provider || "", tone: 0, tMs: 0, points: [],
        f0Hz: null, f0Rel: null, energyDb: null, energyRel: null, baselineReady: false,
        signals: new Map(), // signal -> crossing event
        handoff: null, ended: false, row: null, stale: true,
      };
      calls.set(id, c);
      orderDirty = true;
    }
    if (provider) c.provider = provider;
    markDirty(c);
    return c;
  }

  function markDirty(c) {
    dirty.add(c);
    schedule();
  }

  function pushPoint(c, tMs, score) {
    const pts = c.points;
    if (pts.length && tMs <= pts[pts.length - 1][0]) return;
    pts.push([tMs, score]);
    const from = tMs - SPARK_WINDOW_MS;
    let drop = 0;
    while (drop < pts.length && pts[drop][0] < from) drop++;
    if (pts.length - drop > SPARK_MAX_POINTS) drop = pts.length - SPARK_MAX_POINTS;
    if (drop) pts.splice(0, drop);
  }

  // --- rows ---------------------------------------------------------------------------------

  function buildRow(c) {
    const tr = el("tr", "call");
    tr.dataset.callId = c.id;
    const idCell = el("td", "id-cell");
    const idEl = el("div", "call-id", c.id);
    idEl.title = c.id;
    const provEl = el("span", "provider");
    const durEl = el("span", "duration num");
    idCell.append(idEl, provEl, durEl);
    const toneCell = el("td", "num tone-cell");
    const toneEl = el("span", "tone", "0.00");
    const bar = el("span", "tone-bar");
    const barFill = el("i");
    bar.append(barFill);
    toneCell.append(toneEl, bar);
    const sparkCell = el("td", "spark-cell");
    const canvas = el("canvas", "spark");
    const dpr = window.devicePixelRatio || 1;
    canvas.width = SPARK_W * dpr; canvas.height = SPARK_H * dpr;
    canvas.style.width = SPARK_W + "px"; canvas.style.height = SPARK_H + "px";
    sparkCell.append(canvas);
    const f0El = el("td", "num delta f0");
    const enEl = el("td", "num delta energy");
    const sigCell = el("td", "sig-cell");
    const chips = el("div", "chips signals");
    sigCell.append(chips);
    tr.append(idCell, toneCell, sparkCell, f0El, enEl, sigCell);
    tr.addEventListener("click", () => toggleDetails(c.id));
    c.row = { tr, provEl, durEl, toneEl, barFill, canvas, f0El, enEl, chips, chipCount: 0, hasHandoffChip: false, details: null };
  }

  function drawSpark(c) {
    const cv = c.row.canvas;
    const ctx = cv.getContext("2d");
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, SPARK_W, SPARK_H);
    // Hot threshold guide.
    const yHot = SPARK_H - 2 - TONE_HOT * (SPARK_H - 4);
    ctx.strokeStyle = "#f3d3c4";
    ctx.setLineDash([2, 3]);
    ctx.beginPath(); ctx.moveTo(0, yHot); ctx.lineTo(SPARK_W, yHot); ctx.stroke();
    ctx.setLineDash([]);
    const pts = c.points;
    if (pts.length < 2) return;
    const end = pts[pts.length - 1][0];
    const start = end - SPARK_WINDOW_MS;
    const lvl = level(c.tone);
    ctx.strokeStyle = lvl === "hot" ? "#d9480f" : lvl === "warm" ? "#f08c00" : "#2b8a3e";
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    for (let i = 0; i < pts.length; i++) {
      const x = ((pts[i][0] - start) / SPARK_WINDOW_MS) * (SPARK_W - 2) + 1;
      const y = SPARK_H - 2 - Math.max(0, Math.min(1, pts[i][1])) * (SPARK_H - 4);
      if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
    }
    ctx.stroke();
  }

  function deltaCell(cell, abs, rel, relUnit, upAt) {
    if (!cell.firstChild) cell.append(el("span", "abs"), el("span", "rel"));
    const [absEl, relEl] = cell.children;
    const noBaseline = rel === null || rel === undefined;
    setText(absEl, abs === null || abs === undefined ? "–" : abs);
    setText(relEl, abs === null || abs === undefined ? "" : noBaseline ? "no baseline yet" : fmtDelta(rel, relUnit));
    relEl.classList.toggle("muted", noBaseline);
    cell.classList.toggle("up", !noBaseline && rel > upAt);
    cell.classList.toggle("down", !noBaseline && rel < -upAt);
  }

  function renderRow(c) {
    if (!c.row) buildRow(c);
    const r = c.row;
    r.provEl.textContent = c.instance ? c.provider + " · " + c.instance : c.provider;
    r.durEl.textContent = fmtDuration(c.tMs);
    r.toneEl.textContent = c.tone.toFixed(2);
    r.tr.dataset.tone = c.tone.toFixed(3);
    r.tr.dataset.level = level(c.tone);
    r.barFill.style.width = Math.round(Math.max(0, Math.min(1, c.tone)) * 100) + "%";
    deltaCell(r.f0El, c.f0Hz === null ? null : Math.round(c.f0Hz) + " Hz", c.f0Rel, "st", 1);
    deltaCell(r.enEl, c.energyDb === null ? null : c.energyDb.toFixed(0) + " dBFS", c.energyRel, "dB", 3);
    const names = Array.from(c.signals.keys());
    for (let i = r.chipCount; i < names.length; i++) {
      const s = c.signals.get(names[i]);
      const chip = el("span", "chip", label(names[i]));
      chip.dataset.signal = names[i];
      chip.title = label(names[i]) + " " + s.value.toFixed(2) + " ≥ " + s.threshold.toFixed(2) +
        " at " + fmtDuration(s.t_ms) + (s.evidence && s.evidence.text ? ': "' + s.evidence.text + '"' : "");
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
    if (r.details) fillDetails(c);
    c.stale = false;
    stats.rowRenders++;
  }

  function fillDetails(c) {
    const box = c.row.details.querySelector(".details-box");
    box.textContent = "";
    if (!c.signals.size && !c.handoff) box.append(el("div", "muted", "No signals yet."));
    for (const [name, s] of c.signals) {
      const line = el("div", "detail-line");
      line.append(el("span", "sig", label(name)), el("span", "num", s.value.toFixed(2) + " ≥ " + s.threshold.toFixed(2) + " at " + fmtDuration(s.t_ms)));
      const ev = s.evidence || {};
      if (ev.text) line.append(el("q", null, ev.text));
      box.append(line);
    }
    if (c.handoff) {
      const s = c.handoff.summary || {};
      box.append(el("div", "detail-line why-now", s.why_now || ""));
      if (s.prosody && s.prosody.description) box.append(el("div", "detail-line", "Caller sounds " + s.prosody.description + "."));
    }
  }

  function toggleDetails(id) {
    const prev = selected && calls.get(selected);
    if (prev && prev.row && prev.row.details) {
      prev.row.details.remove();
      prev.row.details = null;
      prev.row.tr.classList.remove("selected");
    }
    if (selected === id) { selected = null; return; }
    selected = id;
    const c = calls.get(id);
    if (!c || !c.row || !c.row.tr.isConnected) return;
    const tr = el("tr", "details");
    const td = el("td");
    td.colSpan = 6;
    td.append(el("div", "details-box"));
    tr.append(td);
    c.row.details = tr;
    c.row.tr.classList.add("selected");
    c.row.tr.after(tr);
    fillDetails(c);
  }

  function dropRow(c) {
    c.row.tr.remove();
    if (c.row.details) {
      c.row.details.remove();
      c.row.details = null;
      c.row.tr.classList.remove("selected");
      if (selected === c.id) selected = null;
    }
  }

  // Puts the MAX_ROWS hottest calls in the table in order, moving only rows out of place, and
  // takes the others out (they keep their state and come back rendered when they heat up).
  function reorder() {
    const sorted = Array.from(calls.values())
      .sort((a, b) => b.tone - a.tone || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const top = sorted.slice(0, MAX_ROWS);
    const next = new Set(top);
    for (const c of shown) if (!next.has(c) && c.row) dropRow(c);
    let cursor = tbody.firstChild;
    for (const c of top) {
      if (!c.row || c.stale) renderRow(c);
      for (const tr of c.row.details ? [c.row.tr, c.row.details] : [c.row.tr]) {
        if (tr === cursor) cursor = cursor.nextSibling;
        else tbody.insertBefore(tr, cursor);
      }
    }
    shown = next;
    const hidden = sorted.length - top.length;
    moreEl.hidden = hidden === 0;
    setText(moreEl, hidden + " calmer call" + (hidden === 1 ? "" : "s") + " not shown (the " + MAX_ROWS + " hottest are)");
  }

  function flush(now) {
    frameQueued = false;
    const t0 = performance.now();
    let n = 0;
    for (const c of dirty) {
      if (n >= MAX_ROWS_PER_FRAME) break;
      dirty.delete(c);
      if (calls.get(c.id) !== c) continue;
      // Calls without a row only keep their state; the next re-sort may bring them in.
      if (!shown.has(c)) { c.stale = true; continue; }
      renderRow(c);
      n++;
    }
    if (orderDirty && (t0 - lastReorder >= REORDER_MS - 100 || shown.size < Math.min(calls.size, 3))) {
      reorder();
      orderDirty = false;
      lastReorder = t0;
    }
    let active = 0, hot = 0;
    for (const c of calls.values()) {
      if (c.ended) continue;
      active++;
      if (c.tone >= TONE_HOT) hot++;
    }
    setText(statActive, String(active));
    setText(statHot, String(hot));
    setText(statHandoffs, String(handoffIds.size));
    emptyEl.hidden = calls.size > 0;
    handoffsEmpty.hidden = handoffCards.size > 0;
    // Rows beyond this frame's budget go in the next one; a re-sort waiting for its slot is
    // picked up by the interval below rather than by spinning frames.
    if (dirty.size) schedule();
    const t1 = performance.now();
    stats.flushes++;
    stats.maxFlushMs = Math.max(stats.maxFlushMs, t1 - t0);
    if (oldestUnrendered !== null && dirty.size === 0) {
      // The paint follows this frame; measure to its end.
      const since = oldestUnrendered;
      oldestUnrendered = null;
      requestAnimationFrame(() => {
        const l = stats.updateToRenderMs;
        l.push(performance.now() - since);
        if (l.length > 2000) l.splice(0, l.length - 2000);
      });
    }
  }

  function removeCall(c) {
    if (c.row) dropRow(c);
    if (selected === c.id) selected = null;
    calls.delete(c.id);
    shown.delete(c);
    dirty.delete(c);
    orderDirty = true;
    schedule();
  }

  // --- handoffs -----------------------------------------------------------------------------

  function deliveryText(d) {
    if (d.status === "delivered") return "delivered → " + d.target;
    if (d.status === "failed") return "failed → " + d.target + (d.attempts ? " (" + d.attempts + " attempts)" : "");
    return "delivering → " + d.target + "…";
  }

  function renderDeliveries(card, deliveries) {
    const box = card.querySelector(".deliveries");
    box.textContent = "";
    if (!deliveries.length) {
      const s = el("span", "delivery", "no delivery target configured");
      s.dataset.status = "none";
      box.append(s);
      return;
    }
    for (const d of deliveries) {
      const s = el("span", "delivery", deliveryText(d));
      s.dataset.status = d.status;
      s.dataset.target = d.target;
      s.title = [d.http_status ? "HTTP " + d.http_status : "", d.error || ""].filter(Boolean).join(" · ");
      box.append(s);
    }
  }

  function transferText(e) {
    if (e.event === "handoff_connected") return "connected → " + e.target + " in " + (e.time_to_agent_ms / 1000).toFixed(1) + " s";
    if (e.event === "handoff_fallback") return e.from + " " + e.reason.replace("_", " ") + " → " + e.to;
    if (e.event === "handoff_abandoned") return "caller hung up on hold after " + (e.waited_ms / 1000).toFixed(1) + " s";
    return "";
  }

  function renderTransfer(card, list) {
    const box = card.querySelector(".transfer");
    box.textContent = "";
    for (const e of list) {
      const s = el("span", "delivery", transferText(e));
      s.dataset.status = e.event === "handoff_connected" ? "delivered" : e.event === "handoff_abandoned" ? "failed" : "pending";
      box.append(s);
    }
  }

  function onTransfer(e) {
    const card = handoffCards.get(e.handoff_id);
    if (!card) return;
    card._transfer.push(e);
    renderTransfer(card, card._transfer);
  }

  // `h`: a handoff event, optionally with `deliveries` (from /v1/handoffs).
  function addHandoff(h) {
    handoffIds.add(h.handoff_id);
    const c = calls.get(h.call_id);
    if (c && !c.handoff) { c.handoff = h; markDirty(c); orderDirty = true; }
    let card = handoffCards.get(h.handoff_id);
    if (card) {
      if (h.deliveries) { card._deliveries = h.deliveries; renderDeliveries(card, h.deliveries); }
      return;
    }
    card = el("div", "handoff-card");
    card.dataset.handoffId = h.handoff_id;
    card.dataset.callId = h.call_id;
    const head = el("div", "head");
    const who = el("span", "call-id", h.call_id);
    who.title = "show the call";
    head.append(who, el("span", "when num", "at " + fmtDuration(h.t_ms) + " · score " + Number(h.score || 0).toFixed(2)));
    card.append(head);
    const s = h.summary || {};
    card.append(el("div", "why-now", s.why_now || ""));
    const kv = (k, v, cls) => {
      const d = el("div", cls);
      d.append(el("span", "k", k), document.createTextNode(v));
      return d;
    };
    if (s.caller_intent) card.append(kv("intent", s.caller_intent, "intent"));
    if (s.prosody && s.prosody.description) card.append(kv("voice", s.prosody.description, "voice"));
    if (s.whisper) card.append(kv("whisper", "“" + s.whisper + "”", "whisper"));
    if (h.route) card.append(kv("route", h.route.name + " → " + h.route.target + " (" + h.route.rule + ")", "route"));
    if (h.pre_call) card.append(kv("pre-call", "handed off before the conversation", "route"));
    const attrs = Object.entries(s.caller_attributes || {}).map(([k, v]) => k + "=" + v).join(" · ");
    if (attrs) card.append(kv("caller", attrs, "attrs"));
    const ul = el("ul", "reasons");
    for (const r of h.reasons || []) {
      const li = el("li");
      li.dataset.signal = r.signal;
      li.append(el("span", "sig", label(r.signal)));
      li.append(el("span", "num", r.value.toFixed(2) + " ≥ " + r.threshold.toFixed(2)));
      const ev = r.evidence || {};
      const vals = Object.entries(ev.values || {})
        .filter(([, v]) => typeof v === "number")
        .map(([k, v]) => label(k) + " " + (Number.isInteger(v) ? v : v.toFixed(1))).join(" · ");
      if (vals) li.append(el("span", "values", vals));
      if (ev.text) li.append(el("q", "evidence", ev.text));
      ul.append(li);
    }
    card.append(ul);
    card.append(el("div", "deliveries"));
    card._deliveries = h.deliveries || [];
    renderDeliveries(card, card._deliveries);
    card.append(el("div", "deliveries transfer"));
    card._transfer = h.transfer || [];
    renderTransfer(card, card._transfer);
    who.addEventListener("click", () => {
      const call = calls.get(h.call_id);
      if (call && call.row) {
        call.row.tr.scrollIntoView({ block: "center" });
        if (selected !== h.call_id) toggleDetails(h.call_id);
      }
    });
    // Newest first: cards from a snapshot arrive newest first, so they append.
    if (h._fromSnapshot) handoffsEl.append(card); else handoffsEl.prepend(card);
    handoffCards.set(h.handoff_id, card);
    while (handoffsEl.children.length > MAX_HANDOFF_CARDS) {
      const last = handoffsEl.lastChild;
      handoffCards.delete(last.dataset.handoffId);
      last.remove();
    }
    schedule();
  }

  function onDelivery(e, ok) {
    const card = handoffCards.get(e.handoff_id);
    if (!card) return;
    const list = card._deliveries;
    const d = { target: e.target, status: ok ? "delivered" : "failed", attempts: e.attempts, http_status: e.status, error: e.error };
    const i = list.findIndex((x) => x.target === e.target);
    if (i >= 0) list[i] = d; else list.push(d);
    renderDeliveries(card, list);
  }

  // --- data in ------------------------------------------------------------------------------

  async function getJson(path) {
    const res = await fetch(path, { headers });
    if (!res.ok) throw new Error("GET " + path + ": " + res.status);
    return res.json();
  }

  // In a fleet, calls held by other instances reach this page only through `/v1/calls` (their
  // holders publish scores once a second), so the fleet's rows are refreshed from it.
  let fleet = false;
  const FLEET_REFRESH_MS = 2000;
  const SINGLE_RECHECK_MS = 15000; // a lone gateway: only check now and then whether that changed

  // One row of `/v1/calls` into the call's state.
  function applyListed(v) {
    const c = getCall(v.call_id, v.provider);
    c.instance = v.instance || null;
    c.tMs = Math.max(c.tMs, v.t_ms || 0);
    if (v.scores && typeof v.scores.tone === "number") {
      c.tone = v.scores.tone;
      orderDirty = true;
      pushPoint(c, c.tMs, c.tone);
    }
    return c;
  }

  async function refreshFleet() {
    const list = await getJson("/v1/calls");
    fleet = list.some((v) => v.instance);
    if (!fleet) return;
    const seen = new Set();
    for (const v of list) {
      seen.add(v.call_id);
      const c = applyListed(v);
      if (v.handoff && !c.handoff) c.handoff = v.handoff;
    }
    for (const c of calls.values()) if (c.instance && !seen.has(c.id) && !c.ended) removeCall(c);
    schedule();
  }

  async function loadSnapshot() {
    const [list, recent] = await Promise.all([getJson("/v1/calls"), getJson("/v1/handoffs")]);
    const seen = new Set();
    for (const v of list) {
      seen.add(v.call_id);
      applyListed(v);
    }
    for (const c of calls.values()) if (!seen.has(c.id) && !c.ended) removeCall(c);
    fleet = list.some((v) => v.instance);
    for (const h of recent) {
      h._fromSnapshot = true;
      addHandoff(h);
    }
    schedule();
  }

  const handlers = {
    call_started(e) {
      const c = getCall(e.call_id, e.provider);
      c.tMs = e.t_ms;
    },
    prosody(e) {
      if (e.track !== "caller") return;
      const c = getCall(e.call_id);
      c.tMs = Math.max(c.tMs, e.t_ms);
      if (c.tone !== e.tone_score) orderDirty = true;
      c.tone = e.tone_score;
      c.f0Hz = e.f0_hz === undefined ? null : e.f0_hz;
      c.energyDb = e.energy_db;
      c.f0Rel = e.f0_rel_st === undefined ? null : e.f0_rel_st;
      c.energyRel = e.energy_rel_db === undefined ? null : e.energy_rel_db;
      c.baselineReady = !!e.baseline_ready;
      pushPoint(c, e.t_ms, e.tone_score);
    },
    signal(e) {
      const c = getCall(e.call_id);
      if (!c.signals.has(e.signal)) c.signals.set(e.signal, e);
    },
    handoff(e) {
      getCall(e.call_id);
      addHandoff(e);
    },
    handoff_delivered(e) { onDelivery(e, true); },
    handoff_failed(e) { onDelivery(e, false); },
    handoff_connected(e) { onTransfer(e); },
    handoff_fallback(e) { onTransfer(e); },
    handoff_abandoned(e) { onTransfer(e); },
    call_ended(e) {
      const c = calls.get(e.call_id);
      if (!c) return;
      c.ended = true;
      c.tMs = Math.max(c.tMs, e.duration_ms || 0);
      markDirty(c);
      setTimeout(() => { if (calls.get(c.id) === c) removeCall(c); }, ENDED_LINGER_MS);
    },
  };

  function onBatch(m) {
    const t = performance.now();
    let b;
    try { b = JSON.parse(m.data); } catch (err) { console.error("batch", err); return; }
    stats.batches++;
    for (const e of b.events || []) {
      stats.events++;
      const h = handlers[e.event];
      if (!h) continue;
      try { h(e); } catch (err) { console.error(e.event, err); }
    }
    if (oldestUnrendered === null) oldestUnrendered = t;
    if (b.resync) loadSnapshot().catch(showError);
  }

  function connect() {
    const url = "/v1/events?batch=1" + (token ? "&token=" + encodeURIComponent(token) : "");
    const es = new EventSource(url);
    es.onopen = () => {
      connEl.dataset.state = "live"; connEl.textContent = "live";
      loadSnapshot().catch(showError);
    };
    es.onerror = () => { connEl.dataset.state = "error"; connEl.textContent = "reconnecting"; };
    es.addEventListener("batch", onBatch);
  }

  function showError(err) {
    console.error(err);
    connEl.dataset.state = "error";
    connEl.textContent = String(err.message || err);
  }

  // --- review queue and feedback precision (from the call-record store) ---------------------

  const REVIEW_REFRESH_MS = 15000;
  const MAX_REVIEW_ROWS = 20;
  async function loadReviews() {
    const box = $("reviews");
    if (!box) return;
    let reviews, precision;
    try {
      [reviews, precision] = await Promise.all([getJson("/v1/reviews?limit=" + MAX_REVIEW_ROWS), getJson("/v1/reviews/precision")]);
    } catch (err) {
      // 503: the store is off; the panel says so and stops asking.
      setText($("reviews-empty"), "Review queue unavailable (" + (err.message || err) + ").");
      return false;
    }
    box.replaceChildren();
    for (const r of reviews) {
      const d = el("div", "review");
      d.append(el("span", "call-id", r.call_id), el("span", "num", " " + Number(r.score).toFixed(2) + " "));
      d.append(el("span", "why", (r.why || []).join("; ")));
      if (r.label) d.append(el("span", "label", r.label.needed ? " · labelled: needed" : " · labelled: not needed"));
      box.append(d);
    }
    $("reviews-empty").hidden = reviews.length > 0;
    const pbox = $("precision");
    pbox.replaceChildren();
    for (const p of precision) {
      pbox.append(el("div", "precision-row", label(p.reason) + ": " + p.needed + " of " + p.total + " needed (" + (100 * p.precision).toFixed(0) + " %)"));
    }
    return true;
  }
  loadReviews().then((ok) => { if (ok) setInterval(() => loadReviews().catch(showError), REVIEW_REFRESH_MS); });

  connect();
  (function fleetLoop() {
    setTimeout(() => refreshFleet().catch(showError).finally(fleetLoop), fleet ? FLEET_REFRESH_MS : SINGLE_RECHECK_MS);
  })();
  // Periodic re-sort even when only a few rows change, so the hottest stay on top.
  setInterval(() => { if (orderDirty) schedule(); }, REORDER_MS);
  schedule();
})();
