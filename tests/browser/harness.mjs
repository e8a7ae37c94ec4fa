// Shared parts of the browser checks: a real `warmline serve` on a free port with a token and a
// local webhook receiver, `warmline simulate` streams, and Debian's Chromium via playwright-core.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

export const TOKEN = "browser-token";
export const TWILIO_TOKEN = "browser-twilio-token";
export const REPO = path.resolve(path.dirname(new URL(import.meta.url).pathname), "../..");
export const BIN = process.env.WARMLINE_BIN || path.join(REPO, "target/release/warmline");

const children = new Set();
process.on("uncaughtException", (e) => fail(String((e && e.stack) || e)));
process.on("unhandledRejection", (e) => fail(String((e && e.stack) || e)));
let cleanups = [];

/// Stops everything at once: the servers and streams this run started, then the process (the
/// browser goes with it, playwright closes it on exit).
export function fail(msg) {
  console.error("FAIL: " + msg);
  for (const ch of children) {
    if (ch.exitCode === null) {
      ch.stopping = true;
      ch.kill("SIGTERM");
    }
  }
  for (const ch of children) if (ch.tail && ch.tail.length) console.error(ch.tail.slice(-10).join("\n"));
  process.exit(1);
}

export async function shutdown(code) {
  for (const ch of children) {
    if (ch.exitCode === null) {
      ch.stopping = true;
      ch.kill("SIGTERM");
    }
  }
  const done = Promise.all(cleanups.splice(0).map((c) => Promise.resolve().then(c).catch(() => {})));
  await Promise.race([done, sleep(5000)]);
  process.exit(code);
}

export function deadline(seconds, what) {
  const t = setTimeout(() => fail(`${what} did not finish within ${seconds} s`), seconds * 1000);
  t.unref();
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/// A webhook receiver answering 200; resolves to its base URL and the list of bodies it got.
export function webhookReceiver() {
  const seen = [];
  const server = http.createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += d));
    req.on("end", () => {
      seen.push(body);
      res.writeHead(200, { "content-type": "application/json" });
      res.end("{}");
    });
  });
  cleanups.push(() => new Promise((r) => {
    server.closeAllConnections();
    server.close(r);
  }));
  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => resolve({ url: `http://127.0.0.1:${server.address().port}`, seen }));
  });
}

function run(args, { name, onStdout } = {}) {
  const ch = spawn(BIN, args, { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, RUST_LOG: process.env.RUST_LOG || "warmline=warn" } });
  children.add(ch);
  const tail = [];
  const keep = (d) => {
    for (const line of String(d).split("\n")) if (line) tail.push(`[${name}] ${line}`);
    if (tail.length > 40) tail.splice(0, tail.length - 40);
  };
  ch.stdout.on("data", (d) => { keep(d); if (onStdout) onStdout(String(d)); });
  ch.stderr.on("data", keep);
  ch.tail = tail;
  return ch;
}

/// Starts `warmline serve` with a token-protected API and a webhook target; resolves once it
/// prints its address.
export async function startServer({ maxCalls = 2000 } = {}) {
  const dir = mkdtempSync(path.join(os.tmpdir(), "warmline-browser-"));
  const hook = await webhookReceiver();
  const port = await freePort();
  const cfg = path.join(dir, "warmline.toml");
  writeFileSync(cfg, [
    "[server]", `listen = "127.0.0.1:${port}"`, `max_calls = ${maxCalls}`,
    "[auth.twilio]", `auth_token = "${TWILIO_TOKEN}"`,
    "[auth.token]", `value = "${TOKEN}"`,
    "[store]", `path = "${path.join(dir, "warmline.db")}"`,
    "[bridge]", `outbox_dir = "${path.join(dir, "outbox")}"`,
    "[bridge.webhook]", `url = "${hook.url}/handoff"`, `secret = "browser-secret"`, "",
  ].join("\n"));
  let ready;
  const listening = new Promise((r) => (ready = r));
  const server = run(["serve", "--config", cfg], {
    name: "serve",
    onStdout: (s) => { if (s.includes("listening on http://")) ready(); },
  });
  server.on("exit", (code) => {
    if (!server.stopping) fail(`warmline serve exited early (${code})`);
  });
  cleanups.push(async () => { server.stopping = true; server.kill("SIGTERM"); });
  await Promise.race([listening, new Promise((_, rej) => setTimeout(() => rej(new Error("serve did not start in 20 s")), 20000))]);
  return { port, base: `http://127.0.0.1:${port}`, hook, pid: server.pid, proc: server };
}

/// Starts `warmline simulate` against the server; resolves to the child (its exit is awaited by
/// the caller if it cares).
export function simulate(srv, { wav, transcript, calls = 1, durationS, rampS = 0, json = false }) {
  const args = ["simulate", "--provider", "twilio", "--calls", String(calls), "--rate", "realtime",
    "--twilio-auth-token", TWILIO_TOKEN, "--token", TOKEN, "--ramp-s", String(rampS)];
  if (durationS) args.push("--duration-s", String(durationS));
  if (transcript) args.push("--transcript", transcript);
  if (json) args.push("--json", "--server-pid", String(srv.pid));
  if (wav) args.push(wav);
  args.push(`ws://127.0.0.1:${srv.port}`);
  const ch = run(args, { name: "simulate" });
  ch.output = "";
  ch.stdout.on("data", (d) => (ch.output += d));
  ch.done = new Promise((resolve) => ch.on("exit", (code) => resolve(code)));
  return ch;
}

export async function launchBrowser() {
  const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
  const userDataDir = mkdtempSync(path.join(os.tmpdir(), "warmline-chromium-"));
  const ctx = await chromium.launchPersistentContext(userDataDir, {
    executablePath,
    headless: true,
    viewport: { width: 1440, height: 900 },
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  cleanups.unshift(() => ctx.close());
  const page = ctx.pages()[0] || (await ctx.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  return { ctx, page, errors };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function wavSeconds(file) {
  // RIFF: find the `data` chunk and the byte rate in `fmt `.
  const b = readFileSync(file);
  let off = 12, byteRate = 0;
  while (off + 8 <= b.length) {
    const id = b.toString("ascii", off, off + 4);
    const size = b.readUInt32LE(off + 4);
    if (id === "fmt ") byteRate = b.readUInt32LE(off + 16);
    if (id === "data") return size / byteRate;
    off += 8 + size + (size % 2);
  }
  throw new Error(`${file}: no data chunk`);
}
