/**
 * Faults end to end, through the built CLI: storage errors (GCS mode behind the fault proxy), the
 * database going away, FFmpeg killed, SIGTERM at each stage, the disk filling up. Each case checks
 * the row, the exit code, that nothing is left behind, and that a re-run of the same task succeeds.
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Storage } from "@google-cloud/storage";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type FaultProxy, startFaultProxy } from "../helpers/fault-proxy.js";
import { EMULATOR_PROJECT_ID, type GcsEmulator, startGcsEmulator } from "../helpers/gcs-emulator.js";
import { probeVideo } from "../helpers/measure.js";
import {
  blueprint,
  commandOf,
  descendants,
  expectNoSecrets,
  expectNoTemp,
  expectOutcome,
  type Harness,
  hardeningCase,
  jobEnv,
  type MoveSpec,
  type RunOptions,
  runCli,
  startHarness,
} from "./harness.js";
import { place, song, tinyClip } from "./media.js";

const BUCKET = "hardening-faults";
let h: Harness;
let emulator: GcsEmulator;
let proxy: FaultProxy;
let gcs: Storage;
let emulatorTmp: string;

const SHORT: MoveSpec[] = [
  { clip: "clips/red.mp4", duration: 0.5 },
  { clip: "clips/blue.mp4", duration: 0.5, transition: "crossfade" },
];
/** Long enough (720p, 24 crossfades) to be caught mid-render. */
const LONG: MoveSpec[] = Array.from({ length: 24 }, (_, i) => ({
  clip: i % 2 === 0 ? "clips/red.mp4" : "clips/blue.mp4",
  duration: 1,
  transition: "crossfade",
}));
const LONG_CONFIG = {
  output_config: { output_path: "", frame_rate: 30, resolution: "1280x720", preset: "medium" },
};

beforeAll(async () => {
  h = await startHarness("hardening-faults", { privateServer: true });
  // The emulator keeps blobs under os.tmpdir()/firebase: a private TMPDIR keeps other suites'
  // emulators from deleting ours (and ours from deleting theirs).
  emulatorTmp = mkdtempSync(path.join(os.tmpdir(), "hardening-emulator-"));
  process.env["TMPDIR"] = emulatorTmp;
  emulator = await startGcsEmulator();
  proxy = await startFaultProxy({ target: emulator.host, lifetimeMs: 900_000 });
  process.env["STORAGE_EMULATOR_HOST"] = emulator.host;
  gcs = new Storage({ projectId: EMULATOR_PROJECT_ID });
  const files = {
    "songs/song.m4a": song(2),
    "clips/red.mp4": tinyClip("red"),
    "clips/blue.mp4": tinyClip("blue"),
  };
  for (const [key, file] of Object.entries(files)) {
    place(h.root, key, file);
    await gcs.bucket(BUCKET).upload(file, { destination: key });
  }
});

afterAll(async () => {
  await proxy?.stop();
  await h?.stop();
  await emulator?.stop();
  if (emulatorTmp !== undefined) rmSync(emulatorTmp, { recursive: true, force: true });
});

beforeEach(() => {
  proxy.reset();
  // A leak is reported by the test that caused it, not by every later one.
  for (const name of readdirSync(h.tmp)) rmSync(path.join(h.tmp, name), { recursive: true, force: true });
  rmSync(path.join(h.root, "output"), { recursive: true, force: true });
});

function doc(taskId: string, moves: MoveSpec[], long = false): string {
  const output = `output/${taskId}.mp4`;
  const extra = long ? { output_config: { ...LONG_CONFIG.output_config, output_path: output } } : {};
  return JSON.stringify(blueprint(taskId, moves, extra, output));
}

function localEnv(taskId: string, text: string, extra: Record<string, string> = {}) {
  // The render pipeline without the clip cache: its own storage traffic (describe, entry
  // publishing) would change which request each scripted fault hits. The cache path is loaded
  // in load.test.ts and scale.load.ts.
  return jobEnv(h, taskId, text, { CLIP_CACHE: "off", ...extra });
}

function gcsEnv(taskId: string, text: string, extra: Record<string, string> = {}) {
  return {
    ...localEnv(taskId, text),
    GCS_BUCKET_NAME: BUCKET,
    GCP_PROJECT_ID: EMULATOR_PROJECT_ID,
    STORAGE_EMULATOR_HOST: proxy.host,
    ...extra,
  };
}

async function objectExists(key: string): Promise<boolean> {
  const [exists] = await gcs.bucket(BUCKET).file(key).exists();
  return exists;
}

