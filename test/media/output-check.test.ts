import { describe, expect, it } from "vitest";
import {
  checkPackets,
  decodeRanges,
  fromKeyframes,
  type OutputPiece,
  type ProbedPacket,
} from "../../src/media/output-check.js";

const FPS = 30;
/** 60 frames, a keyframe every 15, audio alongside. */
function packets(edit: (video: ProbedPacket[]) => void = () => {}): ProbedPacket[] {
  const video: ProbedPacket[] = Array.from({ length: 60 }, (_, n) => ({
    stream: "video",
    pts: n / FPS,
    dts: n / FPS,
    keyframe: n % 15 === 0,
    hash: `h${n}`,
  }));
  edit(video);
  const audio: ProbedPacket[] = Array.from({ length: 10 }, (_, n) => ({
    stream: "audio",
    pts: n * 0.2,
    dts: n * 0.2,
    keyframe: true,
  }));
  return [...video, ...audio];
}
const pieces: OutputPiece[] = [
  { startFrame: 0, frames: 15, encoded: true },
  {
    startFrame: 15,
    frames: 30,
    encoded: false,
    copy: {
      key: "clips/a.mp4",
      fromFrame: 30,
      packetHashes: Array.from({ length: 90 }, (_, i) => `h${i - 15}`),
    },
  },
  { startFrame: 45, frames: 15, encoded: true },
];

describe("packet-level output check", () => {
  it("passes an output made as planned", () => {
    expect(checkPackets(packets(), pieces, 60, FPS)).toEqual([]);
  });
  it("finds a piece that starts without a keyframe, a copied frame that differs, a gap, reordered dts", () => {
    expect(
      checkPackets(
        packets((v) => (v[45]!.keyframe = false)),
        pieces,
        60,
        FPS,
      ),
    ).toEqual(["frame 45 starts a piece but is not a keyframe"]);
    expect(
      checkPackets(
        packets((v) => (v[20]!.hash = "other")),
        pieces,
        60,
        FPS,
      )[0],
    ).toContain("frame 20 is not the packet it was copied from (frame 35 of the cache entry of clips/a.mp4)");
    expect(
      checkPackets(
        packets((v) => (v[30]!.pts += 1 / FPS)),
        pieces,
        60,
        FPS,
      )[0],
    ).toMatch(/apart/);
    expect(
      checkPackets(
        packets((v) => (v[31]!.dts = 0)),
        pieces,
        60,
        FPS,
      )[0],
    ).toMatch(/go backwards at packet 31/);
    expect(
      checkPackets(
        packets().filter((p) => p.stream === "video"),
        pieces,
        60,
        FPS,
      ),
    ).toContain("it has no audio packets");
  });
  it("decodes the encoded pieces and a margin around each join, from the keyframe before", () => {
    const ranges = decodeRanges(pieces, 60, 3);
    expect(ranges).toEqual([
      { from: 0, to: 18 },
      { from: 42, to: 60 },
    ]);
    // One copied piece: its start and end are still decoded.
    expect(decodeRanges([{ startFrame: 0, frames: 60, encoded: false }], 60, 3)).toEqual([
      { from: 0, to: 3 },
      { from: 57, to: 60 },
    ]);
    const keyframes = Array.from({ length: 60 }, (_, n) => n % 15 === 0);
    expect(fromKeyframes(ranges, keyframes)).toEqual([
      { from: 0, to: 18 },
      { from: 30, to: 60 },
    ]);
  });
});
