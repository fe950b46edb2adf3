/**
 * Untrusted media through the real CLI (docs/THREAT_MODEL.md): files that make FFmpeg open other
 * files (playlists, manifests, concat scripts) or cost more memory than the job has. A marker video
 * (magenta) and a marker tone live outside the storage root: they must appear in no output and no
 * clip-cache entry.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { deflateSync } from "node:zlib";
import { Storage as GcsClient } from "@google-cloud/storage";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { EMULATOR_PROJECT_ID, startGcsEmulator } from "../helpers/gcs-emulator.js";
import { frameStats } from "../helpers/measure.js";
import {
  blueprint,
  expectNoOutput,
  expectNoSecrets,
  expectOutcome,
  ffmpeg,
  type Harness,
  hardeningCase,
  jobEnv,
  type Run,
  runCli,
  startHarness,
} from "./harness.js";
import { place, song, tinyClip } from "./media.js";

let h: Harness;
let outside: string;
let markerVideo: string;
let markerTone: string;

const MiB = 1024 * 1024;

beforeAll(async () => {
  h = await startHarness("hardening-trust");
  outside = mkdtempSync(path.join(os.tmpdir(), "hardening-outside-"));
  markerVideo = path.join(outside, "marker.mp4");
  markerTone = path.join(outside, "marker.mp3");
  ffmpeg([
    "-f",
    "lavfi",
    "-i",
    "color=c=magenta:s=160x120:r=30:d=1",
    "-c:v",
    "libx264",
    "-pix_fmt",
    "yuv420p",
    markerVideo,
  ]);
  ffmpeg(["-f", "lavfi", "-i", "sine=f=1234:d=2", "-c:a", "libmp3lame", markerTone]);
  place(h.root, "songs/song.m4a", song(2));
  place(h.root, "clips/red.mp4", tinyClip("red"));
});

// Completed runs leave their output; each case asserts its own produced none.
beforeEach(() => rmSync(path.join(h.root, "output"), { recursive: true, force: true }));

afterAll(async () => {
  await h?.stop();
  if (outside !== undefined) rmSync(outside, { recursive: true, force: true });
});

function write(key: string, content: string | Buffer): void {
  const file = path.join(h.root, key);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
}

/** Runs a one- or two-move job with `clip` (and `songKey`) and checks the case's outcome. */
async function attack(id: string, clip: string, songKey = "songs/song.m4a", sampleRss = false) {
  const taskId = await h.newTask();
  const doc = blueprint(
    taskId,
    [
      { clip: "clips/red.mp4", duration: 0.5 },
      { clip, duration: 0.5 },
    ],
    { audio_path: songKey },
  );
  const run = await runCli({ env: jobEnv(h, taskId, doc), sampleRss, killAfterMs: 90_000 });
  const task = await expectOutcome(h, run, taskId, id, { outputKey: `output/${taskId}.mp4` });
  expect(task.error).toContain(clip === "clips/red.mp4" ? songKey : clip);
  expectNoOutput(h);
  expectNoMarker();
  return run;
}

/** No file under the root's output and cache shows the marker colour or carries the marker tone. */
function expectNoMarker(): void {
  const files: string[] = [];
  const walk = (dir: string) => {
    if (!existsSync(dir)) return;
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (/\.(mp4|mkv|mov|webm)$/.test(entry.name)) files.push(full);
    }
  };
  walk(path.join(h.root, ".clip-cache"));
  walk(path.join(h.root, "output"));
  for (const file of files) {
    for (const frame of frameStats(file)) {
      // Magenta: both chroma planes high (red has V high and U low).
      expect(frame.u > 180 && frame.v > 180, `${file} shows the marker`).toBe(false);
    }
    const streams = execFileSync(
      "ffprobe",
      ["-v", "error", "-show_entries", "stream=codec_type", "-of", "csv=p=0", file],
      {
        encoding: "utf8",
      },
    );
    expect(streams).not.toContain("audio");
  }
}

