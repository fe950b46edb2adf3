import { parseArgs } from "node:util";

export interface CliOptions {
  blueprintFile?: string;
  check: boolean;
  dryRun: boolean;
  /** `--check`/`--dry-run` print one JSON object on stdout instead of text. */
  json: boolean;
  help: boolean;
  version: boolean;
}

export const USAGE = `Usage: video-assembly-job [--blueprint FILE] [--check | --dry-run] [--json]
       video-assembly-job warm-cache --prefix KEY_PREFIX [--resolution WxH] [--fps N] [--shards N]

Assembles one choreography video from a blueprint (BLUEPRINT_JSON or --blueprint FILE),
configured by environment variables (see README). Exit codes: 0 success or already completed,
1 runtime failure, 2 invalid blueprint or configuration.

Options:
  --blueprint FILE  read the blueprint from FILE instead of BLUEPRINT_JSON
  --check           validate the blueprint and configuration, print a summary, exit 0 or 2
  --dry-run         also fetch and probe the inputs, print the render plan and FFmpeg commands; encode nothing
  --json            with --check or --dry-run: print one JSON object on stdout (logs go to stderr)
  --version         print the version
  -h, --help        show this help

warm-cache normalises a clip library into the clip cache ahead of jobs (warm-cache --help).`;

/** argv (without node and script) → options; throws a TypeError with a usable message on bad usage. */
export function parseCli(argv: readonly string[]): CliOptions {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      blueprint: { type: "string" },
      check: { type: "boolean", default: false },
      "dry-run": { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
      version: { type: "boolean", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.check && values["dry-run"]) throw new TypeError("--check and --dry-run cannot be combined");
  if (values.json && !values.check && !values["dry-run"]) {
    throw new TypeError("--json goes with --check or --dry-run");
  }
  return {
    blueprintFile: values.blueprint,
    check: values.check ?? false,
    dryRun: values["dry-run"] ?? false,
    json: values.json ?? false,
    help: values.help ?? false,
    version: values.version ?? false,
  };
}
