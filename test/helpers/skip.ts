/**
 * For `test.skipIf(...)`: a test skipped because its precondition is missing says why, so a green
 * run never hides it ("skipped, because ..." in the output).
 */
export function skipBecause(skip: boolean, reason: string): boolean {
  if (skip) console.warn(`skipped, because ${reason}`);
  return skip;
}
