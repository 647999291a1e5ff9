import { KosmosError } from "../errors/index.ts";

export class PlanError extends KosmosError<
  "PLAN_SELF_UNKNOWN" | "PLAN_CLUSTER_UNKNOWN" | "PLAN_INVALID_CIDR"
> {
  override name = "PlanError";
}
