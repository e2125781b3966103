/**
 * A host name can resolve to an address a destination must never reach (a cloud metadata service at
 * 169.254.169.254, link-local, "this host"). Settings refuse such addresses when a URL names them literally;
 * this lookup refuses them when a name resolves to one, at connect time, so a DNS answer cannot lead a
 * request (and the token it carries) there. Literal addresses skip the lookup: settings have checked them,
 * and the managed-identity endpoint is reached by its literal address on purpose.
 */
import dns, { type LookupAddress, type LookupOptions } from 'node:dns';
import { forbiddenHostReason } from '../contract/addresses.js';

export const FORBIDDEN_ADDRESS_CODE = 'EFORBIDDENADDRESS';

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/** A `lookup` for net/tls connect options (node:http agents and undici connectors) that refuses forbidden addresses. */
export function guardedLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  // dns.lookup is looked up at call time, so a test can stand in a resolver for it.
  dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) return callback(error, []);
    const forbidden = addresses.find((entry) => forbiddenHostReason(entry.address) !== null);
    if (forbidden) {
      const refusal: NodeJS.ErrnoException = new Error(
        `${hostname} resolves to ${forbidden.address}, a link-local, metadata or unspecified address: refused`,
      );
      refusal.code = FORBIDDEN_ADDRESS_CODE;
      return callback(refusal, []);
    }
    if (options.all) return callback(null, addresses);
    const first = addresses[0];
    if (!first) {
      const none: NodeJS.ErrnoException = new Error(`${hostname} has no address`);
      none.code = 'ENOTFOUND';
      return callback(none, []);
    }
    callback(null, first.address, first.family);
  });
}