/** Runs the same task again with no fault: it must complete. */
async function rerun(taskId: string, env: Record<string, string>, gcsMode: boolean): Promise<void> {
  proxy.reset();
  const again = await runCli({ env, killAfterMs: 120_000 });
  expect(again.code, again.stderr).toBe(0);
  const task = await h.row(taskId);
  expect(task.status).toBe("completed");
  expectNoTemp(h);
  if (gcsMode) expect(await objectExists(`output/${taskId}.mp4`)).toBe(true);
  else expect(probeVideo(path.join(h.root, `output/${taskId}.mp4`)).frames).toBeGreaterThan(0);
}

const DOWNLOAD = { method: "GET", path: /alt=media/ };
const UPLOAD = { path: /\/upload\// };

describe("storage faults (GCS mode, through the fault proxy)", () => {
  hardeningCase("gcs-503-transient", async () => {
    const taskId = await h.newTask();
    proxy.inject({ kind: "status", status: 503, times: 2, match: DOWNLOAD });
    const run = await runCli({ env: gcsEnv(taskId, doc(taskId, SHORT)), killAfterMs: 120_000 });
    await expectOutcome(h, run, taskId, "gcs-503-transient");
    expect(proxy.requests.filter((r) => r.outcome === 503)).toHaveLength(2);
    expect(await objectExists(`output/${taskId}.mp4`)).toBe(true);
  });

  hardeningCase("gcs-503-persistent", async () => {
    const taskId = await h.newTask();
    const env = gcsEnv(taskId, doc(taskId, SHORT));
    proxy.inject({ kind: "status", status: 503, times: 200, match: DOWNLOAD });
    const run = await runCli({ env, killAfterMs: 120_000 });
    const task = await expectOutcome(h, run, taskId, "gcs-503-persistent");
    expect(task.result?.["retryable"]).toBe(true);
    // Retries are counted once (SPEC §4): 3 attempts per key, not 3 × the SDK's own.
    const perKey = new Map<string, number>();
    for (const r of proxy.requests.filter((q) => q.outcome === 503)) {
      const key = r.url.split("?")[0]!;
      perKey.set(key, (perKey.get(key) ?? 0) + 1);
    }
    expect(Math.max(...perKey.values())).toBeLessThanOrEqual(3);
    expect(await objectExists(`output/${taskId}.mp4`)).toBe(false);
    await rerun(taskId, env, true);
  });

  hardeningCase(
    "gcs-reset",
    async () => {
      const taskId = await h.newTask();
      const env = gcsEnv(taskId, doc(taskId, SHORT));
      proxy.inject({ kind: "reset", afterBytes: 2000, times: 2, match: DOWNLOAD });
      const run = await runCli({ env, killAfterMs: 150_000 });
      expect(proxy.requests.filter((r) => r.outcome === "reset").length).toBeGreaterThan(0);
      await expectOutcome(h, run, taskId, "gcs-reset");
    },
    180_000,
  );

  hardeningCase("gcs-corrupt", async () => {
    const taskId = await h.newTask();
    proxy.inject({ kind: "corrupt", times: 1, match: DOWNLOAD });
    const env = gcsEnv(taskId, doc(taskId, SHORT));
    const run = await runCli({ env, killAfterMs: 120_000 });
    await expectOutcome(h, run, taskId, "gcs-corrupt");
    expect(proxy.requests.some((r) => r.fault === "corrupt")).toBe(true);
  });

  hardeningCase("gcs-slow", async () => {
    const taskId = await h.newTask();
    proxy.inject({ kind: "delay", ms: 3000, times: 3, match: DOWNLOAD });
    const run = await runCli({ env: gcsEnv(taskId, doc(taskId, SHORT)), killAfterMs: 120_000 });
    await expectOutcome(h, run, taskId, "gcs-slow");
    expect(run.elapsedMs).toBeGreaterThan(3000);
  });

  hardeningCase(
    "gcs-upload-503",
    async () => {
      const taskId = await h.newTask();
      const env = gcsEnv(taskId, doc(taskId, SHORT));
      proxy.inject({ kind: "status", status: 503, times: 200, match: UPLOAD });
      const run = await runCli({ env, killAfterMs: 100_000 });
      await expectOutcome(h, run, taskId, "gcs-upload-503");
      expect(await objectExists(`output/${taskId}.mp4`)).toBe(false);
      await rerun(taskId, env, true);
    },
    240_000,
  );
});

describe("SIGTERM at each stage", () => {
  async function terminated(id: string, env: Record<string, string>, options: Partial<RunOptions>) {
    const taskId = env["TASK_ID"]!;
    const run = await runCli({ env, killAfterMs: 60_000, ...options });
    expect(run.exitAfterSignalMs, "SIGTERM was sent").toBeDefined();
    expect(run.exitAfterSignalMs!).toBeLessThan(5000);
    const task = await expectOutcome(h, run, taskId, id);
    expect(task.result).toMatchObject({ code: "TERMINATED", retryable: true });
    expect(readdirSync(h.root).includes("output") ? readdirSync(path.join(h.root, "output")) : []).toEqual(
      [],
    );
    await rerun(taskId, env, env["GCS_BUCKET_NAME"] !== undefined);
  }

  hardeningCase("sigterm-validation", async () => {
    const taskId = await h.newTask();
    await terminated("sigterm-validation", localEnv(taskId, doc(taskId, SHORT)), {
      terminateWhen: /"message":"Job started"/,
    });
  });

  hardeningCase("sigterm-fetching", async () => {
    const taskId = await h.newTask();
    proxy.inject({ kind: "delay", ms: 20_000, times: 10, match: DOWNLOAD });
    await terminated("sigterm-fetching", gcsEnv(taskId, doc(taskId, SHORT)), {
      // Logged when the fetching stage begins; the downloads then hang for 20 s.
      terminateWhen: /"message":"Stage assembling done"/,
      terminateDelayMs: 800,
    });
  });

  hardeningCase("sigterm-rendering", async () => {
    const taskId = await h.newTask();
    await terminated("sigterm-rendering", localEnv(taskId, doc(taskId, LONG, true)), {
      terminateWhen: /"stage":"rendering"/,
      terminateDelayMs: 300,
    });
  });

  hardeningCase("sigterm-uploading", async () => {
    const taskId = await h.newTask();
    const env = gcsEnv(taskId, doc(taskId, SHORT));
    proxy.inject({ kind: "delay", ms: 20_000, times: 10, match: UPLOAD });
    const run = await runCli({
      env,
      killAfterMs: 60_000,
      // Logged when the uploading stage begins; the upload then hangs for 20 s.
      terminateWhen: /"message":"Stage rendering done"/,
      terminateDelayMs: 800,
    });
    expect(proxy.requests.some((r) => UPLOAD.path.test(r.url))).toBe(true);
    expect(run.exitAfterSignalMs, "SIGTERM was sent").toBeDefined();
    expect(run.exitAfterSignalMs!).toBeLessThan(5000);
    const task = await expectOutcome(h, run, taskId, "sigterm-uploading");
    expect(task.result).toMatchObject({ code: "TERMINATED", retryable: true });
    expect(await objectExists(`output/${taskId}.mp4`)).toBe(false);
    await rerun(taskId, env, true);
  });
});

describe("FFmpeg killed mid-render", () => {
  hardeningCase("ffmpeg-kill9", async () => {
    const taskId = await h.newTask();
    const env = localEnv(taskId, doc(taskId, LONG, true));
    let killed: number | undefined;
    let poll: NodeJS.Timeout | undefined;
    const run = await runCli({
      env,
      killAfterMs: 120_000,
      onLine: (line, pid) => {
        if (poll !== undefined || !line.includes('"stage":"rendering"')) return;
        // FFmpeg's own output goes to a pipe, not stdout: poll the process tree for it.
        poll = setInterval(() => {
          const ffmpeg = descendants(pid).find((p) => commandOf(p) === "ffmpeg");
          if (ffmpeg === undefined || killed !== undefined) return;
          killed = ffmpeg;
          process.kill(ffmpeg, "SIGKILL");
          clearInterval(poll);
        }, 25);
      },
    });
    clearInterval(poll);
    expect(killed, "an FFmpeg child was found and killed").toBeDefined();
    await expectOutcome(h, run, taskId, "ffmpeg-kill9");
    await rerun(taskId, env, false);
  });
});

describe("the database going away", () => {
  hardeningCase("db-down-at-start", async () => {
    const taskId = await h.newTask();
    const env = localEnv(taskId, doc(taskId, SHORT));
    await h.postgres.stopServer();
    const back = new Promise<void>((resolve, reject) =>
      setTimeout(() => h.postgres.startServer().then(resolve, reject), 1500),
    );
    const run = await runCli({ env, killAfterMs: 120_000 });
    await back;
    await expectOutcome(h, run, taskId, "db-down-at-start");
    expect(run.logs.some((l) => String(l["message"]).includes("Database unavailable"))).toBe(true);
  });

  hardeningCase("db-down-mid-render", async () => {
    const taskId = await h.newTask();
    const env = localEnv(taskId, doc(taskId, LONG.slice(0, 12), true));
    let back: Promise<void> | undefined;
    const run = await runCli({
      env,
      killAfterMs: 120_000,
      onLine: (line) => {
        if (back === undefined && line.includes('"stage":"rendering"')) {
          back = h.postgres
            .stopServer()
            .then(
              () =>
                new Promise((resolve, reject) =>
                  setTimeout(() => h.postgres.startServer().then(resolve, reject), 2500),
                ),
            );
        }
      },
    });
    await back;
    await expectOutcome(h, run, taskId, "db-down-mid-render");
  });

  hardeningCase("db-down-for-good", async () => {
    const taskId = await h.newTask();
    const env = localEnv(taskId, doc(taskId, SHORT));
    await h.postgres.stopServer();
    let run: Awaited<ReturnType<typeof runCli>>;
    try {
      run = await runCli({ env, killAfterMs: 120_000 });
    } finally {
      await h.postgres.startServer();
    }
    expect(run.code).toBe(1);
    expect(run.logs.some((l) => String(l["message"]).includes("Database unavailable"))).toBe(true);
    const task = await h.row(taskId);
    expect(task.status).toBe("pending");
    expectNoTemp(h);
    expect(readdirSync(h.root)).not.toContain("output");
    await rerun(taskId, env, false);
  });

  hardeningCase("db-wrong-password", async () => {
    const taskId = await h.newTask();
    const wrong = `Wrong-${h.password.slice(-8)}-Pw`;
    const run = await runCli({
      env: { ...localEnv(taskId, doc(taskId, SHORT)), DB_PASSWORD: wrong },
      killAfterMs: 60_000,
    });
    expect(run.code).toBe(1);
    expect((await h.row(taskId)).status).toBe("pending");
    expect(run.stdout + run.stderr).not.toContain(wrong);
    expect(run.stdout).toMatch(/password authentication failed/);
    expectNoTemp(h);
  });
});

describe("the disk filling up", () => {
  let canMount = false;
  const mounts: string[] = [];
  function tmpfs(dir: string, size: string): void {
    mkdirSync(dir, { recursive: true });
    execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { stdio: "ignore" });
    mounts.push(dir);
  }
  beforeAll(() => {
    const probe = mkdtempSync(path.join(os.tmpdir(), "hardening-mount-"));
    try {
      tmpfs(probe, "1m");
      canMount = true;
    } catch {
      canMount = false;
    }
  });
  afterAll(() => {
    for (const dir of mounts.reverse()) {
      try {
        execFileSync("umount", [dir], { stdio: "ignore" });
      } catch {
        // Already gone.
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });

  // Mounting needs root (or CAP_SYS_ADMIN); CI containers without it skip these two, loudly.
  hardeningCase("disk-full-temp", async () => {
    if (!canMount) return void console.warn("disk-full-temp SKIPPED: cannot mount a tmpfs here");
    const small = mkdtempSync(path.join(os.tmpdir(), "hardening-small-tmp-"));
    tmpfs(small, "64k");
    const taskId = await h.newTask();
    const env = localEnv(taskId, doc(taskId, LONG.slice(0, 6), true), { TMPDIR: small });
    const run = await runCli({ env, killAfterMs: 120_000 });
    await expectOutcome(h, run, taskId, "disk-full-temp", { checkTemp: false });
    expect(readdirSync(small)).toEqual([]);
    await rerun(taskId, { ...env, TMPDIR: h.tmp }, false);
  });

  hardeningCase("disk-full-output", async () => {
    if (!canMount) return void console.warn("disk-full-output SKIPPED: cannot mount a tmpfs here");
    const output = path.join(h.root, "output");
    tmpfs(output, "64k");
    const taskId = await h.newTask();
    const env = localEnv(taskId, doc(taskId, LONG.slice(0, 6), true));
    try {
      const run = await runCli({ env, killAfterMs: 120_000 });
      await expectOutcome(h, run, taskId, "disk-full-output");
      expect(readdirSync(output)).toEqual([]);
    } finally {
      execFileSync("umount", [output], { stdio: "ignore" });
      mounts.splice(mounts.indexOf(output), 1);
    }
    await rerun(taskId, env, false);
  });
});

describe("secrets", () => {
  it("the database password appears in no output and no row of this file", async () => {
    expect(await expectNoSecrets(h)).toBeGreaterThan(20);
  });
});
