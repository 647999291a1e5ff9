/** Splitting rows and member lists into frames well under the frame limit. Pure. */
import type { ReplicatedRow } from "./replicated.ts";

/** Consecutive groups of `items`, each at most `maxItems` long and `maxBytes` by `cost` (one item may exceed it alone). */
export function chunk<T>(
  items: readonly T[],
  cost: (t: T) => number,
  maxItems: number,
  maxBytes: number,
): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let size = 0;
  for (const it of items) {
    const c = cost(it);
    if (cur.length > 0 && (size + c > maxBytes || cur.length >= maxItems)) {
      out.push(cur);
      cur = [];
      size = 0;
    }
    cur.push(it);
    size += c;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** A row's share of a frame (its JSON, plus a separator). */
export const rowCost = (r: ReplicatedRow): number => JSON.stringify(r).length + 1;

/** The identity of a row in the broadcast queue: a newer version replaces an older one. */
export const rowId = (r: ReplicatedRow): string => `${r.table}\0${r.key}`;
