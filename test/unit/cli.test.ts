/**
 * kosmosctl in process (internal/cli: kosmosctlProgram and the output helpers): --help of every
 * command, argument and flag errors, -o table|json|yaml. Nothing here reaches a network, a lab
 * or a cluster: each case fails (or prints help) before a command's action runs.
 */
import { afterEach, beforeEach, describe, expect, test } from "bun:test";
import { type Command, CommanderError } from "commander";
import { parse as parseYaml } from "yaml";
import { kosmosctlProgram, parseOutput, printData, renderTable } from "../../internal/cli/index.ts";

interface Run {
  out: string;
  err: string;
  error?: unknown;
}

/** Every command of the tree, with its path ("lab up"). */
function walk(c: Command, prefix: string[] = []): Array<{ path: string[]; cmd: Command }> {
  return c.commands.flatMap((sub) => {
    const path = [...prefix, sub.name()];
    return [{ path, cmd: sub }, ...walk(sub, path)];
  });
}

/** Parse `args` with a fresh program whose commands throw instead of exiting, output captured. */
async function run(args: string[]): Promise<Run> {
  const program = kosmosctlProgram("9.9.9");
  const r: Run = { out: "", err: "" };
  for (const c of [program, ...walk(program).map((w) => w.cmd)]) {
    c.exitOverride();
    c.configureOutput({
      writeOut: (s) => {
        r.out += s;
      },
      writeErr: (s) => {
        r.err += s;
      },
    });
  }
  try {
    await program.parseAsync(["bun", "kosmosctl", ...args]);
  } catch (e) {
    r.error = e;
  }
  return r;
}

const commanderCode = (r: Run) => (r.error instanceof CommanderError ? r.error.code : undefined);

describe("kosmosctl --help", () => {
  const all = walk(kosmosctlProgram("9.9.9"));

  test("the tree has the documented commands", () => {
    const top = kosmosctlProgram("9.9.9").commands.map((c) => c.name());
    for (const name of [
      "lab",
      "inspect",
      "check",
      "exec",
      "cp",
      "install",
      "uninstall",
      "join",
      "unjoin",
      "get",
    ])
      expect(top).toContain(name);
    expect(all.length).toBeGreaterThan(top.length);
  });

  test("every command has a description, and every option and argument says what it is", () => {
    const missing: string[] = [];
    for (const { path, cmd } of all) {
      if (!cmd.description()) missing.push(`${path.join(" ")}: no description`);
      for (const o of cmd.options)
        if (!o.description) missing.push(`${path.join(" ")} ${o.flags}: no description`);
    }
    expect(missing).toEqual([]);
  });

  test("--help of every command prints its usage and exits cleanly", async () => {
    for (const { path, cmd } of all) {
      const r = await run([...path, "--help"]);
      expect(commanderCode(r)).toBe("commander.helpDisplayed");
      expect(r.out).toStartWith(`Usage: kosmosctl ${path.join(" ")}`);
      expect(r.out.replace(/\s+/g, " ")).toContain(cmd.description().replace(/\s+/g, " "));
      expect(r.err).toBe("");
    }
  });

  test("--version prints the version", async () => {
    const r = await run(["--version"]);
    expect(commanderCode(r)).toBe("commander.version");
    expect(r.out).toBe("9.9.9\n");
  });
});

describe("kosmosctl flag and argument errors", () => {
  test("an unknown flag on any leaf command is refused by name, with the help after it", async () => {
    // (commands with required options report those first: see the next test)
    const leaves = walk(kosmosctlProgram("9.9.9")).filter(
      ({ cmd }) => cmd.commands.length === 0 && !cmd.options.some((o) => o.mandatory),
    );
    expect(leaves.length).toBeGreaterThan(10);
    for (const { path } of leaves) {
      const r = await run([...path, "--no-such-flag"]);
      expect(commanderCode(r)).toBe("commander.unknownOption");
      expect(r.err).toStartWith("error: unknown option '--no-such-flag'");
      expect(r.err).toContain(`Usage: kosmosctl ${path.join(" ")}`);
    }
  });

  test("a missing required option is named", async () => {
    const r = await run(["join", "cluster", "--kubeconfig", "/nonexistent"]);
    expect(commanderCode(r)).toBe("commander.missingMandatoryOptionValue");
    expect(r.err).toStartWith("error: required option '--name <name>' not specified");
  });

  test("an unknown command is refused", async () => {
    const r = await run(["frobnicate"]);
    expect(commanderCode(r)).toBe("commander.unknownCommand");
    expect(r.err).toStartWith("error: unknown command 'frobnicate'");
  });

  test("a missing required argument is named", async () => {
    const r = await run(["exec"]);
    expect(commanderCode(r)).toBe("commander.missingArgument");
    expect(r.err).toStartWith("error: missing required argument 'node'");
  });

  test("-o accepts table, json, yaml only, on every command that has it", async () => {
    const withOutput = walk(kosmosctlProgram("9.9.9")).filter(({ cmd }) =>
      cmd.options.some((o) => o.long === "--output"),
    );
    expect(withOutput.map((w) => w.path.join(" "))).toContain("inspect");
    for (const { path } of withOutput) {
      const r = await run([...path, "-o", "xml"]);
      expect((r.error as Error).message).toBe('--output must be table, json or yaml (got "xml")');
    }
  });
});

describe("kosmosctl output", () => {
  let written = "";
  const write = process.stdout.write.bind(process.stdout);
  beforeEach(() => {
    written = "";
    process.stdout.write = ((s: string | Uint8Array) => {
      written += String(s);
      return true;
    }) as typeof process.stdout.write;
  });
  afterEach(() => {
    process.stdout.write = write;
  });

  const data = [{ name: "c1", nodes: 2 }];
  const table = () => renderTable(["NAME", "NODES"], [["c1", 2]]);

  test("parseOutput", () => {
    expect(parseOutput("json")).toBe("json");
    expect(parseOutput("yaml")).toBe("yaml");
    expect(parseOutput("table")).toBe("table");
    expect(() => parseOutput("JSON")).toThrow('--output must be table, json or yaml (got "JSON")');
  });

  test("-o json prints the data as indented JSON", () => {
    printData("json", data, table);
    expect(written).toBe(`${JSON.stringify(data, null, 2)}\n`);
  });

  test("-o yaml prints YAML that parses back to the data", () => {
    printData("yaml", data, table);
    expect(parseYaml(written)).toEqual(data);
  });

  test("-o table prints the table (no colours when stdout is not a terminal)", () => {
    printData("table", data, table);
    const lines = written.trimEnd().split("\n");
    expect(lines).toHaveLength(5);
    expect(lines[1]).toMatch(/│ NAME │ NODES │/);
    expect(lines[3]).toMatch(/│ c1\s+│ 2\s+│/);
    expect(written).not.toContain("\u001b[");
  });
});
