/** Wires gossip into a started agent (replaced by the full implementation in the gossip issue). */
import type { Agent } from "./agent.ts";

export async function wireGossip(agent: Agent): Promise<void> {
  if (agent.cfg.seeds.length > 0) agent.logger.warn({ seeds: agent.cfg.seeds }, "gossip not wired yet: seeds ignored");
}
