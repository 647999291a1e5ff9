/**
 * Leaf pod status → root pod status (pure). The root pod shows what runs in the leaf: phase,
 * conditions, the leaf pod's IPs (so root Services and EndpointSlices point at leaf pods), the leaf
 * node's IP, container statuses, start time. Upstream writes the whole leaf status (and with it the
 * leaf's labels) unconditionally; we write only these fields, and only when they differ.
 */
import type { PodStatus } from "./types.ts";

const FIELDS = [
  "phase",
  "conditions",
  "podIP",
  "podIPs",
  "hostIP",
  "hostIPs",
  "startTime",
  "containerStatuses",
  "initContainerStatuses",
  "message",
  "reason",
] as const;

/** The root status to write: the leaf's values of FIELDS; null clears a field the leaf no longer has. */
export function statusFromLeaf(
  leaf: PodStatus | undefined,
  root: PodStatus | undefined,
): Record<string, unknown> | undefined {
  const want: Record<string, unknown> = {};
  let differs = false;
  for (const f of FIELDS) {
    const l = leaf?.[f];
    const r = root?.[f];
    if (l === undefined && r === undefined) continue;
    if (JSON.stringify(l) === JSON.stringify(r)) continue;
    differs = true;
    want[f] = l === undefined ? null : l;
  }
  return differs ? want : undefined;
}
