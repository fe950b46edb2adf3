/**
 * Building `BlueprintIssue`s: JSON paths, short descriptions of the value found, and the translation
 * of zod's issues into "expected …, found …" sentences. Messages the Python job used are kept verbatim.
 */
import type { z } from "zod";
import { BlueprintSchema, MoveSchema, OutputConfigSchema } from "./schema.js";
import type { BlueprintIssue } from "./types.js";

type PathSegment = PropertyKey;

/** `["moves", 3, "duration"]` → `moves[3].duration`; `[]` → `""` (the document itself). */
export function formatPath(path: readonly PathSegment[]): string {
  let out = "";
  for (const segment of path) {
    if (typeof segment === "number") out += `[${segment}]`;
    else out += out === "" ? String(segment) : `.${String(segment)}`;
  }
  return out;
}

const MAX_SHOWN_CHARACTERS = 60;

/** A number as people write it: no float noise (`0.30000000000000004` → `0.3`). */
export function formatSeconds(value: number): string {
  return String(Number(value.toFixed(6)));
}

/**
 * The value found, short and log-safe (strings are JSON-quoted, so control characters show escaped).
 * With `withType`, scalars name their type: `a string "8"`, `a boolean true`.
 */
export function describeValue(value: unknown, withType = false): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return value.length === 0 ? "an empty array" : `an array of ${value.length}`;
  switch (typeof value) {
    case "string": {
      const shown = value.length > MAX_SHOWN_CHARACTERS ? `${value.slice(0, MAX_SHOWN_CHARACTERS)}…` : value;
      return withType ? `a string ${JSON.stringify(shown)}` : JSON.stringify(shown);
    }
    case "number":
      return withType && Number.isFinite(value) ? `a number ${value}` : String(value);
    case "boolean":
      return withType ? `a boolean ${value}` : String(value);
    case "object":
      return "an object";
    default:
      return `a ${typeof value}`;
  }
}

/** Strings quoted, anything else with its type named: `"wipe"`, `a number 3`. */
function shown(value: unknown): string {
  return describeValue(value, typeof value !== "string");
}

export function issue(path: string, expected: string, found: string): BlueprintIssue {
  return { path, message: `expected ${expected}, found ${found}`, expected, found };
}

const TYPE_PHRASES: Record<string, string> = {
  number: "a finite number",
  int: "an integer",
  string: "a string",
  boolean: "a boolean",
  object: "an object",
  array: "an array",
};

/** The Python job's message for a missing required field (SPEC §3.1). */
function missingFieldMessage(path: readonly PathSegment[]): string {
  const field = String(path[path.length - 1]);
  if (path.length === 2 && path[0] === "output_config")
    return `output_config missing required field: ${field}`;
  return `Missing required field: ${field}`;
}

function bound(inclusive: boolean | undefined, below: boolean): string {
  if (below) return inclusive === false ? "<" : "<=";
  return inclusive === false ? ">" : ">=";
}

/** One zod issue (parsed with `reportInput: true`) as a BlueprintIssue. */
export function fromZodIssue(raw: z.core.$ZodIssue): BlueprintIssue {
  const path = formatPath(raw.path);
  const input: unknown = raw.input;
  switch (raw.code) {
    case "invalid_type": {
      const expected = TYPE_PHRASES[raw.expected] ?? raw.expected;
      if (raw.path.length === 0) {
        return {
          path,
          message: `The blueprint must be a JSON object, found ${describeValue(input, true)}`,
          expected: "a JSON object",
          found: describeValue(input, true),
        };
      }
      if (input === undefined) {
        return { path, message: missingFieldMessage(raw.path), expected, found: "nothing" };
      }
      return issue(path, expected, describeValue(input, true));
    }
    case "too_small": {
      if (raw.origin === "array") {
        const length = Array.isArray(input) ? input.length : 0;
        if (path === "moves" && length === 0) {
          return { path, message: "moves array cannot be empty", expected: "at least 1 move", found: "0" };
        }
        return issue(path, `at least ${raw.minimum} items`, `${length}`);
      }
      if (raw.origin === "string") return issue(path, "a non-empty string", describeValue(input));
      return issue(path, `a number ${bound(raw.inclusive, false)} ${raw.minimum}`, describeValue(input));
    }
    case "too_big": {
      if (raw.origin === "array") {
        const length = Array.isArray(input) ? input.length : 0;
        const noun = path === "moves" ? "moves" : "items";
        return issue(path, `at most ${raw.maximum} ${noun}`, `${length}`);
      }
      if (raw.origin === "string") {
        const length = typeof input === "string" ? input.length : 0;
        return issue(path, `at most ${raw.maximum} characters`, `${length} characters`);
      }
      return issue(path, `a number ${bound(raw.inclusive, true)} ${raw.maximum}`, describeValue(input));
    }
    case "invalid_value":
      return issue(path, `one of ${raw.values.map(String).join(", ")}`, shown(input));
    default:
      // Pattern and custom checks carry their "expected" phrase as the message (schema.ts).
      return issue(path, raw.message, shown(input));
  }
}

const TOP_FIELDS = Object.keys(BlueprintSchema.shape);
const INNER_FIELDS = [...Object.keys(MoveSchema.shape), ...Object.keys(OutputConfigSchema.shape)];
const PATH_PARTS = /^([^.[]*)(?:\[(\d+)\])?\.?([^.[]*)/;

/** Where a path sits in the document: field order of the schema, then move index. */
function documentOrder(path: string): [number, number, number] {
  const [, top = "", index, inner = ""] = PATH_PARTS.exec(path) ?? [];
  const rank = (list: readonly string[], name: string) => {
    if (name === "") return -1;
    const found = list.indexOf(name);
    return found === -1 ? list.length : found;
  };
  return [rank(TOP_FIELDS, top), index === undefined ? -1 : Number(index), rank(INNER_FIELDS, inner)];
}

/** Issues in document order (stable: equal positions keep their order). */
export function sortIssues(issues: BlueprintIssue[]): BlueprintIssue[] {
  const keyed = issues.map((item) => ({ item, key: documentOrder(item.path) }));
  keyed.sort((a, b) => a.key[0] - b.key[0] || a.key[1] - b.key[1] || a.key[2] - b.key[2]);
  return keyed.map(({ item }) => item);
}
