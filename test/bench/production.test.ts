import { describe, expect, it } from "vitest";
import {
  KEPT_MARKER,
  limitHits,
  memoryCgroupOf,
  oomKills,
  SECTION_END,
  SECTION_START,
  shapedCommand,
  spliceSection,
} from "../../scripts/bench/production.js";

describe("memoryCgroupOf (/proc/self/cgroup)", () => {
  it("takes the v1 memory controller's path, also from a shared line", () => {
    const v1 = "9:name=systemd:/\n4:memory:/process_api/d637c0\n1:cpu:/\n0::/\n";
    expect(memoryCgroupOf(v1)).toEqual({ version: 1, path: "/process_api/d637c0" });
    expect(memoryCgroupOf("5:cpuacct,memory:/docker/abc/\n")).toEqual({ version: 1, path: "/docker/abc" });
    expect(memoryCgroupOf("4:memory:/\n")).toEqual({ version: 1, path: "/" });
  });

  it("falls back to the unified hierarchy on cgroup v2", () => {
    expect(memoryCgroupOf("0::/user.slice/session-1.scope\n")).toEqual({
      version: 2,
      path: "/user.slice/session-1.scope",
    });
    expect(memoryCgroupOf("0::/\n")).toEqual({ version: 2, path: "/" });
  });

  it("prefers v1 memory on a hybrid host, and finds nothing in empty text", () => {
    expect(memoryCgroupOf("0::/a\n3:memory:/b\n")).toEqual({ version: 1, path: "/b" });
    expect(memoryCgroupOf("")).toBeUndefined();
    expect(memoryCgroupOf("1:cpu:/x\n")).toBeUndefined();
  });
});

describe("cgroup counters", () => {
  it("reads OOM kills from v1 memory.oom_control and v2 memory.events", () => {
    expect(oomKills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")).toBe(2);
    expect(oomKills("low 0\nhigh 0\nmax 17\noom 1\noom_kill 1\noom_group_kill 0\n")).toBe(1);
    expect(oomKills("oom_kill_disable 0\nunder_oom 0\n")).toBeUndefined();
  });

  it("reads limit hits from v2 memory.events' max line", () => {
    expect(limitHits("low 0\nhigh 0\nmax 17\noom 0\noom_kill 0\n")).toBe(17);
    expect(limitHits("")).toBeUndefined();
  });
});

describe("shapedCommand", () => {
  it("joins the cgroup before exec, then drops to the user", () => {
    expect(
      shapedCommand(["node", "main.js"], { procsFile: "/cg/cgroup.procs", uid: 1000, gid: 1000 }),
    ).toEqual([
      "sh",
      "-c",
      'echo $$ > "$1" && shift && exec "$@"',
      "sh",
      "/cg/cgroup.procs",
      "setpriv",
      "--reuid=1000",
      "--regid=1000",
      "--clear-groups",
      "node",
      "main.js",
    ]);
  });

  it("leaves out what is not available", () => {
    expect(shapedCommand(["node", "main.js"], {})).toEqual(["node", "main.js"]);
    expect(shapedCommand(["node"], { uid: 1000 })).toEqual([
      "setpriv",
      "--reuid=1000",
      "--regid=1000",
      "--clear-groups",
      "node",
    ]);
  });
});

describe("spliceSection (BENCHMARKS.md)", () => {
  const handMeasured = [
    "# Benchmarks",
    "",
    KEPT_MARKER,
    "## One vCPU",
    "",
    "**Production shape** (measured separately): GCS mode, one vCPU,",
    "real clips:",
    "",
    "| run | wall s |",
    "|---|---|",
    "| cold | 219 |",
    "",
    "**Short workload**, kept.",
    "",
  ].join("\n");

  it("replaces the hand-measured paragraph and its table, keeping what follows", () => {
    const out = spliceSection(handMeasured, "## New\n\n| a |\n");
    expect(out).toBe(
      [
        "# Benchmarks",
        "",
        KEPT_MARKER,
        "## One vCPU",
        "",
        SECTION_START,
        "",
        "## New",
        "",
        "| a |",
        "",
        SECTION_END,
        "",
        "**Short workload**, kept.",
        "",
      ].join("\n"),
    );
  });

  it("replaces its own earlier section, and only that", () => {
    const once = spliceSection(handMeasured, "first");
    const twice = spliceSection(once, "second");
    expect(twice).toBe(once.replace("first", "second"));
    expect(twice.match(/<!-- npm run bench:production -->/g)).toHaveLength(1);
  });

  it("appends below a kept marker it adds when there is none", () => {
    const out = spliceSection("# Benchmarks\n\ntable\n", "section");
    expect(out).toBe(
      `# Benchmarks\n\ntable\n\n${KEPT_MARKER}\n\n${SECTION_START}\n\nsection\n\n${SECTION_END}\n`,
    );
    expect(spliceSection("", "s")).toBe(`${KEPT_MARKER}\n\n${SECTION_START}\n\ns\n\n${SECTION_END}\n`);
  });

  it("does not take a paragraph above the kept marker (npm run bench rewrites that part)", () => {
    const doc = `**Production shape** (measured separately): x\n\n| a |\n\n${KEPT_MARKER}\nkept\n`;
    expect(spliceSection(doc, "s")).toBe(`${doc.trimEnd()}\n\n${SECTION_START}\n\ns\n\n${SECTION_END}\n`);
  });
});
