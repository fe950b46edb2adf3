/**
 * Pure helpers of `npm run bench:production`: where this process's memory cgroup is, what its counter
 * files say, and where the script's section goes in BENCHMARKS.md. No I/O here (tested on text).
 */

/** The memory cgroup of a process: its hierarchy and its path inside that hierarchy's mount. */
export type MemoryCgroup = { version: 1; path: string } | { version: 2; path: string };

/**
 * From `/proc/<pid>/cgroup`: the v1 `memory` controller's line ("4:memory:/a/b") when there is one, else
 * the v2 unified line ("0::/a/b"). A v1 memory controller wins: on a hybrid host the unified hierarchy
 * holds no memory controller.
 */
export function memoryCgroupOf(procCgroup: string): MemoryCgroup | undefined {
  let v2: string | undefined;
  for (const line of procCgroup.split("\n")) {
    const match = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (match === null) continue;
    const [, id, controllers = "", cgroupPath = ""] = match;
    if (controllers.split(",").includes("memory")) return { version: 1, path: normalise(cgroupPath) };
    if (id === "0" && controllers === "") v2 = normalise(cgroupPath);
  }
  return v2 === undefined ? undefined : { version: 2, path: v2 };
}

function normalise(cgroupPath: string): string {
  const parts = cgroupPath.split("/").filter((part) => part !== "" && part !== ".");
  return `/${parts.join("/")}`;
}

/**
 * The OOM kills a cgroup counted: `oom_kill N` in v1 `memory.oom_control` and in v2 `memory.events`.
 * Undefined when the kernel does not report it (older v1 kernels list only `oom_kill_disable` and
 * `under_oom`).
 */
export function oomKills(text: string): number | undefined {
  const match = /^oom_kill (\d+)$/m.exec(text);
  return match === null ? undefined : Number(match[1]);
}

/**
 * v2 `memory.events`' `max` line: how often usage hit `memory.max` (the v1 `memory.failcnt`
 * counterpart).
 */
export function limitHits(eventsText: string): number | undefined {
  const match = /^max (\d+)$/m.exec(eventsText);
  return match === null ? undefined : Number(match[1]);
}

export const SECTION_START = "<!-- npm run bench:production -->";
export const SECTION_END = "<!-- end npm run bench:production -->";
/** `npm run bench` rewrites everything above this line and keeps the rest. */
export const KEPT_MARKER = "<!-- kept by npm run bench -->";
/** The hand-measured table this section replaced: its paragraph starts so and ends after its table. */
const HAND_MEASURED = "**Production shape** (measured separately)";

/**
 * BENCHMARKS.md with `section` between the section markers: replacing an earlier section, else the
 * hand-measured "Production shape" paragraph and its table, else appended to the kept part (a kept
 * marker is added when missing, so `npm run bench` keeps the section).
 */
export function spliceSection(document: string, section: string): string {
  // Blank lines around: a table right above the end marker must still end as a table.
  const block = `${SECTION_START}\n\n${section.trim()}\n\n${SECTION_END}`;
  const start = document.indexOf(SECTION_START);
  const end = document.indexOf(SECTION_END);
  if (start !== -1 && end > start) {
    return document.slice(0, start) + block + document.slice(end + SECTION_END.length);
  }
  const old = document.indexOf(HAND_MEASURED);
  const kept = document.indexOf(KEPT_MARKER);
  if (old !== -1 && kept !== -1 && old > kept) {
    // The paragraph, then its table: up to the first blank line after a table row.
    const lines = document.slice(old).split("\n");
    let inTable = false;
    let consumed = 0;
    for (const line of lines) {
      if (line.startsWith("|")) inTable = true;
      else if (inTable && line.trim() === "") break;
      consumed += line.length + 1;
    }
    return document.slice(0, old) + block + document.slice(old + consumed - 1);
  }
  const base = document.trimEnd();
  const withMarker = kept === -1 ? `${base}${base === "" ? "" : "\n\n"}${KEPT_MARKER}` : base;
  return `${withMarker}\n\n${block}\n`;
}

/**
 * `argv` in production's shape: first join the run's cgroup (`procsFile`; before the exec, so every
 * process it starts is charged there), then drop root for `uid`/`gid` (no supplementary groups).
 */
export function shapedCommand(argv: string[], options: { procsFile?: string; uid?: number; gid?: number }) {
  const dropped =
    options.uid === undefined
      ? argv
      : [
          "setpriv",
          `--reuid=${options.uid}`,
          `--regid=${options.gid ?? options.uid}`,
          "--clear-groups",
          ...argv,
        ];
  if (options.procsFile === undefined) return dropped;
  return ["sh", "-c", 'echo $$ > "$1" && shift && exec "$@"', "sh", options.procsFile, ...dropped];
}
