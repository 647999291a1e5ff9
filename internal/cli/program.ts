/** The kosmosctl command tree (cmd/kosmosctl.ts runs it; tests inspect and parse it in process). */
import { Command } from "commander";
import { checkCommand } from "./check.ts";
import { execCommands } from "./exec.ts";
import { inspectCommand } from "./inspect.ts";
import { k8sCommands } from "./k8s.ts";
import { labCommand, resolveLabNode } from "./lab.ts";

export function kosmosctlProgram(version: string): Command {
  const program = new Command("kosmosctl")
    .description("Kosmos: connect the pod and service networks of many Kubernetes clusters")
    .version(version)
    .showHelpAfterError()
    .enablePositionalOptions();
  program.addCommand(labCommand());
  program.addCommand(inspectCommand());
  program.addCommand(checkCommand());
  for (const c of execCommands({ resolveNode: resolveLabNode })) program.addCommand(c);
  for (const c of k8sCommands()) program.addCommand(c);
  // addCommand() does not pass settings down: every command shows its help after an error
  const all = (c: Command): Command[] => [c, ...c.commands.flatMap(all)];
  for (const c of all(program)) c.showHelpAfterError();
  return program;
}
