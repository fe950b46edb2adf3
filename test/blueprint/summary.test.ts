import { describe, expect, it } from "vitest";
import { parseBlueprint, validateBlueprint } from "../../src/blueprint/parse.js";
import { formatIssues, summarizeBlueprint } from "../../src/blueprint/summary.js";
import type { Blueprint, BlueprintIssue } from "../../src/blueprint/types.js";
import { blueprintDocument, DEFAULTS, SPEC_EXAMPLE } from "../helpers/blueprints.js";

function issuesOf(doc: unknown): BlueprintIssue[] {
  const result = validateBlueprint(doc, DEFAULTS);
  return result.ok ? [] : result.issues;
}

describe("formatIssues", () => {
  it("writes one line per issue: path, then what was expected and found", () => {
    const doc = blueprintDocument([8, 8, 8, 8]);
    doc.moves[3]!["duration"] = -1;
    doc["task_id"] = 7;
    expect(formatIssues(issuesOf(doc))).toBe(
      [
        "task_id: expected a string, found a number 7",
        "moves[3].duration: expected a number > 0, found -1",
      ].join("\n"),
    );
  });

  it("keeps the Python job's messages verbatim", () => {
    const doc = blueprintDocument();
    delete doc["audio_path"];
    delete doc.output_config["output_path"];
    const text = formatIssues(issuesOf(doc));
    expect(text).toContain("Missing required field: audio_path");
    expect(text).toContain("output_config missing required field: output_path");
    expect(formatIssues(issuesOf({ ...blueprintDocument(), moves: [] }))).toContain(
      "moves array cannot be empty",
    );
  });

  it("uses the separator and prints document-level issues without a path", () => {
    const result = parseBlueprint("[]", DEFAULTS);
    const issues = result.ok ? [] : result.issues;
    expect(formatIssues(issues)).toBe("The blueprint must be a JSON object, found an empty array");
    const two: BlueprintIssue[] = [
      { path: "a", message: "one" },
      { path: "", message: "two" },
    ];
    expect(formatIssues(two, "; ")).toBe("a: one; two");
    expect(formatIssues([])).toBe("");
  });
});

describe("summarizeBlueprint", () => {
  it("names the task, moves, timeline, transitions and output", () => {
    const result = parseBlueprint(SPEC_EXAMPLE, DEFAULTS);
    const bp = (result as { ok: true; blueprint: Blueprint }).blueprint;
    expect(summarizeBlueprint(bp)).toBe(
      [
        "Blueprint for task 0b4c…-uuid: valid",
        "  moves:       2, timeline 16 s",
        "  transitions: 1 cut, 1 crossfade (default window 0.5 s)",
        "  song:        songs/Amor.mp3 (fade 0.3 s, loudness-normalised)",
        "  output:      output/choreography_0b4c….mp4",
        "  format:      mp4, libx264 (2M video bitrate, preset veryfast) + aac 128k, 30 fps, size of the first clip",
      ].join("\n"),
    );
  });

  it("shows minutes for long timelines, CRF and a fixed resolution", () => {
    const doc = blueprintDocument(Array.from({ length: 29 }, () => 8));
    doc.output_config = { output_path: "out/x.webm", resolution: "1280x720", frame_rate: 24 };
    const result = validateBlueprint(doc, DEFAULTS);
    const summary = summarizeBlueprint((result as { ok: true; blueprint: Blueprint }).blueprint);
    expect(summary).toContain("moves:       29, timeline 232 s (3:52)");
    expect(summary).toContain("1 cut, 28 crossfade");
    expect(summary).toContain("webm, libvpx-vp9 (crf 23, preset veryfast) + libopus 128k, 24 fps, 1280x720");
  });

  it("counts every transition type used, in the schema's order", () => {
    const doc = blueprintDocument([4, 4, 4, 4, 4, 4, 4]);
    const types = ["rotate", "wipe_left", "zoom_out", "wipe_right", "zoom_in", "wipe_left", "fade_white"];
    types.forEach((type, i) => {
      doc.moves[i]!["transition_type"] = type;
    });
    const result = validateBlueprint(doc, DEFAULTS);
    const summary = summarizeBlueprint((result as { ok: true; blueprint: Blueprint }).blueprint);
    expect(summary).toContain(
      "  transitions: 1 fade_white, 2 wipe_left, 1 wipe_right, 1 zoom_in, 1 zoom_out, 1 rotate (default window 0.5 s)",
    );
  });
});