describe("media that references other files", () => {
  hardeningCase(
    "trust-hls-clip",
    async () => {
      const segment = (line: string) =>
        `#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:1.0,\n${line}\n#EXT-X-ENDLIST\n`;
      write("clips/hls-absolute.mp4", segment(markerVideo));
      write("clips/hls-relative.mp4", segment(path.relative(path.join(h.root, "clips"), markerVideo)));
      write("clips/hls-url.mp4", segment(`file:${markerVideo}`));
      for (const clip of ["clips/hls-absolute.mp4", "clips/hls-relative.mp4", "clips/hls-url.mp4"]) {
        await attack("trust-hls-clip", clip);
      }

      // GCS mode: the playlist is an object; its segment a file on the job's machine.
      const emulator = await startGcsEmulator();
      try {
        process.env["STORAGE_EMULATOR_HOST"] = emulator.host;
        const bucket = new GcsClient({ projectId: EMULATOR_PROJECT_ID }).bucket("trust-media");
        await bucket.upload(path.join(h.root, "songs/song.m4a"), { destination: "songs/song.m4a" });
        await bucket.upload(path.join(h.root, "clips/red.mp4"), { destination: "clips/red.mp4" });
        await bucket.file("clips/hls.mp4").save(segment(markerVideo));
        const taskId = await h.newTask();
        const doc = blueprint(taskId, [
          { clip: "clips/red.mp4", duration: 0.5 },
          { clip: "clips/hls.mp4", duration: 0.5 },
        ]);
        const run = await runCli({
          env: jobEnv(h, taskId, doc, {
            GCS_BUCKET_NAME: "trust-media",
            GCP_PROJECT_ID: EMULATOR_PROJECT_ID,
            STORAGE_EMULATOR_HOST: emulator.host,
          }),
          killAfterMs: 90_000,
        });
        const task = await expectOutcome(h, run, taskId, "trust-hls-clip");
        expect(task.error).toContain("clips/hls.mp4");
        const [objects] = await bucket.getFiles();
        const names = objects.map((o) => o.name);
        // Nothing rendered, nothing normalised from the outside video.
        expect(names.filter((name) => name.startsWith("output/"))).toEqual([]);
        for (const name of names.filter((n) => n.startsWith(".clip-cache/") && n.endsWith(".mp4"))) {
          const local = path.join(outside, path.basename(name));
          await bucket.file(name).download({ destination: local });
          for (const frame of frameStats(local)) expect(frame.u > 180 && frame.v > 180).toBe(false);
        }
      } finally {
        await emulator.stop();
      }
    },
    180_000,
  );

  hardeningCase("trust-dash-clip", async () => {
    write(
      "clips/dash.mp4",
      [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT1S" minBufferTime="PT1S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">',
        `  <BaseURL>file://${outside}/</BaseURL>`,
        '  <Period><AdaptationSet mimeType="video/mp4"><Representation id="1" bandwidth="100000" width="160" height="120">',
        "    <BaseURL>marker.mp4</BaseURL>",
        "  </Representation></AdaptationSet></Period>",
        "</MPD>",
        "",
      ].join("\n"),
    );
    await attack("trust-dash-clip", "clips/dash.mp4");
  });

  hardeningCase("trust-ffconcat-symlink", async () => {
    mkdirSync(path.join(h.root, "clips"), { recursive: true });
    symlinkSync(markerVideo, path.join(h.root, "clips/link.mp4"));
    write("clips/concat.mp4", "ffconcat version 1.0\nfile 'link.mp4'\n");
    await attack("trust-ffconcat-symlink", "clips/concat.mp4");
  });

  hardeningCase("trust-hls-song", async () => {
    write("songs/hls.mp3", `#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:2.0,\n${markerTone}\n#EXT-X-ENDLIST\n`);
    await attack("trust-hls-song", "clips/red.mp4", "songs/hls.mp3");
  });
});

describe("media that costs more than the job has", () => {
  hardeningCase("trust-playlist-loop", async () => {
    const loop = "#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nloop.mp4\n";
    write("clips/loop.mp4", `${loop}#${"x".repeat(51 - loop.length - 2)}\n`);
    expect(Buffer.byteLength(`${loop}#${"x".repeat(51 - loop.length - 2)}\n`)).toBe(51);
    const run = await attack("trust-playlist-loop", "clips/loop.mp4", undefined, true);
    console.info(
      `51-byte self-referencing playlist: peak RSS ${Math.round((run.peakRssBytes ?? 0) / MiB)} MiB`,
    );
    expect(run.peakRssBytes ?? 0).toBeGreaterThan(0);
    expect(run.peakRssBytes!).toBeLessThan(512 * MiB);
  });

  hardeningCase("trust-huge-picture", async () => {
    // A 1-bit 16000×16000 PNG (zeros deflate to ~30 KB), muxed into Matroska without decoding.
    const png = path.join(outside, "huge.png");
    writeFileSync(png, hugePng(16000, 16000));
    const mkv = path.join(outside, "huge.mkv");
    ffmpeg(["-f", "png_pipe", "-i", png, "-c", "copy", "-f", "matroska", mkv]);
    place(h.root, "clips/huge.mkv", mkv);
    const run = await attack("trust-huge-picture", "clips/huge.mkv", undefined, true);
    console.info(`16000×16000 PNG in Matroska: peak RSS ${Math.round((run.peakRssBytes ?? 0) / MiB)} MiB`);
    expect(run.peakRssBytes!).toBeLessThan(512 * MiB);
  });
});

