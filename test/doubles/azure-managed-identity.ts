// Azure's managed identity token endpoints on 127.0.0.1, as Microsoft documents them, issuing the Entra
// double's tokens (so the Azure DICOM double accepts them):
//  - IMDS, on an Azure VM: GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=R, with the
//    header `Metadata: true`; a user-assigned identity is picked with client_id (or object_id, msi_res_id).
//    msal finds it at $AZURE_POD_IDENTITY_AUTHORITY_HOST instead of 169.254.169.254.
//  - Azure Arc (the agent's HIMDS), on an enrolled server: the same path with api-version=2020-06-01; the first
//    answer is 401 with `WWW-Authenticate: Basic realm=<a .key file only root and the agent's group can read>`,
//    and the caller proves it may read that file by asking again with `Authorization: Basic <its content>`.
//    msal finds it at $IDENTITY_ENDPOINT (with $IMDS_ENDPOINT set).
import type http from 'node:http';
import type { EntraDouble } from './entra.js';
import { listenLoopback, sendJson, type LoopbackServer } from './http-server.js';

export const TOKEN_PATH = '/metadata/identity/oauth2/token';

export interface ManagedIdentityRequest {
  apiVersion: string | null;
  resource: string | null;
  clientId: string | null;
  metadataHeader: boolean;
  /** Arc only: none (the first, challenged request), ok, or wrong. */
  secret: 'none' | 'ok' | 'wrong';
  status: number;
}

export interface ManagedIdentityDoubleOptions {
  kind: 'imds' | 'arc';
  entra: EntraDouble;
  /** Client ids of the user-assigned identities attached to the box. */
  userAssignedClientIds?: string[];
  /** Arc: the secret file named in the challenge, and its content. */
  arcSecret?: { file: string; content: string };
}

export class ManagedIdentityDouble {
  readonly requests: ManagedIdentityRequest[] = [];
  private server?: LoopbackServer;

  private constructor(private readonly options: ManagedIdentityDoubleOptions) {
    if (options.kind === 'arc' && !options.arcSecret) throw new Error('an Arc double needs arcSecret');
  }

  static async start(options: ManagedIdentityDoubleOptions): Promise<ManagedIdentityDouble> {
    const double = new ManagedIdentityDouble(options);
    double.server = await listenLoopback((req, res) => double.handle(req, res));
    return double;
  }

  get origin(): string {
    return this.server!.origin;
  }

  get tokenUrl(): string {
    return `${this.origin}${TOKEN_PATH}`;
  }

  /** Requests that got a token. */
  tokensIssued(): number {
    return this.requests.filter((r) => r.status === 200).length;
  }

  async stop(): Promise<void> {
    await this.server?.close();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.origin);
    const record: ManagedIdentityRequest = {
      apiVersion: url.searchParams.get('api-version'),
      resource: url.searchParams.get('resource'),
      clientId: url.searchParams.get('client_id'),
      metadataHeader: req.headers.metadata === 'true',
      secret: 'none',
      status: 0,
    };
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      record.status = status;
      this.requests.push(record);
      sendJson(res, status, body, headers);
    };
    const wantedVersion = this.options.kind === 'imds' ? '2018-02-01' : '2020-06-01';
    // msal asks for the path with a trailing slash, which Azure's endpoints accept too.
    if (req.method !== 'GET' || url.pathname.replace(/\/$/, '') !== TOKEN_PATH) return answer(404, { error: 'not_found' });
    if (!record.metadataHeader) return answer(400, { error: 'invalid_request', error_description: 'Required metadata header not specified' });
    if (record.apiVersion !== wantedVersion) return answer(400, { error: 'invalid_request', error_description: `Unsupported api-version ${record.apiVersion}` });
    if (!record.resource) return answer(400, { error: 'invalid_request', error_description: 'Required query variable resource is missing' });

    if (this.options.kind === 'arc') {
      const authorization = req.headers.authorization;
      if (!authorization) {
        return answer(401, { error: 'unauthorized', error_description: 'Use the secret in the file named by WWW-Authenticate' },
          { 'www-authenticate': `Basic realm=${this.options.arcSecret!.file}` });
      }
      record.secret = authorization === `Basic ${this.options.arcSecret!.content}` ? 'ok' : 'wrong';
      if (record.secret === 'wrong') return answer(401, { error: 'unauthorized', error_description: 'The secret does not match' });
    }

    if (record.clientId && !(this.options.userAssignedClientIds ?? []).includes(record.clientId)) {
      return answer(400, { error: 'invalid_request', error_description: 'Identity not found' });
    }
    const lifetime = 3600;
    const accessToken = await this.options.entra.issueAccessToken({
      audience: record.resource,
      lifetimeSeconds: lifetime,
      claims: { idtyp: 'app', ...(record.clientId ? { appid: record.clientId } : {}) },
    });
    const now = Math.floor(Date.now() / 1000);
    return answer(200, {
      access_token: accessToken,
      refresh_token: '',
      expires_in: String(lifetime),
      expires_on: String(now + lifetime),
      not_before: String(now),
      resource: record.resource,
      token_type: 'Bearer',
      ...(record.clientId ? { client_id: record.clientId } : {}),
    });
  }
}
