import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { validateBlueprint } from "../../src/blueprint/parse.js";
import type { Blueprint, BlueprintIssue } from "../../src/blueprint/types.js";
import type { MediaInfo } from "../../src/media/media-info.js";
import { frameAt, planRender } from "../../src/media/plan.js";
import {
  API_CLIPS,
  apiBlueprint,
  apiContractBlueprint,
  blueprintDocument,
  DEFAULTS,
  fakeInfo,
  type TestBlueprint,
} from "../helpers/blueprints.js";

function valid(doc: unknown): Blueprint {
  const result = validateBlueprint(doc, DEFAULTS);
  if (!result.ok)
    throw new Error(`expected a valid blueprint, got:\n${JSON.stringify(result.issues, null, 2)}`);
  return result.blueprint;
}

function invalid(doc: unknown): BlueprintIssue[] {
  const result = validateBlueprint(doc, DEFAULTS);
  if (result.ok) throw new Error("expected problems, the blueprint was accepted");
  return result.issues;
}

const song = fakeInfo({ hasVideo: false, hasAudio: true, duration: 3600, width: 0, height: 0 });

/** The plan of a parsed blueprint on clips long enough for every move. */
function planOf(blueprint: Blueprint) {
  const infos = new Map<string, MediaInfo>(
    blueprint.moves.map((move) => [move.video_path, fakeInfo({ duration: 3600 })]),
  );
  return planRender(blueprint, infos, song);
}

/** End of the raw document's last move, as the generator computes total_duration. */
function rawEnd(doc: TestBlueprint): number {
  const last = doc.moves[doc.moves.length - 1]!;
  return (last["start_time"] as number) + (last["duration"] as number);
}

describe("moves shorter than 2 frames are absorbed (SPEC §3.1)", () => {
  it("merges a 0.046 s remainder into the previous move, with a warning", () => {
    const bp = valid(blueprintDocument([8, 0.0458]));
    expect(bp.moves).toHaveLength(1);
    expect(bp.moves[0]).toMatchObject({ clip_id: "move_1", start_time: 0, transition_type: "cut" });
    expect(bp.moves[0]!.duration).toBeCloseTo(8.0458, 9);
    expect(bp.total_duration).toBeCloseTo(8.0458, 9);
    expect(bp.warnings).toEqual([
      "moves[1] (move_2) lasts 0.0458 s (1.374 frames at 30 fps), shorter than 2 frames: merged into moves[0] (move_1)",
    ]);
  });

  it("merges a remainder in the middle into the previous move; the next move keeps its start and transition", () => {
    const bp = valid(blueprintDocument([8, 0.00025, 8]));
    expect(bp.moves.map((move) => move.clip_id)).toEqual(["move_1", "move_3"]);
    expect(bp.moves[0]!.duration).toBeCloseTo(8.00025, 9);
    expect(bp.moves[1]).toMatchObject({ start_time: 8.00025, duration: 8, transition_type: "crossfade" });
    expect(bp.warnings).toHaveLength(1);
    expect(bp.warnings[0]).toContain("moves[1] (move_2) lasts 0.00025 s");
  });

  it("merges short moves at the start into the first long one, which starts at 0 with the first transition", () => {
    const bp = valid(blueprintDocument([0.01, 0.02, 8, 8]));
    expect(bp.moves.map((move) => move.clip_id)).toEqual(["move_3", "move_4"]);
    expect(bp.moves[0]).toMatchObject({ start_time: 0, transition_type: "cut" });
    expect(bp.moves[0]!.duration).toBeCloseTo(8.03, 9);
    expect(bp.warnings.map((warning) => warning.slice(0, 16))).toEqual([
      "moves[0] (move_1",
      "moves[1] (move_2",
    ]);
  });

  it("absorbs a move of 1e-15 s (float dust) and one whose frame span rounds to no frame", () => {
    expect(valid(blueprintDocument([4, 1e-15, 4])).moves).toHaveLength(2);
    // 0.05 s is 1.5 frames at 30 fps: by duration too short.
    expect(valid(blueprintDocument([4, 0.05, 4])).moves).toHaveLength(2);
    // 0.05 s at 60 fps is 3 frames: kept.
    const doc = blueprintDocument([4, 0.05, 4]);
    doc.output_config["frame_rate"] = 60;
    expect(valid(doc).moves).toHaveLength(3);
  });

  it("keeps a blueprint without short moves as it is, without warnings", () => {
    const bp = valid(blueprintDocument([8, 2 / 30, 8]));
    expect(bp.moves).toHaveLength(3);
    expect(bp.warnings).toEqual([]);
  });

  it("still rejects real structural errors: gaps of seconds, overlaps, negative times, zero durations", () => {
    const gap = blueprintDocument([8, 0.046, 8]);
    gap.moves[2]!["start_time"] = 10;
    delete gap["total_duration"];
    expect(invalid(gap).map((problem) => problem.path)).toEqual(["moves[2].start_time"]);
    const overlap = blueprintDocument([8, 8]);
    overlap.moves[1]!["start_time"] = 7;
    delete overlap["total_duration"];
    expect(invalid(overlap).map((problem) => problem.path)).toEqual(["moves[1].start_time"]);
    const negative = blueprintDocument([8, 8]);
    negative.moves[1]!["start_time"] = -8;
    expect(invalid(negative).map((problem) => problem.path)).toContain("moves[1].start_time");
    expect(invalid(blueprintDocument([8, 0])).map((problem) => problem.path)).toEqual(["moves[1].duration"]);
  });
});

