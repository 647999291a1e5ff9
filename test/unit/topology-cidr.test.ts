import { describe, expect, test } from "bun:test";
import { IPv4, IPv6, Validator } from "ip-num";
import {
  CidrError,
  canonicalCidr,
  canonicalIp,
  cidrContains,
  cidrOverlaps,
  familyOf,
  mapToGlobal,
  overlayAddress,
  overlayMapper,
  parseCidr,
  parseIp,
  tryParseCidr,
  tryParseIp,
} from "../../internal/topology/index.ts";

describe("parse and canonicalize", () => {
  test("canonical CIDRs clear host bits", () => {
    expect(canonicalCidr("10.244.3.7/16")).toBe("10.244.0.0/16");
    expect(canonicalCidr("0.0.0.0/0")).toBe("0.0.0.0/0");
    expect(canonicalCidr("FD10:0001:0000::1/48")).toBe("fd10:1::/48");
    expect(canonicalCidr("2001:db8:0:0:1:0:0:1/128")).toBe("2001:db8::1:0:0:1/128");
    expect(canonicalCidr("::/0")).toBe("::/0");
    expect(canonicalCidr("::ffff:1.2.3.4/128")).toBe("::ffff:102:304/128");
    expect(parseCidr("10.0.0.0/8").last).toBe(BigInt(0x0affffff));
  });

  test("rejects garbage", () => {
    for (const bad of [
      "",
      "10.0.0.300/8",
      "10.0.0.0/33",
      "fd00::/129",
      "10.0.0.0",
      "10.0.0.0/",
      "/8",
      "10.0.0/8",
      "10.0.0.0.0/8",
      "010.0.0.0/8",
      "10.0.0.0/08",
      " 10.0.0.0/8",
      "10.0.0.0/8 ",
      "fd00:::/64",
      "fd00::1::/64",
      "1:2:3:4:5:6:7:8:9/64",
      "1:2:3:4:5:6:7:8::/64",
      "fe80::1%eth0/64",
      "12345::/16",
      "g::/16",
    ]) {
      expect(tryParseCidr(bad)).toBeUndefined();
      expect(() => parseCidr(bad)).toThrow(CidrError);
    }
    try {
      parseCidr("10.0.0.300/8");
    } catch (e) {
      expect((e as CidrError).code).toBe("CIDR_INVALID");
      expect((e as CidrError).hint).toContain("prefix");
    }
  });

  test("IP parsing and canonical text (RFC 5952)", () => {
    expect(canonicalIp("192.168.1.7")).toBe("192.168.1.7");
    expect(canonicalIp("2001:0db8:0000:0000:0000:0000:0000:0001")).toBe("2001:db8::1");
    expect(canonicalIp("2001:db8:0:1:0:0:1:1")).toBe("2001:db8:0:1::1:1");
    expect(canonicalIp("1:0:0:1:0:0:0:1")).toBe("1:0:0:1::1");
    expect(canonicalIp("1:0:0:2:0:0:3:4")).toBe("1::2:0:0:3:4");
    expect(canonicalIp("1:2:3:4:5:6:7:0")).toBe("1:2:3:4:5:6:7:0");
    expect(canonicalIp("::")).toBe("::");
    expect(canonicalIp("::1")).toBe("::1");
    expect(tryParseIp("1.2.3")).toBeUndefined();
    expect(tryParseIp("1.2.3.4/32")).toBeUndefined();
    expect(() => parseIp("nope")).toThrow(CidrError);
    expect(familyOf("10.0.0.0/8")).toBe(4);
    expect(familyOf("fd00::1")).toBe(6);
    expect(() => familyOf("x")).toThrow(CidrError);
  });

  test("agrees with ip-num on random addresses", () => {
    let seed = 12345;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 500; i++) {
      const v4 = [rnd() & 255, rnd() & 255, rnd() & 255, rnd() & 255].join(".");
      expect(parseIp(v4).value).toBe(IPv4.fromString(v4).getValue());
      const groups = Array.from({ length: 8 }, () => ((rnd() & 3) === 0 ? 0 : rnd() & 0xffff).toString(16));
      const v6 = groups.join(":");
      const ours = parseIp(v6).value;
      expect(ours).toBe(IPv6.fromString(v6).getValue());
      // our compressed text parses back, and ip-num reads it to the same value
      const text = canonicalIp(v6);
      expect(IPv6.fromString(text).getValue()).toBe(ours);
      const len = rnd() % 129;
      expect(tryParseCidr(`${v6}/${len}`) !== undefined).toBe(
        Validator.isValidIPv6CidrNotation(`${v6}/${len}`)[0],
      );
    }
  });
});

describe("relations", () => {
  test("contains and overlaps", () => {
    expect(cidrContains("10.0.0.0/8", "10.1.0.0/16")).toBe(true);
    expect(cidrContains("10.1.0.0/16", "10.0.0.0/8")).toBe(false);
    expect(cidrContains("10.0.0.0/8", "10.255.255.255")).toBe(true);
    expect(cidrContains("10.0.0.0/8", "11.0.0.0")).toBe(false);
    expect(cidrContains("::/0", "10.0.0.0/8")).toBe(false);
    expect(cidrContains("fd10::/16", "fd10:1::/48")).toBe(true);
    expect(cidrOverlaps("10.0.0.0/8", "10.2.0.0/16")).toBe(true);
    expect(cidrOverlaps("10.2.0.0/16", "10.0.0.0/8")).toBe(true);
    expect(cidrOverlaps("10.0.0.0/16", "10.1.0.0/16")).toBe(false);
    expect(cidrOverlaps("0.0.0.0/0", "::/0")).toBe(false);
  });

  test("maps a sub-prefix from local to global", () => {
    expect(mapToGlobal("10.244.3.0/24", "10.244.0.0/16", "242.1.0.0/16")).toBe("242.1.3.0/24");
    expect(mapToGlobal("10.244.0.0/16", "10.244.0.0/16", "242.1.0.0/16")).toBe("242.1.0.0/16");
    expect(mapToGlobal("fd10:1:0:5::/64", "fd10:1::/48", "fd42:1::/48")).toBe("fd42:1:0:5::/64");
    expect(() => mapToGlobal("10.245.0.0/24", "10.244.0.0/16", "242.1.0.0/16")).toThrow(CidrError);
    expect(() => mapToGlobal("10.244.0.0/24", "10.244.0.0/16", "242.0.0.0/8")).toThrow(CidrError);
  });

  test("overlay address keeps the underlay host bits", () => {
    expect(overlayAddress("192.168.1.7", "220.0.0.0/8")).toBe("220.168.1.7/8");
    expect(overlayAddress("192.168.1.7", "210.0.0.0/8")).toBe("210.168.1.7/8");
    expect(overlayAddress("10.1.2.3", "100.64.0.0/10")).toBe("100.65.2.3/10");
    expect(overlayAddress("fd00:1ab:2::3", "9480::/16")).toBe("9480:1ab:2::3/16");
    expect(() => overlayAddress("fd00::1", "220.0.0.0/8")).toThrow(CidrError);
    const m4 = overlayMapper("220.0.0.0/8");
    expect(m4.ip("192.168.255.254")).toBe("220.168.255.254");
    expect(m4.ip("fd00::1")).toBeUndefined();
    const m6 = overlayMapper("9470::/16");
    expect(m6.ip("fd00:1ab:2::3")).toBe("9470:1ab:2::3");
    expect(m6.ip("1.2.3.4")).toBeUndefined();
  });
});
