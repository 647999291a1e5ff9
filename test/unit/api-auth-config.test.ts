import { afterAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuthConfigError, loadAuthConfig } from "../../internal/api/auth.ts";

const dir = await mkdtemp(join(tmpdir(), "kosmos-auth-"));
afterAll(() => rm(dir, { recursive: true, force: true }));

describe("--auth-file", () => {
  test("YAML and JSON files give the same config; a wrong shape is refused with a hint", async () => {
    await writeFile(
      join(dir, "a.yaml"),
      "tokens:\n  - t0123456789abcdef\nbasic:\n  - user: admin\n    password: pw\n",
    );
    await writeFile(
      join(dir, "a.json"),
      JSON.stringify({ tokens: ["t0123456789abcdef"], basic: [{ user: "admin", password: "pw" }] }),
    );
    const fromYaml = await loadAuthConfig(join(dir, "a.yaml"));
    expect(fromYaml).toEqual({ tokens: ["t0123456789abcdef"], basic: [{ user: "admin", password: "pw" }] });
    expect(await loadAuthConfig(join(dir, "a.json"))).toEqual(fromYaml);
    await writeFile(join(dir, "bad.yaml"), "tokens: 42\n");
    const err = await loadAuthConfig(join(dir, "bad.yaml")).catch((e) => e);
    expect(err).toBeInstanceOf(AuthConfigError);
    expect((err as AuthConfigError).hint).toContain("tokens");
  });
});
