import { describe, expect, test } from "bun:test";
import { redactKeys } from "../../internal/dataplane/redact.ts";

describe("redactKeys", () => {
  test("AEAD, enc, auth and auth-trunc keys are masked; SPI, reqid and algorithms stay", () => {
    const add =
      "ip xfrm state add src 192.168.1.1 dst 192.168.2.1 proto esp spi 0xef3e11f8 reqid 1272015249 mode tunnel aead rfc4106(gcm(aes)) 0xc9d38dce00d2af2f79555e1cbc3366b92f408bee 128";
    expect(redactKeys(add)).toBe(
      "ip xfrm state add src 192.168.1.1 dst 192.168.2.1 proto esp spi 0xef3e11f8 reqid 1272015249 mode tunnel aead rfc4106(gcm(aes)) 0x… 128",
    );
    const cbc =
      "enc cbc(aes) 0x0102030405060708090a0b0c0d0e0f10 auth-trunc hmac(sha256) 0x0102030405060708090a0b0c0d0e0f10 128 auth hmac(sha1) 0102030405060708";
    expect(redactKeys(cbc)).toBe("enc cbc(aes) 0x… auth-trunc hmac(sha256) 0x… 128 auth hmac(sha1) 0x…");
    const policy = "xfrm policy update src 10.1.0.0/16 dst 10.2.0.0/16 dir out priority 100 tmpl src 1.1.1.1 dst 2.2.2.2 proto esp reqid 1258291201 mode tunnel";
    expect(redactKeys(policy)).toBe(policy);
  });
});
