// Device authorization grants (RFC 8628) of the Entra double: issued codes, the user's approval
// or refusal (driven by the test), and what a token poll gets back.
import { randomBytes, randomUUID } from 'node:crypto';
import { OAuthError } from './entra-oauth.js';

export interface UserIdentity {
  oid?: string;
  upn?: string;
  name?: string;
  /** Delegated scopes put in `scp`. Default 'user_impersonation'. */
  scp?: string;
  roles?: string[];
}

export type SignedInUser = Required<Pick<UserIdentity, 'oid' | 'upn' | 'name' | 'scp'>> & { roles?: string[] };

export interface DeviceCodeGrant {
  userCode: string;
  deviceCode: string;
  clientId: string;
  scopes: string[];
  expiresAt: number;
  status: 'pending' | 'approved' | 'declined' | 'redeemed';
  user?: SignedInUser;
}

export class DeviceCodes {
  private readonly grants = new Map<string, DeviceCodeGrant>();
  private readonly handedOut = new Set<string>();
  private readonly waiters: Array<(grant: DeviceCodeGrant) => void> = [];

  issue(clientId: string, scopes: string[], lifetimeSeconds: number): DeviceCodeGrant {
    const grant: DeviceCodeGrant = {
      userCode: newUserCode(),
      deviceCode: randomBytes(32).toString('base64url'),
      clientId,
      scopes,
      expiresAt: Date.now() + lifetimeSeconds * 1000,
      status: 'pending',
    };
    this.grants.set(grant.deviceCode, grant);
    const waiter = this.waiters.shift();
    if (waiter) {
      this.handedOut.add(grant.userCode);
      waiter(grant);
    }
    return grant;
  }

  approve(userCode: string, user: UserIdentity): void {
    const grant = this.pending(userCode);
    grant.status = 'approved';
    grant.user = {
      oid: user.oid ?? randomUUID(),
      upn: user.upn ?? 'technician@contoso.test',
      name: user.name ?? 'Test Technician',
      scp: user.scp ?? 'user_impersonation',
      roles: user.roles,
    };
  }

  decline(userCode: string): void {
    this.pending(userCode).status = 'declined';
  }

  /** Resolves with a pending code not handed out yet, or with the next one issued. */
  next(): Promise<DeviceCodeGrant> {
    for (const grant of this.grants.values()) {
      if (grant.status === 'pending' && !this.handedOut.has(grant.userCode)) {
        this.handedOut.add(grant.userCode);
        return Promise.resolve(grant);
      }
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /** A token poll: the signed-in user once approved, else the OAuth error Entra answers. */
  redeem(deviceCode: string, clientId: string | null): { grant: DeviceCodeGrant; user: SignedInUser } {
    const grant = this.grants.get(deviceCode);
    if (!grant || grant.clientId !== clientId) {
      throw new OAuthError(400, 'invalid_grant', 70000, 'The provided value for the input parameter device_code is not valid.');
    }
    if (Date.now() > grant.expiresAt) {
      throw new OAuthError(400, 'expired_token', 70020, 'The provided value for the input parameter device_code has expired.');
    }
    if (grant.status === 'pending') {
      throw new OAuthError(400, 'authorization_pending', 70016, 'OAuth 2.0 device flow error. Authorization is pending. Continue polling.');
    }
    if (grant.status === 'declined') {
      throw new OAuthError(400, 'authorization_declined', 70000, 'The user declined the authorization request.');
    }
    if (grant.status === 'redeemed' || !grant.user) {
      throw new OAuthError(400, 'invalid_grant', 54005, 'The device code was already redeemed.');
    }
    grant.status = 'redeemed';
    return { grant, user: grant.user };
  }

  private pending(userCode: string): DeviceCodeGrant {
    for (const grant of this.grants.values()) {
      if (grant.userCode === userCode && grant.status === 'pending') return grant;
    }
    throw new Error(`No pending device code with user code ${userCode}`);
  }
}

function newUserCode(): string {
  const alphabet = 'ABCDEFGHJKLMNPQRSTUVWXYZ23456789';
  return Array.from(randomBytes(9), (b) => alphabet[b % alphabet.length]).join('');
}
