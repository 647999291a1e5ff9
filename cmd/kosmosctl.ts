#!/usr/bin/env bun
/** kosmosctl: one binary, many subcommands. Wiring only; each command lives in internal/cli. */
import { AGENT_VERSION } from "../internal/agent/index.ts";
import { kosmosctlProgram } from "../internal/cli/index.ts";

try {
  await kosmosctlProgram(AGENT_VERSION).parseAsync(process.argv);
} catch (e) {
  const err = e as Error & { code?: string; hint?: string };
  process.stderr.write(`error: ${err.message}\n`);
  if (err.hint) process.stderr.write(`hint: ${err.hint}\n`);
  process.exit(1);
}
