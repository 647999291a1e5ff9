import { afterAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuthConfigError, checkToken, loadAuthConfig } from "../../internal/api/auth.ts";
import { TOKEN_POLICY, tokenWeakness } from "../../internal/api/token.ts";

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

describe("the token strength rule", () => {
  test("16 characters or more, no whitespace or control characters; the reason never quotes the token", () => {
    expect(tokenWeakness("0123456789abcdef")).toBeNull();
    expect(tokenWeakness("ünïcödé-tökén-0123")).toBeNull();
    expect(tokenWeakness("0123456789abcde")).toBe("has 15 characters, fewer than the 16 required");
    expect(tokenWeakness("x")).toBe("has 1 character, fewer than the 16 required");
    for (const t of ["0123456789abcdef 1", "0123456789abcdef\t", "0123456789abcdef\u0000"])
      expect(tokenWeakness(t)).toContain("whitespace or control characters");
    const err = (() => {
      try {
        checkToken("tiny-secret", "--token");
      } catch (e) {
        return e as AuthConfigError;
      }
    })();
    expect(err?.message).toBe("the token given by --token has 11 characters, fewer than the 16 required");
    expect(err?.hint).toBe(TOKEN_POLICY);
  });
});
