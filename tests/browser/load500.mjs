// Dashboard responsiveness with many live calls (not part of CI; numbers go to BENCHMARKS.md):
// `warmline serve`, `warmline simulate --calls N` in real time (the bundled synthetic call, which
// escalates and is handed off), and headless Chromium on the page. Reports main-thread long
// tasks, the time from an SSE batch's arrival to the frame that shows it, and the time from a
// click on a call to the frame with its details open.
//   node load500.mjs [calls=500] [duration_s=60]
import { REPO, fail, launchBrowser, shutdown, simulate, sleep, startServer, TOKEN, deadline } from "./harness.mjs";
import path from "node:path";
import { readFileSync } from "node:fs";

try {
  const calls = Number(process.argv[2] || 500);
  const durationS = Number(process.argv[3] || 60);
  const rampS = 10;
  deadline(durationS + rampS + 120, "the load check");
  const pct = (xs, p) => {
    if (!xs.length) return NaN;
    const s = [...xs].sort((a, b) => a - b);
    return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
  };
  const loadavg = () => readFileSync("/proc/loadavg", "utf8").trim();

  const srv = await startServer();
  const { page, errors } = await launchBrowser();
  await page.addInitScript(() => {
    window.__longTasks = [];
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) window.__longTasks.push([e.startTime, e.duration]);
    }).observe({ type: "longtask", buffered: true });
  });
  await page.goto(`${srv.base}/?token=${TOKEN}`);
  await page.waitForSelector('#conn[data-state="live"]');
  console.log(`loadavg before: ${loadavg()}`);
  // The bundled demo call (calm, then agitated at 24 s, looped) with its transcript: every
  // call escalates and is handed off.
  const wav = path.join(REPO, "fixtures/demo/escalating.wav");
  const transcript = path.join(REPO, "fixtures/demo/escalating.transcript.jsonl");
  const sim = simulate(srv, { wav, transcript, calls, durationS, rampS, json: true });
  sim.on("exit", (code) => { if (code !== 0) fail(`simulate exited ${code}`); });

  // Steady state: all calls open, tones rising, handoffs arriving.
  await sleep((rampS + 5) * 1000);
  const t0 = await page.evaluate(() => performance.now());
  const clicks = [];
  const windowS = Math.max(10, durationS - 15);
  const until = Date.now() + windowS * 1000;
  let rowsSeen = 0;
  while (Date.now() < until) {
    const r = await page.evaluate(async () => {
      const rows = document.querySelectorAll("tr.call");
      const row = rows[Math.floor(Math.random() * Math.min(rows.length, 40))];
      if (!row) return null;
      const start = performance.now();
      row.click();
      // Details are in the DOM synchronously; wait for the frame that paints them.
      await new Promise((res) => requestAnimationFrame(() => setTimeout(res, 0)));
      return { ms: performance.now() - start, rows: rows.length };
    });
    if (r) { clicks.push(r.ms); rowsSeen = Math.max(rowsSeen, r.rows); }
    await sleep(500);
  }
  const loadDuring = loadavg();
  const s = await page.evaluate((t0) => ({
    long: window.__longTasks.filter(([t]) => t >= t0).map(([, d]) => d),
    render: window.warmlineStats.updateToRenderMs.slice(),
    batches: window.warmlineStats.batches,
    events: window.warmlineStats.events,
    rowRenders: window.warmlineStats.rowRenders,
    maxFlushMs: window.warmlineStats.maxFlushMs,
    handoffs: document.getElementById("stat-handoffs").textContent,
  }), t0);
  await sim.done;
  let report = {};
  try { report = JSON.parse(sim.output); } catch { console.error(sim.tail.join("\n")); }
  const longTotal = s.long.reduce((a, b) => a + b, 0);
  console.log(JSON.stringify({
    calls, duration_s: durationS, window_s: windowS, rows_on_page_max: rowsSeen,
    sse_batches: s.batches, events: s.events, row_renders: s.rowRenders, handoffs_on_page: s.handoffs,
    update_to_render_ms: { p50: pct(s.render, 50), p95: pct(s.render, 95), max: Math.max(...s.render), n: s.render.length },
    click_to_paint_ms: { p50: pct(clicks, 50), p95: pct(clicks, 95), max: Math.max(...clicks), n: clicks.length },
    long_tasks: { count: s.long.length, total_ms: Math.round(longTotal), busy_pct: +(100 * longTotal / (windowS * 1000)).toFixed(1), max_ms: Math.round(Math.max(0, ...s.long)) },
    max_flush_ms: +s.maxFlushMs.toFixed(1),
    simulate: { opened: report.opened, completed: report.completed, failed: report.failed, peak_concurrent: report.peak_concurrent, server_handoffs: report.server && report.server.handoffs, frame_p99_ms: report.server && report.server.frame_latency && report.server.frame_latency.p99_ms },
    loadavg_during: loadDuring,
    page_errors: errors.length,
  }, null, 2));
  await shutdown(0);
} catch (e) {
  fail(String((e && e.stack) || e));
}
