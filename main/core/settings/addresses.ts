/**
 * What a host name or address is, for the settings rules: loopback (where plain http is harmless),
 * and link-local or cloud metadata addresses (where a destination must never point: the instance
 * metadata service hands out the machine's own cloud credentials).
 */
import { BlockList, isIP } from 'node:net';

function bare(host: string): string {
  return host.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
}

/** The 8 groups of an IPv6 address (with an embedded dotted quad allowed at the end). */
function ipv6Groups(address: string): number[] | null {
  if (isIP(address) !== 6) return null;
  let text = address.replace(/%.*$/, '');
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted[1]!.split('.').map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const parse = (part: string | undefined) => (part ? part.split(':').map((g) => parseInt(g, 16)) : []);
  const left = parse(head);
  const right = parse(tail);
  const zeros = tail === undefined ? [] : new Array<number>(8 - left.length - right.length).fill(0);
  const groups = [...left, ...zeros, ...right];
  return groups.length === 8 ? groups : null;
}

/** The IPv4 address carried by an IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible or NAT64 (64:ff9b::/96) IPv6 address. */
function embeddedIpv4(address: string): string | null {
  const g = ipv6Groups(address);
  if (!g) return null;
  const zeroPrefix = g.slice(0, 5).every((x) => x === 0);
  const mapped = zeroPrefix && g[5] === 0xffff;
  const compatible = zeroPrefix && g[5] === 0 && (g[6] !== 0 || g[7]! > 1);
  const nat64 = g[0] === 0x64 && g[1] === 0xff9b && g.slice(2, 6).every((x) => x === 0);
  if (!mapped && !compatible && !nat64) return null;
  return [g[6]! >> 8, g[6]! & 0xff, g[7]! >> 8, g[7]! & 0xff].join('.');
}

/** IPv4 as such, or the IPv4 address inside an IPv6 form of it; other IPv6 unchanged. */
function canonicalAddress(host: string): { address: string; family: 'ipv4' | 'ipv6' } | null {
  const h = bare(host);
  const family = isIP(h);
  if (family === 4) return { address: h, family: 'ipv4' };
  if (family !== 6) return null;
  const v4 = embeddedIpv4(h);
  return v4 ? { address: v4, family: 'ipv4' } : { address: h, family: 'ipv6' };
}

export function isLoopbackHost(host: string): boolean {
  const h = bare(host);
  if (h === 'localhost') return true;
  const address = canonicalAddress(h);
  if (!address) return false;
  if (address.family === 'ipv4') return address.address.startsWith('127.');
  return ipv6Groups(address.address)?.every((x, i) => x === (i === 7 ? 1 : 0)) ?? false;
}

/** Addresses a destination or sign-in URL must never name. */
const forbidden = new BlockList();
forbidden.addSubnet('169.254.0.0', 16, 'ipv4'); // link-local; AWS, GCP, Azure, OpenStack metadata at 169.254.169.254
forbidden.addSubnet('0.0.0.0', 8, 'ipv4'); // "this host": reaches the machine itself
forbidden.addAddress('168.63.129.16', 'ipv4'); // Azure WireServer
forbidden.addAddress('100.100.100.200', 'ipv4'); // Alibaba Cloud metadata
forbidden.addAddress('192.0.0.192', 'ipv4'); // Oracle Cloud metadata
forbidden.addSubnet('fe80::', 10, 'ipv6'); // link-local
forbidden.addAddress('fd00:ec2::254', 'ipv6'); // AWS metadata over IPv6
forbidden.addAddress('::', 'ipv6');

const METADATA_NAMES = new Set(['metadata', 'metadata.google.internal', 'metadata.goog', 'instance-data', 'instance-data.ec2.internal']);

/** Why `host` is refused as a destination host (link-local, metadata or unspecified), or null. */
export function forbiddenHostReason(host: string): string | null {
  const h = bare(host);
  if (METADATA_NAMES.has(h)) return `${h} is a cloud metadata service name`;
  const address = canonicalAddress(h);
  if (!address) return null;
  if (!forbidden.check(address.address, address.family)) return null;
  return `${h} is a link-local, metadata or unspecified address`;
}

/** True for an IP address literal (with or without brackets). */
export function isIpLiteral(host: string): boolean {
  return isIP(bare(host)) !== 0;
}
