/**
 * What a host name or address is, for the settings rules: loopback (where plain http is harmless),
 * and link-local or cloud metadata addresses (where a destination must never point: the instance
 * metadata service hands out the machine's own cloud credentials).
 *
 * Pure code on purpose: the settings schema runs in the window too, where there is no node:net.
 * test/unit/addresses.test.ts holds it to node:net's isIP and BlockList.
 */

// The address grammar of node:net's isIP (lib/internal/net.js): dotted quads without leading zeros,
// and IPv6 in every compressed form, with an optional embedded dotted quad and zone index.
const V4_SEG = '(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])';
const V4 = `(?:${V4_SEG}\\.){3}${V4_SEG}`;
const V6_SEG = '(?:[0-9a-fA-F]{1,4})';
const IPV4 = new RegExp(`^${V4}$`);
const IPV6 = new RegExp('^(?:' +
  `(?:${V6_SEG}:){7}(?:${V6_SEG}|:)|` +
  `(?:${V6_SEG}:){6}(?:${V4}|:${V6_SEG}|:)|` +
  `(?:${V6_SEG}:){5}(?::${V4}|(?::${V6_SEG}){1,2}|:)|` +
  `(?:${V6_SEG}:){4}(?:(?::${V6_SEG}){0,1}:${V4}|(?::${V6_SEG}){1,3}|:)|` +
  `(?:${V6_SEG}:){3}(?:(?::${V6_SEG}){0,2}:${V4}|(?::${V6_SEG}){1,4}|:)|` +
  `(?:${V6_SEG}:){2}(?:(?::${V6_SEG}){0,3}:${V4}|(?::${V6_SEG}){1,5}|:)|` +
  `(?:${V6_SEG}:){1}(?:(?::${V6_SEG}){0,4}:${V4}|(?::${V6_SEG}){1,6}|:)|` +
  `(?::(?:(?::${V6_SEG}){0,5}:${V4}|(?::${V6_SEG}){1,7}|:))` +
  ')(?:%[0-9a-zA-Z-.:]{1,})?$');

/** 4 or 6 for an IP address literal, else 0 (what node:net's isIP answers). */
export function ipFamily(text: string): 0 | 4 | 6 {
  if (IPV4.test(text)) return 4;
  if (IPV6.test(text)) return 6;
  return 0;
}

function bare(host: string): string {
  return host.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
}

/** The 8 groups of an IPv6 address (with an embedded dotted quad allowed at the end). */
function ipv6Groups(address: string): number[] | null {
  if (ipFamily(address) !== 6) return null;
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
  const family = ipFamily(h);
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

/** A block of addresses: `prefix` leading bits of `network`. */
export interface AddressRange {
  network: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** Addresses a destination or sign-in URL must never name. */
export const FORBIDDEN_RANGES: readonly AddressRange[] = [
  { network: '169.254.0.0', prefix: 16, family: 'ipv4' }, // link-local; AWS, GCP, Azure, OpenStack metadata at 169.254.169.254
  { network: '0.0.0.0', prefix: 8, family: 'ipv4' }, // "this host": reaches the machine itself
  { network: '168.63.129.16', prefix: 32, family: 'ipv4' }, // Azure WireServer
  { network: '100.100.100.200', prefix: 32, family: 'ipv4' }, // Alibaba Cloud metadata
  { network: '192.0.0.192', prefix: 32, family: 'ipv4' }, // Oracle Cloud metadata
  { network: 'fe80::', prefix: 10, family: 'ipv6' }, // link-local
  { network: 'fd00:ec2::254', prefix: 128, family: 'ipv6' }, // AWS metadata over IPv6
  { network: '::', prefix: 128, family: 'ipv6' },
];

/** The address as bits, most significant first: 4 bytes for IPv4, 16 for IPv6. */
function addressBytes(address: string, family: 'ipv4' | 'ipv6'): number[] | null {
  if (family === 'ipv4') return ipFamily(address) === 4 ? address.split('.').map(Number) : null;
  return ipv6Groups(address)?.flatMap((g) => [g >> 8, g & 0xff]) ?? null;
}

/** True when `address` (canonical, of `family`) lies in `range`. */
export function inRange(address: string, family: 'ipv4' | 'ipv6', range: AddressRange): boolean {
  if (family !== range.family) return false;
  const a = addressBytes(address, family);
  const n = addressBytes(range.network, family);
  if (!a || !n) return false;
  for (let bit = 0; bit < range.prefix; bit++) {
    const mask = 0x80 >> (bit % 8);
    if ((a[bit >> 3]! & mask) !== (n[bit >> 3]! & mask)) return false;
  }
  return true;
}

const METADATA_NAMES = new Set(['metadata', 'metadata.google.internal', 'metadata.goog', 'instance-data', 'instance-data.ec2.internal']);

/** Why `host` is refused as a destination host (link-local, metadata or unspecified), or null. */
export function forbiddenHostReason(host: string): string | null {
  const h = bare(host);
  if (METADATA_NAMES.has(h)) return `${h} is a cloud metadata service name`;
  const address = canonicalAddress(h);
  if (!address) return null;
  if (!FORBIDDEN_RANGES.some((range) => inRange(address.address, address.family, range))) return null;
  return `${h} is a link-local, metadata or unspecified address`;
}

/** True for an IP address literal (with or without brackets). */
export function isIpLiteral(host: string): boolean {
  return ipFamily(bare(host)) !== 0;
}