describe("the API generator's blueprints", () => {
  it("accepts the contract fixture: remainders of 0.046 s and 0.00025 s absorbed, frames exact", () => {
    const doc = apiContractBlueprint("5f0c4a8e-1d2b-4c3a-9e8f-7a6b5c4d3e2f");
    expect(doc.moves).toHaveLength(11);
    const bp = valid(doc);
    expect(bp.moves).toHaveLength(8);
    expect(bp.warnings).toHaveLength(3);
    expect(bp.warnings.join("\n")).toMatch(
      /moves\[2\] \(move_3\) lasts 0\.046 s .* merged into moves\[1\] \(move_2\)/,
    );
    expect(bp.warnings.join("\n")).toMatch(
      /moves\[5\] \(move_6\) lasts 0\.00025 s .* merged into moves\[4\] \(move_5\)/,
    );
    expect(bp.warnings.join("\n")).toMatch(/moves\[10\] \(move_11\) .* merged into moves\[9\] \(move_10\)/);
    // Local mode: the data/ prefix is stripped, the API's other keys are kept.
    expect(bp.audio_path).toBe("songs/Eso_es_amor.mp3");
    expect(new Set(bp.moves.map((move) => move.video_path.split("/")[0]))).toEqual(
      new Set(["Bachata_steps"]),
    );
    expect(bp.output_config.output_path).toBe(
      "output/user_1/choreography_5f0c4a8e-1d2b-4c3a-9e8f-7a6b5c4d3e2f.mp4",
    );
    const plan = planOf(bp);
    expect(plan.totalFrames).toBe(frameAt(rawEnd(doc), 30));
    expect(plan.totalFrames).toBe(246);
    expect(plan.warnings.slice(0, 3)).toEqual(bp.warnings);
  });

  it("property: every generated blueprint is accepted and renders round(total·F) frames, each move ≥ 2 frames", () => {
    const clip = fc.record({
      duration: fc.oneof(
        { weight: 4, arbitrary: fc.double({ min: 0.5, max: 12, noNaN: true }) },
        { weight: 1, arbitrary: fc.double({ min: 0.0001, max: 0.1, noNaN: true }) },
      ),
      video_path: fc.constantFrom(...API_CLIPS.map((c) => c.video_path)),
    });
    fc.assert(
      fc.property(
        fc.array(clip, { minLength: 1, maxLength: 12 }),
        fc.double({ min: 2, max: 240, noNaN: true }),
        fc.constantFrom(24, 25, 29.97, 30, 60),
        (clips, songDuration, fps) => {
          const doc = apiBlueprint({
            task_id: "prop",
            user_id: 7,
            audio_path: "songs/x.mp3",
            song_duration: songDuration,
            clips,
          });
          doc.output_config["frame_rate"] = fps;
          fc.pre(doc.moves.length <= 500); // beyond the 500-move limit: not this property
          const bp = valid(doc);
          const plan = planOf(bp);
          expect(plan.totalFrames).toBe(frameAt(rawEnd(doc), fps));
          let next = 0;
          for (const move of plan.moves) {
            expect(move.startFrame).toBe(next);
            expect(move.endFrame - move.startFrame).toBeGreaterThanOrEqual(2);
            next = move.endFrame;
          }
          expect(next).toBe(plan.totalFrames);
          expect(bp.moves.length + bp.warnings.length).toBe(doc.moves.length);
        },
      ),
      { numRuns: 300 },
    );
  });
});
