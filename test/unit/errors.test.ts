/** One error base class: every typed error of Kosmos extends KosmosError (code, message, hint, cause). */
import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { IdentityError, TlsError } from "../../internal/api/index.ts";
import { KosmosError } from "../../internal/errors/index.ts";
import { ExecError } from "../../internal/exec/index.ts";
import { KubeApiError } from "../../internal/kube/index.ts";
import { EnvError } from "../../internal/kubelet/index.ts";
import { LabCommandError } from "../../internal/lab/index.ts";
import { StoreError } from "../../internal/store/index.ts";
import { TopologyError } from "../../internal/topology/index.ts";

const ROOT = join(import.meta.dir, "..", "..");

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const rel = `${dir}/${name}`;
    if (statSync(join(ROOT, rel)).isDirectory()) return sources(rel);
    return name.endsWith(".ts") ? [rel] : [];
  });
}

describe("KosmosError", () => {
  test("no class under internal/ or cmd/ extends Error directly, except the base", () => {
    const direct = [...sources("internal"), ...sources("cmd")].filter(
      (p) =>
        p !== "internal/errors/index.ts" &&
        /class \w+ extends Error\b/.test(readFileSync(join(ROOT, p), "utf8")),
    );
    expect(direct).toEqual([]);
  });

  test("subclasses keep instanceof, name, code, message, hint and cause as own fields", () => {
    const cause = new Error("disk full");
    const cases: Array<[KosmosError, abstract new (...args: never[]) => KosmosError, string, string]> = [
      [
        new StoreError("STORE_CLOSED", "closed", "reopen", { cause }),
        StoreError,
        "StoreError",
        "STORE_CLOSED",
      ],
      [
        new TopologyError([{ path: "nodes[0]", message: "bad" }]),
        TopologyError,
        "TopologyError",
        "TOPOLOGY_INVALID",
      ],
      [new ExecError("BAD_REQUEST", "m", "h"), ExecError, "ExecError", "BAD_REQUEST"],
      [new TlsError("TLS_LOAD_FAILED", "m", "h"), TlsError, "TlsError", "TLS_LOAD_FAILED"],
      [new IdentityError("bad share"), IdentityError, "IdentityError", "IDENTITY_BAD_REQUEST"],
      [new KubeApiError(403, "forbidden"), KubeApiError, "KubeApiError", "KOSMOS_KUBE_API"],
      [new EnvError("no key"), EnvError, "EnvError", "CreateContainerConfigError"],
      [
        new LabCommandError(["ip", "link"], "boom\n", 2),
        LabCommandError,
        "LabCommandError",
        "LAB_COMMAND_FAILED",
      ],
    ];
    for (const [err, cls, name, code] of cases) {
      expect(err).toBeInstanceOf(cls);
      expect(err).toBeInstanceOf(KosmosError);
      expect(err).toBeInstanceOf(Error);
      expect(err.name).toBe(name);
      expect(err.code).toBe(code);
      expect(Object.keys(err)).toContain("hint");
      expect(Object.keys(err)).toContain("code");
    }
    expect(cases[0]?.[0].cause).toBe(cause);
    expect(cases[1]?.[0].message).toBe("invalid topology: nodes[0]: bad");
    expect(cases[5]?.[0].hint).toContain("RBAC refused this");
    expect(cases[7]?.[0].message).toBe("ip link failed (exit 2): boom");
    expect(cases[7]?.[0].hint).toContain("kosmosctl lab down");
  });
});
