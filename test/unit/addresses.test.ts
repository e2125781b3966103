// The settings' address rules are pure code (they run in the window too); node:net is their oracle here.
import assert from 'node:assert/strict';
import { BlockList, isIP } from 'node:net';
import { test } from 'node:test';
import { FORBIDDEN_RANGES, forbiddenHostReason, inRange, ipFamily, isIpLiteral, isLoopbackHost } from '../../main/core/contract/addresses.js';

const ADDRESSES = [
  '0.0.0.0', '1.2.3.4', '127.0.0.1', '255.255.255.255', '256.1.1.1', '01.2.3.4', '1.2.3', '1.2.3.4.5', '1.2.3.4%x', ' 1.2.3.4',
  '169.254.0.0', '169.254.169.254', '169.255.0.1', '168.63.129.16', '168.63.129.17', '100.100.100.200', '192.0.0.192', '0.255.255.255',
  '::', '::1', '::0', '0::0', '1::', '1::2', 'fe80::', 'fe80::1', 'FE80::1', 'febf:ffff::1', 'fec0::1', 'fe80::1%eth0', 'fe80::1%',
  'fd00:ec2::254', 'fd00:ec2::255', '::ffff:1.2.3.4', '::ffff:169.254.1.1', '64:ff9b::a9fe:a9fe', '1:2:3:4:5:6:7:8', '1:2:3:4:5:6:7:8:9',
  '1::2:3:4:5:6:7', '1:2:3:4:5:6:1.2.3.4', '1:2:3:4:5:6:7:1.2.3.4', ':::1', '1:::2', '12345::', 'g::1', '[::1]', '::1]', 'localhost',
  'example.org', '', '2001:db8::', '2001:db8:0:0:0:0:2:1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', '::ffff:0.0.0.0',
];

/** Deterministic strings over the characters addresses are made of, for the cases a list forgets. */
function* randomCandidates(count: number): Generator<string> {
  let seed = 12345;
  const next = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  const alphabet = '0123456789abcdefABCDEF:.%g';
  for (let i = 0; i < count; i++) {
    let s = '';
    const length = 1 + (next() % 24);
    for (let j = 0; j < length; j++) s += alphabet[next() % alphabet.length];
    yield s;
  }
}

test('ipFamily answers as node:net isIP does', () => {
  for (const text of [...ADDRESSES, ...randomCandidates(20_000)]) assert.equal(ipFamily(text), isIP(text), JSON.stringify(text));
});

test('inRange agrees with node:net BlockList over the forbidden ranges', () => {
  const blocked = new BlockList();
  for (const range of FORBIDDEN_RANGES) blocked.addSubnet(range.network, range.prefix, range.family);
  const probes = ADDRESSES.filter((a) => isIP(a) !== 0 && !a.startsWith('::ffff:') && !a.startsWith('64:'));
  // Neighbours of every range boundary, too.
  probes.push('169.253.255.255', '169.254.255.255', '0.0.0.1', '1.0.0.0', 'fe7f:ffff::', 'fec0::', 'fd00:ec2::253', '::2');
  for (const address of probes) {
    const family = isIP(address) === 4 ? 'ipv4' : 'ipv6';
    const ours = FORBIDDEN_RANGES.some((range) => inRange(address, family, range));
    assert.equal(ours, blocked.check(address, family), address);
  }
});

test('loopback, literal and forbidden hosts', () => {
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1', '0:0:0:0:0:0:0:1']) assert.ok(isLoopbackHost(host), host);
  for (const host of ['0.0.0.0', '::', '192.168.1.5', 'example.org', '::2']) assert.ok(!isLoopbackHost(host), host);
  assert.ok(isIpLiteral('[fe80::1]') && isIpLiteral('10.0.0.1') && !isIpLiteral('host.example'));
  assert.match(forbiddenHostReason('[::ffff:169.254.169.254]') ?? '', /link-local/);
  assert.match(forbiddenHostReason('metadata.google.internal.') ?? '', /metadata service name/);
  assert.equal(forbiddenHostReason('10.0.0.1'), null);
  assert.equal(forbiddenHostReason('dicom.example.org'), null);
});
