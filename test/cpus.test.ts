import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { grantedCpus, parseCfsQuota, parseCpuMax, parseProcCgroup, readGrantedCpus } from "../src/cpus.js";

describe("parseCpuMax (cgroup v2)", () => {
  it("reads quota over period", () => {
    expect(parseCpuMax("100000 100000\n")).toBe(1);
    expect(parseCpuMax("200000 100000")).toBe(2);
    expect(parseCpuMax("150000 100000")).toBe(1.5);
    expect(parseCpuMax("50000 100000")).toBe(0.5);
    expect(parseCpuMax("100000")).toBe(1);
  });

  it("has no limit for 'max' or unreadable text", () => {
    expect(parseCpuMax("max 100000\n")).toBeUndefined();
    expect(parseCpuMax("")).toBeUndefined();
    expect(parseCpuMax("abc 100000")).toBeUndefined();
    expect(parseCpuMax("100000 0")).toBeUndefined();
  });
});

describe("parseCfsQuota (cgroup v1)", () => {
  it("reads quota over period; -1 is no limit", () => {
    expect(parseCfsQuota("100000\n", "100000\n")).toBe(1);
    expect(parseCfsQuota("400000", "100000")).toBe(4);
    expect(parseCfsQuota("-1\n", "100000\n")).toBeUndefined();
    expect(parseCfsQuota("", "100000")).toBeUndefined();
  });
});

describe("grantedCpus", () => {
  it("is the affinity when no quota is set", () => {
    expect(grantedCpus({ affinity: 8 })).toEqual({ cpus: 8, source: "affinity" });
    expect(
      grantedCpus({ affinity: 8, cpuMax: ["max 100000"], cfs: [{ quotaUs: "-1", periodUs: "100000" }] }),
    ).toEqual({ cpus: 8, source: "affinity" });
  });

  it("takes the quota when it is smaller than the affinity (Cloud Run: 1 vCPU on a bigger host)", () => {
    expect(grantedCpus({ affinity: 8, cpuMax: ["100000 100000"] })).toEqual({
      cpus: 1,
      quota: 1,
      source: "cgroup v2 cpu.max",
    });
    expect(grantedCpus({ affinity: 4, cfs: [{ quotaUs: "200000", periodUs: "100000" }] })).toEqual({
      cpus: 2,
      quota: 2,
      source: "cgroup v1 cfs quota",
    });
  });

  it("takes the affinity when it is smaller than the quota (taskset)", () => {
    expect(grantedCpus({ affinity: 1, cpuMax: ["400000 100000"] })).toEqual({
      cpus: 1,
      quota: 4,
      source: "affinity",
    });
  });

  it("takes the smallest limit of every cgroup level, rounds down, never below 1", () => {
    expect(grantedCpus({ affinity: 16, cpuMax: ["max 100000", "300000 100000", "250000 100000"] }).cpus).toBe(
      2,
    );
    expect(grantedCpus({ affinity: 16, cpuMax: ["150000 100000"] })).toMatchObject({ cpus: 1, quota: 1.5 });
    expect(grantedCpus({ affinity: 16, cpuMax: ["25000 100000"] })).toMatchObject({ cpus: 1, quota: 0.25 });
    expect(grantedCpus({ affinity: 0 }).cpus).toBe(1);
  });
});

describe("parseProcCgroup", () => {
  it("finds the v2 path and the v1 cpu controller's path", () => {
    expect(parseProcCgroup("0::/system.slice/job.scope\n")).toEqual({ v2: "/system.slice/job.scope" });
    expect(parseProcCgroup("4:memory:/x\n2:cpu,cpuacct:/docker/abc\n0::/\n")).toEqual({
      v2: "/",
      cpu: "/docker/abc",
    });
  });
});

describe("readGrantedCpus", () => {
  const roots: string[] = [];
  afterAll(() => {
    for (const root of roots) rmSync(root, { recursive: true, force: true });
  });
  const layout = (files: Record<string, string>) => {
    const root = mkdtempSync(path.join(os.tmpdir(), "cpus-"));
    roots.push(root);
    for (const [file, content] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
      writeFileSync(path.join(root, file), content);
    }
    return root;
  };

  it("reads cgroup v2 cpu.max at the process's cgroup and its parents", async () => {
    const root = layout({
      "proc/self/cgroup": "0::/job/inner\n",
      "sys/fs/cgroup/cpu.max": "max 100000\n",
      "sys/fs/cgroup/job/cpu.max": "100000 100000\n",
      "sys/fs/cgroup/job/inner/cpu.max": "max 100000\n",
    });
    expect(await readGrantedCpus({ root, affinity: 4 })).toEqual({
      cpus: 1,
      quota: 1,
      source: "cgroup v2 cpu.max",
    });
  });

  it("reads cgroup v1 cfs quota and period", async () => {
    const root = layout({
      "proc/self/cgroup": "3:cpu,cpuacct:/\n",
      "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": "200000\n",
      "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": "100000\n",
    });
    expect(await readGrantedCpus({ root, affinity: 8 })).toMatchObject({
      cpus: 2,
      source: "cgroup v1 cfs quota",
    });
  });

  it("falls back to the affinity when nothing is readable", async () => {
    const root = layout({});
    expect(await readGrantedCpus({ root, affinity: 3 })).toEqual({ cpus: 3, source: "affinity" });
  });

  it("under taskset -c 0 a process is granted one CPU", () => {
    const script = `import("${path.resolve("src/cpus.ts")}").then(async (m) => console.log(JSON.stringify(await m.readGrantedCpus())))`;
    const out = execFileSync("taskset", ["-c", "0", process.execPath, "--import", "tsx", "-e", script], {
      encoding: "utf8",
    });
    expect(JSON.parse(out)).toMatchObject({ cpus: 1 });
  });
});
