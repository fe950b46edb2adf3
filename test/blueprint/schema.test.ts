import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parseBlueprint } from "../../src/blueprint/parse.js";
import { blueprintJsonSchema, renderBlueprintJsonSchema } from "../../src/blueprint/schema.js";
import { formatIssues } from "../../src/blueprint/summary.js";
import { DEFAULTS } from "../helpers/blueprints.js";

const root = (relative: string) => fileURLToPath(new URL(`../../${relative}`, import.meta.url));

describe("docs/blueprint.schema.json", () => {
  it("is what `npm run schema` generates (run it after changing the schema)", () => {
    expect(readFileSync(root("docs/blueprint.schema.json"), "utf8")).toBe(renderBlueprintJsonSchema());
  });

  it("describes the input document: draft 2020-12, required fields, unknown fields allowed", () => {
    const schema = blueprintJsonSchema() as {
      $schema: string;
      required: string[];
      additionalProperties: unknown;
      properties: Record<string, { items?: { required: string[]; additionalProperties: unknown } }>;
    };
    expect(schema.$schema).toBe("https://json-schema.org/draft/2020-12/schema");
    expect(schema.required).toEqual(["task_id", "audio_path", "moves", "output_config"]);
    expect(schema.additionalProperties).toEqual({});
    expect(schema.properties["moves"]!.items!.required).toEqual(["video_path", "start_time", "duration"]);
    expect(schema.properties["moves"]!.items!.additionalProperties).toEqual({});
  });
});

describe("src/blueprint is pure", () => {
  const FORBIDDEN =
    /from "(node:|fs|path|child_process|pg|fluent-ffmpeg|@google-cloud\/|\.\.\/(config|log|storage|media|tasks|job)\b)/;

  it("imports no I/O module, config or log", () => {
    const dir = root("src/blueprint");
    const offenders = readdirSync(dir)
      .filter((name) => name.endsWith(".ts"))
      .flatMap((name) =>
        readFileSync(`${dir}/${name}`, "utf8")
          .split("\n")
          .filter((line) => FORBIDDEN.test(line))
          .map((line) => `${name}: ${line.trim()}`),
      );
    expect(offenders).toEqual([]);
  });
});

describe("docs/BLUEPRINT_SCHEMA.md", () => {
  const markdown = readFileSync(root("docs/BLUEPRINT_SCHEMA.md"), "utf8");
  /** Fenced code blocks of the given language ("" for unlabeled), in order. */
  const blocks = (language: string): string[] => {
    const found: string[] = [];
    let current: string[] | undefined;
    let currentLanguage = "";
    for (const line of markdown.split("\n")) {
      if (current === undefined && line.startsWith("```")) {
        current = [];
        currentLanguage = line.slice(3).trim();
      } else if (current !== undefined && line === "```") {
        if (currentLanguage === language) found.push(`${current.join("\n")}\n`);
        current = undefined;
      } else {
        current?.push(line);
      }
    }
    return found;
  };

  it("shows examples that behave as documented", () => {
    const [full, minimal, bad] = blocks("json");
    expect(parseBlueprint(full!, DEFAULTS).ok).toBe(true);
    expect(parseBlueprint(minimal!, DEFAULTS).ok).toBe(true);
    const result = parseBlueprint(bad!, DEFAULTS);
    const output = blocks("").find((block) => block.startsWith("audio_path:"));
    expect(result.ok ? "" : `${formatIssues(result.issues)}\n`).toBe(output);
  });
});
