import { isRunning } from "../../internal/exec/proctree.ts";

/** Waiting on a condition in tests: polls, and fails the test with what it waited for. */

/**
 * Resolve once `cond` holds (polled every `everyMs`); throw `condition never became true: <what>`
 * after `timeoutMs`. Never returns silently on a timeout, so its caller cannot skip the assertion.
 */
export async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
  everyMs = 20,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() >= deadline)
      throw new Error(`condition never became true within ${timeoutMs} ms: ${what}`);
    await Bun.sleep(everyMs);
  }
}

/**
 * Whether a process with this pid is running: it exists and is not a zombie (a killed process whose
 * parent died stays a zombie until init reaps it, which can take seconds).
 */
export const alive = isRunning;
