/**
 * The per-file setup of root tests that use network namespaces (a separate module from netns.ts,
 * which benches import too, because this one registers bun:test hooks):
 *
 *   const { root, scope } = await netnsSuite();
 *   describe.skipIf(!root)("...", () => { ... scope.netns("a") ... });
 *
 * `root`: namespaces can be made here. `scope` is cleaned after each test and at the end of the
 * file. Unless `sweep: false`, leftovers of test processes that died are swept first.
 */
import { afterAll, afterEach, beforeAll } from "bun:test";
import { canUseNetns, NetnsScope, sweepLeftovers } from "./netns.ts";

export async function netnsSuite(o: { sweep?: boolean } = {}): Promise<{ root: boolean; scope: NetnsScope }> {
  const root = await canUseNetns();
  const scope = new NetnsScope();
  if (o.sweep !== false) {
    beforeAll(async () => {
      if (root) await sweepLeftovers();
    });
  }
  afterEach(() => scope.cleanup());
  afterAll(() => scope.cleanup());
  return { root, scope };
}
