import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const read = (file: string) => readFileSync(path.join(root, file), "utf8");

/** Every environment variable config.ts reads (string literals shaped like `NAME_LIKE_THIS`). */
function configVariables(): string[] {
  const names = read("src/config.ts").match(/"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+"/g) ?? [];
  const errorCodes = new Set(["INVALID_CONFIG"]);
  // Cloud Run sets these itself; they are logged, not configured.
  const platform = (name: string) => name.startsWith("CLOUD_RUN_");
  return [...new Set(names.map((quoted) => quoted.slice(1, -1)))].filter(
    (name) => !errorCodes.has(name) && !platform(name),
  );
}

describe("documentation stays true to the configuration", () => {
  const variables = configVariables();

  it("finds the variables config.ts reads", () => {
    expect(variables).toContain("BLUEPRINT_JSON");
    expect(variables).toContain("VIDEO_CRF");
    expect(variables.length).toBeGreaterThan(20);
  });

  it("lists every variable in the README's configuration table", () => {
    const readme = read("README.md");
    const missing = variables.filter((name) => !readme.includes(`\`${name}\``));
    expect(missing).toEqual([]);
  });

  it("lists every variable in .env.example", () => {
    const example = read(".env.example");
    const missing = variables.filter((name) => !new RegExp(`^${name}=`, "m").test(example));
    expect(missing).toEqual([]);
  });

  it("names only scripts that exist in the README", () => {
    const scripts = Object.keys(
      (JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts,
    );
    const used = [...read("README.md").matchAll(/npm run ([a-z:]+)/g)].map((match) => match[1]!);
    expect(used.filter((name) => !scripts.includes(name))).toEqual([]);
  });
});

describe("docker-compose.yml runs the product README's manual flow", () => {
  const compose = read("docker-compose.yml");

  it("mounts ./data as the job's data directory and lets the job create the missing row", () => {
    expect(compose).toContain("- ./data:/app/data");
    expect(compose).toMatch(/^ {6}LOCAL_STORAGE_ROOT: \/app\/data$/m);
    expect(compose).toMatch(/^ {6}CREATE_MISSING_TASK: "on"$/m);
  });

  it("uses only syntax Debian's docker-compose 1.29 accepts and binds ports to loopback", () => {
    // env_file entries with path/required need Compose >= 2.24.
    expect(compose).not.toMatch(/env_file:\s*\n\s*- path:/);
    const ports = [...compose.matchAll(/^\s*- "([^"]*:\d+)"$/gm)].map((match) => match[1]!);
    expect(ports.length).toBeGreaterThan(0);
    expect(ports.filter((port) => !port.startsWith("127.0.0.1:"))).toEqual([]);
  });

  it("names the database as the deploy file does", () => {
    expect(read("deploy/cloud-run-job.yaml")).toMatch(/value: bachata_buddy/);
    expect(compose).toContain(["$", "{DB_NAME:-bachata_buddy}"].join(""));
  });

  it("is shown in the README with the seed's command, verbatim", () => {
    expect(read("README.md")).toContain(
      'docker-compose run --rm -e TASK_ID=test-123 -e USER_ID=1 -e BLUEPRINT_JSON="$BLUEPRINT_JSON" job',
    );
  });
});
