import { isRunning } from "../../internal/exec/proctree.ts";

/** Waiting on a condition in tests: polls, and fails the test with what it waited for. */

/**
 * Resolve once `cond` holds (polled every `everyMs`); throw `condition never became true: <what>`
 * after `timeoutMs`, followed by what `explain` says about the state then (a failed wait shows what
 * it saw, not only what it wanted). Never returns silently on a timeout, so its caller cannot skip
 * the assertion.
 */
export async function until(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 10_000,
  everyMs = 20,
  explain?: () => string | Promise<string>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() >= deadline) {
      const state = explain
        ? await Promise.resolve(explain()).catch((e: Error) => `(explain failed: ${e.message})`)
        : "";
      throw new Error(
        `condition never became true within ${timeoutMs} ms: ${what}${state ? `\n${state}` : ""}`,
      );
    }
    await Bun.sleep(everyMs);
  }
}

/**
 * Whether a process with this pid is running: it exists and is not a zombie (a killed process whose
 * parent died stays a zombie until init reaps it, which can take seconds).
 */
export const alive = isRunning;
