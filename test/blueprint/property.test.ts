import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseBlueprint, validateBlueprint } from "../../src/blueprint/parse.js";
import type { ParseResult } from "../../src/blueprint/types.js";
import { blueprintDocument, DEFAULTS, GCS_DEFAULTS } from "../helpers/blueprints.js";
import { mutate, mutations } from "../helpers/mutations.js";

function expectWellFormed(result: ParseResult): void {
  if (result.ok) {
    expect(result.blueprint.moves.length).toBeGreaterThan(0);
    return;
  }
  expect(result.issues.length).toBeGreaterThan(0);
  for (const problem of result.issues) {
    expect(typeof problem.path).toBe("string");
    expect(problem.message.length).toBeGreaterThan(0);
  }
}

const MUTATIONS = mutations(
  fc.oneof(
    fc.jsonValue({ maxDepth: 2 }),
    fc.constantFrom(-1, 0, 0.01, 1e308, -0.0, "", "..", "/x", "gs://media-bucket/x.mp4", null, true, [], {}),
  ),
);

describe("validateBlueprint never throws", () => {
  it("on any JSON value", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expectWellFormed(validateBlueprint(value, DEFAULTS));
      }),
      { numRuns: 300 },
    );
  });

  it("on any text", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json()), (text) => {
        expectWellFormed(parseBlueprint(text, DEFAULTS));
      }),
      { numRuns: 300 },
    );
  });

  it("on valid blueprints with up to three fields replaced or deleted", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0.07, max: 30, noNaN: true }), { minLength: 1, maxLength: 8 }),
        MUTATIONS,
        fc.boolean(),
        (durations, edits, gcs) => {
          const doc = blueprintDocument(durations);
          mutate(doc, edits);
          expectWellFormed(validateBlueprint(doc, gcs ? GCS_DEFAULTS : DEFAULTS));
        },
      ),
      { numRuns: 400 },
    );
  });

  it("and accepts every unmutated generated blueprint", () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0.07, max: 30, noNaN: true }), { minLength: 1, maxLength: 50 }),
        (durations) => {
          const result = validateBlueprint(blueprintDocument(durations), DEFAULTS);
          expect(result.ok ? [] : result.issues).toEqual([]);
        },
      ),
      { numRuns: 200 },
    );
  });
});
