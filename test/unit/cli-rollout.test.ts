/** Rollout semantics of `kosmosctl install/join --wait` (kubectl rollout status), pure. */
import { describe, expect, test } from "bun:test";
import type { V1Deployment } from "@kubernetes/client-node";
import { daemonSetRollout, deploymentRollout } from "../../internal/cli/rollout.ts";

describe("rollout semantics (pure)", () => {
  const dep = (status: V1Deployment["status"], generation = 2): V1Deployment => ({
    metadata: { name: "c", generation },
    spec: { replicas: 2, selector: {}, template: {} },
    status,
  });
  test("a Deployment is rolled out when the new template's replicas are all available and no old ones remain", () => {
    expect(
      deploymentRollout(dep({ observedGeneration: 1, updatedReplicas: 2, availableReplicas: 2, replicas: 2 }))
        .complete,
    ).toBe(false); // stale
    expect(
      deploymentRollout(dep({ observedGeneration: 2, updatedReplicas: 2, availableReplicas: 1, replicas: 2 }))
        .complete,
    ).toBe(false);
    expect(
      deploymentRollout(dep({ observedGeneration: 2, updatedReplicas: 2, availableReplicas: 3, replicas: 3 }))
        .complete,
    ).toBe(false); // an old pod left
    expect(
      deploymentRollout(
        dep({ observedGeneration: 2, updatedReplicas: 2, availableReplicas: 2, replicas: 2 }),
      ),
    ).toMatchObject({ complete: true, done: 2, desired: 2 });
    const stuck = deploymentRollout(
      dep({
        observedGeneration: 2,
        conditions: [
          {
            type: "Progressing",
            status: "False",
            reason: "ProgressDeadlineExceeded",
            message: "ReplicaSet has timed out progressing.",
          },
        ],
      }),
    );
    expect(stuck.failed).toContain("timed out progressing");
  });
  test("a DaemonSet: pods of the current template on every node; `ready` also needs them available", () => {
    const ds = {
      metadata: { name: "a", generation: 1 },
      status: {
        observedGeneration: 1,
        desiredNumberScheduled: 3,
        currentNumberScheduled: 3,
        numberMisscheduled: 0,
        numberReady: 1,
        updatedNumberScheduled: 3,
        numberAvailable: 1,
      },
    };
    expect(daemonSetRollout(ds, "scheduled")).toMatchObject({ complete: true, done: 3, desired: 3 });
    expect(daemonSetRollout(ds, "ready")).toMatchObject({ complete: false, done: 1 });
    expect(daemonSetRollout({ ...ds, metadata: { name: "a", generation: 2 } }, "scheduled").complete).toBe(
      false,
    );
    expect(daemonSetRollout(undefined, "scheduled").complete).toBe(false);
  });
});
