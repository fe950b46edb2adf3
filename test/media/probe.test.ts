import { describe, expect, it } from "vitest";
import { parseProbe } from "../../src/media/media-info.js";
import { probeMedia } from "../../src/media/probe.js";
import { clipFixture, makeBrokenFixtures, makeSongFixture } from "../helpers/fixtures.js";

describe("probeMedia (real ffprobe)", () => {
  it("reads size, frame rate, codecs and streams", async () => {
    const info = await probeMedia(clipFixture("yellow"), "clips/yellow.mp4");
    expect(info).toMatchObject({
      hasVideo: true,
      hasAudio: false,
      width: 256,
      height: 144,
      sar: 1,
      rotation: 0,
      displayWidth: 256,
      displayHeight: 144,
      fps: 60,
      variableFrameRate: false,
      videoCodec: "h264",
    });
    expect(info.duration).toBeCloseTo(1.5, 1);
  });

  it("applies SAR and rotation to the display size", async () => {
    const anamorphic = await probeMedia(clipFixture("anamorphic"), "a.mp4");
    expect(anamorphic).toMatchObject({ width: 240, height: 240, displayWidth: 320, displayHeight: 240 });
    expect(anamorphic.sar).toBeCloseTo(4 / 3, 5);
    const rotated = await probeMedia(clipFixture("rotated"), "r.mp4");
    expect(rotated).toMatchObject({ width: 320, height: 176, displayWidth: 176, displayHeight: 320 });
    expect([90, 270]).toContain(rotated.rotation);
  });

  it("flags variable frame rate and reads audio streams", async () => {
    expect(await probeMedia(clipFixture("vfr"), "v.mp4")).toMatchObject({ variableFrameRate: true });
    const withAudio = await probeMedia(clipFixture("withAudio"), "w.mp4");
    expect(withAudio).toMatchObject({
      hasAudio: true,
      audioCodec: "aac",
      audioSampleRate: 44100,
      audioChannels: 1,
    });
    const song = await probeMedia(makeSongFixture("song-10s", 10), "songs/s.m4a", { kind: "song" });
    expect(song).toMatchObject({ hasVideo: false, hasAudio: true, audioSampleRate: 48000, audioChannels: 2 });
  });

  it("rejects a text file named .mp4 and an empty file with MEDIA_INVALID naming the key, no paths", async () => {
    const { text, empty } = makeBrokenFixtures();
    const textError = await probeMedia(text, "clips/x.mp4", { kind: "clip" }).catch((err: unknown) => err);
    expect(textError).toMatchObject({
      code: "MEDIA_INVALID",
      message: expect.stringMatching(
        /^Clip clips\/x\.mp4 is not a readable video: it is not in a container format the job opens \(MP4\/MOV/,
      ),
    });
    await expect(probeMedia(empty, "clips/empty.mp4")).rejects.toMatchObject({
      code: "MEDIA_INVALID",
      message: "clips/empty.mp4 is not a readable video or audio file: the file is empty",
    });
    const generic = await probeMedia(text, "clips/x.mp4").catch((err: unknown) => err);
    expect((generic as Error).message).toMatch(/^clips\/x\.mp4 is not a readable video or audio file: /);
    expect((generic as Error).message).not.toMatch(/\.cache|fixtures/);
  });

  it("rejects a clip without video and a song without audio when the kind is given", async () => {
    await expect(
      probeMedia(makeSongFixture("song-10s", 10), "clips/s.mp4", { kind: "clip" }),
    ).rejects.toMatchObject({
      code: "MEDIA_INVALID",
      message: "Clip clips/s.mp4 is not a readable video: it has no video stream",
    });
    await expect(probeMedia(clipFixture("red"), "songs/red.mp4", { kind: "song" })).rejects.toMatchObject({
      code: "MEDIA_INVALID",
      message: "Song songs/red.mp4 has no audio stream",
    });
  });
});

describe("parseProbe (pure)", () => {
  it("reads the display matrix rotation and NTSC rates", () => {
    const info = parseProbe(
      {
        streams: [
          {
            codec_type: "video",
            codec_name: "h264",
            width: 1920,
            height: 1080,
            sample_aspect_ratio: "1:1",
            r_frame_rate: "30000/1001",
            avg_frame_rate: "30000/1001",
            duration: "10.01",
            side_data_list: [{ side_data_type: "Display Matrix", rotation: -90 }],
          },
        ],
        format: { duration: "10.02" },
      },
      "clips/phone.mov",
    );
    expect(info).toMatchObject({ rotation: 90, displayWidth: 1080, displayHeight: 1920, duration: 10.01 });
    expect(info.fps).toBeCloseTo(29.97, 2);
  });

  it("treats a rotate tag as clockwise and ignores cover art", () => {
    const info = parseProbe(
      {
        streams: [
          { codec_type: "video", width: 600, height: 600, disposition: { attached_pic: 1 } },
          {
            codec_type: "video",
            width: 640,
            height: 480,
            r_frame_rate: "30/1",
            avg_frame_rate: "24/1",
            tags: { rotate: "270" },
          },
        ],
        format: { duration: "3" },
      },
      "k",
    );
    expect(info).toMatchObject({
      width: 640,
      rotation: 270,
      displayWidth: 480,
      variableFrameRate: true,
      duration: 3,
    });
  });

  it("rejects files without streams or duration, naming the key", () => {
    expect(() => parseProbe({ streams: [] }, "clips/x.mp4")).toThrow(
      "clips/x.mp4 is not a readable video or audio file: it has no video or audio stream",
    );
    expect(() => parseProbe({ streams: [{ codec_type: "audio" }], format: {} }, "songs/s.mp3")).toThrow(
      /duration is unknown/,
    );
  });
});
