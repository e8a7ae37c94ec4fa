// Browser test of the supervisor dashboard: a real `warmline serve`, an escalating call from
// ../shared/data streamed in real time by `warmline simulate` with its transcript, and headless
// Chromium on the token-protected page. Asserts that the call appears, its tone rises, and the
// handoff shows with its reasons and a delivered webhook; saves a screenshot.
//
// Env: WARMLINE_DATA (default ../shared/data), WARMLINE_BIN, CHROMIUM, SCREENSHOT (output PNG),
// WARMLINE_BROWSER_CALL (basename under calls/, default ravdess_01_escalating),
// WARMLINE_BROWSER_SCENE=1 adds calm and second escalating calls for a fuller screenshot.
import path from "node:path";
import { existsSync } from "node:fs";
import os from "node:os";
import {
  REPO, TOKEN, deadline, fail, launchBrowser, shutdown, simulate, sleep, startServer, wavSeconds,
} from "./harness.mjs";

try {
  const data = process.env.WARMLINE_DATA || path.resolve(REPO, "../shared/data");
  const callName = process.env.WARMLINE_BROWSER_CALL || "ravdess_01_escalating";
  const wav = path.join(data, "calls", callName + ".wav");
  const transcript = path.join(data, "calls", callName + ".transcript.jsonl");
  const screenshot = process.env.SCREENSHOT || path.join(os.tmpdir(), "warmline-dashboard.png");
  const scene = process.env.WARMLINE_BROWSER_SCENE === "1";

  for (const f of [wav, transcript]) if (!existsSync(f)) fail(`missing ${f} (set WARMLINE_DATA)`);
  deadline(240, "the dashboard browser test");

  const log = (...a) => console.log(`[${(performance.now() / 1000).toFixed(1)}s]`, ...a);

  const srv = await startServer();
  log(`warmline serve on ${srv.base}`);
  const { page, errors } = await launchBrowser();
  await page.goto(`${srv.base}/?token=${TOKEN}`);
  await page.waitForSelector('#conn[data-state="live"]', { timeout: 15000 });
  log("dashboard connected");

  // The call under test: the whole recording, in real time, with its transcript.
  const seconds = Math.ceil(wavSeconds(wav));
  const sim = simulate(srv, { wav, transcript, durationS: seconds });
  const row = await page.waitForSelector("tr.call", { timeout: 15000 });
  const callId = await row.getAttribute("data-call-id");
  log(`call ${callId} appeared (${callName}, ${seconds} s)`);

  if (scene) {
    // Company for the screenshot: calm callers (audio only) and a second caller heating up.
    const calls = (n) => path.join(data, "calls", n);
    for (const n of ["ravdess_02_calm", "ravdess_03_calm", "ravdess_05_calm"]) {
      simulate(srv, { wav: calls(n + ".wav"), durationS: seconds });
    }
    simulate(srv, { wav: calls("ravdess_04_escalating.wav"), transcript: calls("ravdess_04_escalating.transcript.jsonl"), durationS: seconds });
  }

  // Follow the row's tone as the page shows it until its handoff card appears.
  const sel = `tr.call[data-call-id="${callId}"]`;
  const card = `.handoff-card[data-call-id="${callId}"]`;
  const tones = [];
  let handoffAt = null;
  while (handoffAt === null) {
    const s = await page.evaluate(([sel, card]) => {
      const r = document.querySelector(sel);
      return { tone: r ? Number(r.dataset.tone) : null, card: !!document.querySelector(card) };
    }, [sel, card]);
    if (s.tone !== null) tones.push(s.tone);
    if (s.card) handoffAt = performance.now();
    else if (sim.exitCode !== null) fail(`the call ended without a handoff on the page; tones seen: ${tones.map((t) => t.toFixed(2)).join(" ")}`);
    else await sleep(250);
  }
  log(`handoff card shown; tone went ${tones[0].toFixed(2)} → max ${Math.max(...tones).toFixed(2)}`);

  // The tone rose: the calm first part of the call (its first third) sits well below the peak
  // the page showed before the handoff.
  const first = tones.slice(0, Math.max(4, Math.floor(tones.length / 3))).sort((a, b) => a - b);
  const calm = first[Math.floor(first.length / 2)];
  const peak = Math.max(...tones);
  const series = () => tones.filter((_, i) => i % 8 === 0).map((t) => t.toFixed(2)).join(" ");
  if (!(calm < 0.5)) fail(`the call did not start calm (median ${calm.toFixed(2)}): ${series()}`);
  if (!(peak >= 0.6 && peak >= calm + 0.3)) fail(`tone did not rise (calm ${calm.toFixed(2)}, peak ${peak.toFixed(2)}): ${series()}`);
  log(`tone: calm median ${calm.toFixed(2)}, peak ${peak.toFixed(2)}`);

  // The handoff: the row is flagged, the card has a reason list and a summary, and the webhook
  // delivery turns green.
  const rowState = await page.$eval(sel, (r) => ({ handoff: r.dataset.handoff, chip: !!r.querySelector('.chip.handoff') }));
  if (rowState.handoff !== "1" || !rowState.chip) fail(`the call's row is not marked handed off: ${JSON.stringify(rowState)}`);
  const reasons = await page.$$eval(`${card} .reasons li`, (lis) => lis.map((li) => ({ signal: li.dataset.signal, text: li.textContent })));
  if (!reasons.length) fail("the handoff card lists no reasons");
  const whyNow = await page.$eval(`${card} .why-now`, (e) => e.textContent);
  if (!whyNow.trim()) fail("the handoff card has no why-now summary");
  log(`reasons: ${reasons.map((r) => r.signal).join(", ")}; why now: ${whyNow}`);
  await page.waitForSelector(`${card} .delivery[data-status="delivered"][data-target="webhook"]`, { timeout: 15000 })
    .catch(() => fail("the webhook delivery never showed as delivered"));
  if (srv.hook.seen.length < 1) fail("the webhook receiver got nothing");
  log("delivery shown as delivered");

  // Clicking the row opens its signal details.
  await page.click(sel);
  await page.waitForSelector(`${sel} + tr.details .detail-line`, { timeout: 5000 })
    .catch(() => fail("clicking the call did not open its details"));

  if (scene) await sleep(4000);
  await page.screenshot({ path: screenshot });
  log(`screenshot: ${screenshot}`);
  if (errors.length) fail(`the page logged errors:\n${errors.join("\n")}`);
  console.log("PASS dashboard: call appeared, tone rose, handoff shown with reasons and delivery");
  await shutdown(0);
} catch (e) {
  fail(String((e && e.stack) || e));
}
