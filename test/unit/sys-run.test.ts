import { describe, expect, test } from "bun:test";
import { tmpdir } from "node:os";
import { KosmosError } from "../../internal/errors/index.ts";
import { execaRunner, runChecked, SysError, spawnRunner } from "../../internal/sys/index.ts";

describe("internal/sys runners", () => {
  for (const [name, runner] of [
    ["Bun.spawn", spawnRunner()],
    ["execa", execaRunner()],
  ] as const) {
    test(`${name}: output, exit code, stdin and cwd; never throws on exit != 0`, async () => {
      expect(await runner.run(["sh", "-c", "cat; echo err >&2; exit 3"], { input: "in\n" })).toEqual({
        stdout: "in\n",
        stderr: "err\n",
        code: 3,
      });
      const pwd = await runner.run(["pwd"], { cwd: tmpdir() });
      expect(pwd.stdout.trim()).toBe(tmpdir());
      expect((await runner.run(["kosmos-no-such-binary"])).code).toBe(127);
    });
  }

  test("runChecked throws a SysError (a KosmosError) with the exit code, stderr and hint", async () => {
    expect((await runChecked(["sh", "-c", "echo ok"])).stdout).toBe("ok\n");
    const err = await runChecked(["sh", "-c", "echo broken >&2; exit 4"], { hint: "do X" }).catch((e) => e);
    expect(err).toBeInstanceOf(SysError);
    expect(err).toBeInstanceOf(KosmosError);
    expect(err.code).toBe("COMMAND_FAILED");
    expect(err.exitCode).toBe(4);
    expect(err.hint).toBe("do X");
    expect(err.message).toBe("sh -c failed (exit 4): broken");
  });
});
