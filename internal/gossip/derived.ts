/**
 * Derived liveness (docs/gossip.md, "Reach"). A member this node does not reach (GossipNode.setReach)
 * is never probed by it: its failures are found by the members that reach it and arrive by gossip.
 * Those members are its *vouchers* here: the members this node reaches that reach it. When every
 * voucher this node knows is suspect or dead, no news of the member can arrive any more (this node
 * is cut off from its cluster, or the cluster's gateways are gone), so this node suspects it itself,
 * as a failed probe would, and Lifeguard's suspicion takes it from there (refutation or death). A
 * member already suspect (another node derived it first) gets this node's confirmation, as a
 * failed probe of a suspect gives one: each independent confirmation shortens the suspicion, so the
 * far side's verdict does not wait out the longest timeout. Once per member and incarnation.
 *
 * The check runs once per probe tick. Each unreachable member remembers the voucher last found alive
 * (its witness): while that one stays alive the check is one lookup per unreachable member, and the
 * table is scanned for another voucher only when the witness is lost.
 */
import type { Member, MemberTable } from "./members.ts";

export class DerivedLiveness {
  /** Who reaches whom; undefined: everyone reaches everyone, so nothing is ever derived. */
  private reach: ((a: string, b: string) => boolean) | undefined;
  /** Unreachable member → the voucher last found alive. */
  private readonly witness = new Map<string, string>();
  /** Unreachable member → the incarnation this node already suspected it at. */
  private readonly suspected = new Map<string, number>();

  constructor(
    private readonly self: string,
    private readonly table: MemberTable,
  ) {}

  setReach(reach: ((a: string, b: string) => boolean) | undefined): void {
    this.reach = reach;
    // what was suspected at which incarnation stays true whoever reaches whom now
    this.witness.clear();
  }

  /**
   * The live members this node does not reach for which it knows at least one voucher and none is
   * alive, and that it has not suspected yet at their incarnation: the members to suspect (or to
   * confirm the suspicion of) now. A member with no known voucher at all (its cluster's gateways
   * not heard of yet) is left alone: there is nothing to go on.
   */
  orphans(): Member[] {
    const reach = this.reach;
    if (!reach) return [];
    const out: Member[] = [];
    for (const u of this.table.unreachable()) {
      if (this.suspected.get(u.name) === u.incarnation && u.state === "suspect") continue;
      if (this.vouched(u.name, reach) === false) {
        this.suspected.set(u.name, u.incarnation);
        out.push(u);
      }
    }
    if (this.witness.size + this.suspected.size > 2 * this.table.liveCount) this.prune();
    return out;
  }

  /** true: an alive voucher; false: vouchers known, none alive; undefined: no voucher known. */
  private vouched(name: string, reach: (a: string, b: string) => boolean): boolean | undefined {
    const w = this.table.get(this.witness.get(name) ?? "");
    if (w && this.alive(w) && reach(w.name, name)) return true;
    let known = false;
    for (const v of this.table.all()) {
      if (v.name === name || !v.confirmed || !reach(this.self, v.name) || !reach(v.name, name)) continue;
      if (this.alive(v)) {
        this.witness.set(name, v.name);
        return true;
      }
      known = true;
    }
    this.witness.delete(name);
    return known ? false : undefined;
  }

  private alive(m: Member): boolean {
    return m.confirmed && m.state === "alive";
  }

  private prune(): void {
    for (const name of this.witness.keys()) if (!this.table.has(name)) this.witness.delete(name);
    for (const name of this.suspected.keys()) if (!this.table.has(name)) this.suspected.delete(name);
  }
}