/** A valid black 1-bit greyscale PNG of `width`×`height`. */
function hugePng(width: number, height: number): Buffer {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf: Buffer) => {
    let c = 0xffffffff;
    for (const byte of buf) c = crcTable[(c ^ byte) & 0xff]! ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
    const out = Buffer.alloc(12 + data.length);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc(body), 8 + data.length);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 1; // bit depth
  ihdr[9] = 0; // greyscale
  const raw = Buffer.alloc((Math.ceil(width / 8) + 1) * height);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", deflateSync(raw)),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

describe("concurrent executions of one task", () => {
  hardeningCase("trust-duplicate-execution", async () => {
    const taskId = await h.newTask();
    const doc = blueprint(taskId, [
      { clip: "clips/red.mp4", duration: 0.5 },
      { clip: "clips/red.mp4", duration: 0.5, transition: "crossfade" },
    ]);
    const env = jobEnv(h, taskId, doc);
    let second: Run | undefined;
    let rowBefore = "";
    let rowAfter = "";
    const rowText = async () =>
      (
        await h.pool.query("select row_to_json(t)::text as t from choreography_tasks t where task_id = $1", [
          taskId,
        ])
      ).rows[0].t as string;
    let paused: Promise<void> | undefined;
    const first = await runCli({
      env,
      killAfterMs: 120_000,
      onLine: (line, pid) => {
        if (paused !== undefined || !line.includes("Stage fetching done")) return;
        process.kill(pid, "SIGSTOP");
        paused = (async () => {
          try {
            rowBefore = await rowText();
            second = await runCli({ env, killAfterMs: 60_000 });
            rowAfter = await rowText();
          } finally {
            process.kill(pid, "SIGCONT");
          }
        })();
      },
    });
    await paused;
    expect(second?.code, second?.stderr).toBe(0);
    expect(second?.stdout).toContain("is being processed by another execution");
    expect(rowAfter).toBe(rowBefore);
    const task = await expectOutcome(h, first, taskId, "trust-duplicate-execution");
    expect(task.status).toBe("completed");

    const done = await rowText();
    const third = await runCli({ env, killAfterMs: 60_000 });
    expect(third.code).toBe(0);
    expect(third.stdout).toContain("already completed");
    expect(await rowText()).toBe(done);
  });
});

describe("ids and output paths the job refuses", () => {
  async function invalidRun(
    id: string,
    mutate: (doc: Record<string, unknown>, taskId: string) => void,
    error: string,
  ) {
    const taskId = await h.newTask();
    const doc = blueprint(taskId, [{ clip: "clips/red.mp4", duration: 0.5 }]);
    mutate(doc, taskId);
    const run = await runCli({ env: jobEnv(h, taskId, doc), killAfterMs: 60_000 });
    const task = await expectOutcome(h, run, taskId, id);
    expect(task.error).toContain(error);
    expectNoOutput(h);
  }

  hardeningCase("trust-task-id", async () => {
    await invalidRun(
      "trust-task-id",
      (doc) => (doc["task_id"] = "x".repeat(37)),
      "expected at most 36 characters",
    );
    await invalidRun("trust-task-id", (doc) => (doc["task_id"] = "abc\u0000def"), "no control characters");
  });

  hardeningCase("trust-output-reserved", async () => {
    const output = (p: string) => (doc: Record<string, unknown>) => {
      (doc["output_config"] as Record<string, unknown>)["output_path"] = p;
    };
    await invalidRun("trust-output-reserved", output(".clip-cache/x.mp4"), "outside .clip-cache/");
    await invalidRun("trust-output-reserved", output("data/.pgdata/data/x.mp4"), "outside .pgdata/");
    await invalidRun("trust-output-reserved", output("clips/red.mp4/x.mp4"), "inside moves[0].video_path");
    await invalidRun(
      "trust-output-reserved",
      (doc) => {
        output("clips.mp4")(doc);
        (doc["moves"] as Array<Record<string, unknown>>)[0]!["video_path"] = "clips.mp4/red.mp4";
      },
      "containing moves[0].video_path",
    );
  });
});

describe("secrets", () => {
  it("the database password appears in no output and no row of this file", async () => {
    expect(await expectNoSecrets(h)).toBeGreaterThan(0);
  });
});
