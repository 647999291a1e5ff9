export class PlanError extends Error {
  constructor(
    readonly code: "PLAN_SELF_UNKNOWN" | "PLAN_CLUSTER_UNKNOWN" | "PLAN_INVALID_CIDR",
    message: string,
    readonly hint: string,
  ) {
    super(message);
    this.name = "PlanError";
  }
}
