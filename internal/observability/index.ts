export { createLogger, silentLogger, type Logger, type LoggerOptions } from "./logger.ts";
export { Counter, createRegistry, Gauge, Histogram, Registry } from "./metrics.ts";
