/**
 * Key material never leaves the agent in text it reports (apply errors in logs and /v1/state,
 * kernel-monitor lines in debug logs): the key of `xfrm state … aead|enc|auth|auth-trunc ALG KEY`
 * is replaced by `0x…`. Algorithm, SPI and reqid stay (what an operator needs to tell states apart).
 */
const KEY_RE = /(\b(?:aead|enc|auth|auth-trunc|comp)\s+\S+\s+)(?:0x)?[0-9a-f]{8,}/gi;

export function redactKeys(text: string): string {
  return text.replace(KEY_RE, "$10x…");
}
