/** Which lab config a `kosmosctl lab` command uses: a file (`-f`), a named preset (`--preset`), or the default. */
import { readFile } from "node:fs/promises";
import { Option } from "commander";
import { DEFAULT_LAB, LAB_PRESETS, type LabConfig, LabConfigError, parseLabConfig } from "../lab/index.ts";

export async function loadConfig(file?: string, preset?: string): Promise<LabConfig> {
  if (file && preset)
    throw new LabConfigError("--config and --preset both given", "a lab is one config: pick one");
  if (preset) {
    const p = LAB_PRESETS[preset];
    if (!p)
      throw new LabConfigError(
        `no lab preset "${preset}"`,
        `presets: ${Object.keys(LAB_PRESETS).join(", ")} (docs/lab.md)`,
      );
    return parseLabConfig(p);
  }
  if (!file) return parseLabConfig(DEFAULT_LAB);
  return parseLabConfig(await readFile(file, "utf8"));
}

export function presetOption() {
  return new Option(
    "--preset <name>",
    `a named lab config instead of a file: ${Object.keys(LAB_PRESETS).join(", ")} (tree: a root cluster and two leaves for ClusterTree)`,
  );
}
