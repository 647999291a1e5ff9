import { describe, expect, test } from "bun:test";
import { webCredentials } from "../../internal/agent/config.ts";

describe("credentials from upstream node-agent's environment", () => {
  test("WEB_USER and WEB_PASS together are one Basic user; neither is none; one alone is an error naming the other", () => {
    expect(webCredentials({ WEB_USER: "kosmos", WEB_PASS: "web-pass-0123456789" })).toEqual({
      user: "kosmos",
      password: "web-pass-0123456789",
    });
    expect(webCredentials({})).toBeUndefined();
    expect(webCredentials({ WEB_USER: "", WEB_PASS: "" })).toBeUndefined();
    expect(() => webCredentials({ WEB_USER: "kosmos" })).toThrow(/WEB_PASS is not set but WEB_USER is/);
    expect(() => webCredentials({ WEB_PASS: "x" })).toThrow(/WEB_USER is not set but WEB_PASS is/);
  });
});
