#!/usr/bin/env bun
/** kosmosctl: one binary, many subcommands. Wiring only; each command lives in internal/cli. */
import { Command } from "commander";
import { AGENT_VERSION } from "../internal/agent/index.ts";
import {
  checkCommand,
  execCommands,
  inspectCommand,
  k8sCommands,
  labCommand,
  resolveLabNode,
} from "../internal/cli/index.ts";

const program = new Command("kosmosctl")
  .description("Kosmos: connect the pod and service networks of many Kubernetes clusters")
  .version(AGENT_VERSION)
  .showHelpAfterError()
  .enablePositionalOptions();

program.addCommand(labCommand());
program.addCommand(inspectCommand());
program.addCommand(checkCommand());
for (const c of execCommands({ resolveNode: resolveLabNode })) program.addCommand(c);
for (const c of k8sCommands()) program.addCommand(c);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  const err = e as Error & { code?: string; hint?: string };
  process.stderr.write(`error: ${err.message}\n`);
  if (err.hint) process.stderr.write(`hint: ${err.hint}\n`);
  process.exit(1);
}
