export {
  type AgentDnsOptions,
  type AgentDnsSource,
  parseHostPort,
  resolvConfUpstreams,
  startAgentDns,
  upstreamsWithout,
} from "./agent-hook.ts";
export { errorReply, handleQuery, MAX_UDP_ANSWER, MAX_UDP_QUERY, type Outcome } from "./handle.ts";
export { RateLimiter } from "./ratelimit.ts";
export { type DnsRecord, type Resolution, resolve, TTL } from "./resolver.ts";
export {
  type DnsServerOptions,
  type DnsStats,
  type RunningDns,
  startDnsServer,
  type Upstream,
} from "./server.ts";
export { buildZone, ZONE, type Zone, type ZoneEndpoint, type ZonePort, type ZoneService } from "./zone.ts";
