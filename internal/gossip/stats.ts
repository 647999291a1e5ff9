/** Counters of one GossipNode (tests, benchmarks and the agent's metrics read them). */
export interface GossipStats {
  probes: number;
  /** Probes that got no ack by the deadline (direct and indirect). */
  probesFailed: number;
  indirectProbes: number;
  nacksSent: number;
  nacksReceived: number;
  suspicionsRaised: number;
  /** Of those, raised by derived liveness: unreachable members whose vouchers are all down (derived.ts). */
  suspicionsDerived: number;
  refutations: number;
  deathsDeclared: number;
  /** Pings to unconfirmed (replica-derived, never heard from) members, and those declared dead. */
  unconfirmedPings: number;
  unconfirmedDeaths: number;
  /** Contacts of dead members (partition heal / re-admission). */
  reconnects: number;
  /** Members dropped by forget(). */
  forgotten: number;
  /** Highest Lifeguard local health score reached. */
  healthMax: number;
  rowsReceived: number;
  rowsChanged: number;
  aeRounds: number;
  rangeRequests: number;
  encodeErrors: number;
  messagesIn: Record<string, number>;
}

export function newStats(): GossipStats {
  return {
    probes: 0,
    probesFailed: 0,
    indirectProbes: 0,
    nacksSent: 0,
    nacksReceived: 0,
    suspicionsRaised: 0,
    suspicionsDerived: 0,
    refutations: 0,
    deathsDeclared: 0,
    unconfirmedPings: 0,
    unconfirmedDeaths: 0,
    reconnects: 0,
    forgotten: 0,
    healthMax: 0,
    rowsReceived: 0,
    rowsChanged: 0,
    aeRounds: 0,
    rangeRequests: 0,
    encodeErrors: 0,
    messagesIn: {},
  };
}
