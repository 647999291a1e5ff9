/**
 * The one strength rule for bearer tokens, whichever way they are given (agent --token /
 * KOSMOS_TOKEN, --auth-file, the controller's --token / KOSMOS_TOKEN). Guessing a token needs the
 * agent online (rate-limited, see auth.ts and identity.ts), so length is what is asked for; the
 * rest of the rule keeps tokens usable in an Authorization header.
 */

export const TOKEN_MIN_LENGTH = 16;

/** What the agent and the controller say at start-up, and the hint of a refusal. */
export const TOKEN_POLICY = `bearer tokens need at least ${TOKEN_MIN_LENGTH} characters and no whitespace or control characters (e.g. openssl rand -hex 32; kosmosctl install generates 64 hex characters)`;

/** Why `token` is refused (a phrase that completes "the token …"), or null when it is acceptable. */
export function tokenWeakness(token: string): string | null {
  const n = [...token].length;
  if (n < TOKEN_MIN_LENGTH)
    return `has ${n} character${n === 1 ? "" : "s"}, fewer than the ${TOKEN_MIN_LENGTH} required`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\s\x00-\x1f\x7f]/.test(token))
    return "contains whitespace or control characters, which an Authorization header cannot carry";
  return null;
}
