import pino from "pino";

export type Logger = pino.Logger;

export interface LoggerOptions {
  /** Omit for a root logger whose children each bind their own component. */
  component?: string;
  node?: string;
  cluster?: string;
  level?: string;
  /** Write to this fd (default 2: stderr, so stdout stays for command output). */
  fd?: number;
}

/** Structured JSON logger (pino) with the house fields: component, node, cluster. */
export function createLogger(opts: LoggerOptions): Logger {
  const level = opts.level ?? process.env.KOSMOS_LOG_LEVEL ?? "info";
  const base: Record<string, string> = {};
  if (opts.component) base.component = opts.component;
  if (opts.node) base.node = opts.node;
  if (opts.cluster) base.cluster = opts.cluster;
  return pino({ level, base, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination({ fd: opts.fd ?? 2, sync: true }));
}

/** A logger that drops everything (tests, quiet CLI paths). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}
