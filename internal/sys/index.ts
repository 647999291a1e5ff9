/** internal/sys: running processes (one Runner for every command run to completion). */
export { type SysErrorCode, SysError } from "./errors.ts";
export {
  defaultRunner,
  execaRunner,
  netnsRunner,
  recordingRunner,
  type Runner,
  type RunOptions,
  type RunResult,
  runChecked,
  spawnRunner,
} from "./run.ts";
