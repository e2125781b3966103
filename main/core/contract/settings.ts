import { z } from 'zod';
import { uidProblem } from '../dicom/uid.js';
import { forbiddenHostReason, isIpLiteral, isLoopbackHost } from './addresses.js';

/** AE titles: 1–16 characters of the default repertoire, no backslash or control characters (PS3.5 6.2). */
export const aeTitle = z
  .string()
  .regex(/^[\x20-\x5b\x5d-\x7e]{1,16}$/, 'must be 1 to 16 printable ASCII characters without backslash')
  .refine((v) => v.trim().length > 0, 'must not be only spaces');

/** The window shows these messages next to its fields, so each one reads as the rest of a sentence about the field. */
const PORT = 'must be a whole number from 1 to 65535';
const port = z.number({ error: PORT }).int(PORT).min(1, PORT).max(65535, PORT);
const HOST_NAME = /^(?=.{1,253}\.?$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*\.?$/i;
const BYTES = 'must be a whole number of at least 0';
const byteCount = z.number({ error: BYTES }).int(BYTES).min(0, BYTES);
const required = z.string({ error: (issue) => (issue.input === undefined ? 'is required' : 'must be text') }).min(1, 'is required');

export const peerSchema = z.object({
  aeTitle,
  host: required,
  port,
  description: z.string().default(''),
});

export const tlsSchema = z.object({
  enabled: z.boolean().default(false),
  port: port.default(2762),
  certFile: z.string().default(''),
  keyFile: z.string().default(''),
  caFile: z.string().default(''),
  requireClientCertificate: z.boolean().default(false),
});

export const dimseSchema = z.object({
  host: z.string().default('0.0.0.0'),
  port: port.default(11112),
  acceptAnyCalledAe: z.boolean().default(false),
  allowedCallingAes: z.array(aeTitle).default([]),
  maxAssociations: z.number().int().min(1).max(1024).default(16),
  acceptPrivateSopClasses: z.boolean().default(false),
  artimTimeoutMs: z.number().int().min(1000).default(30_000),
  associationTimeoutMs: z.number().int().min(1000).default(300_000),
  dimseIdleTimeoutMs: z.number().int().min(1000).default(60_000),
  tls: tlsSchema.prefault({}),
});

export const httpSchema = z.object({
  host: z.string().default('127.0.0.1'),
  port: port.default(8780),
  /** Session token for the API; empty means one is generated at each start. */
  apiToken: z.string().default(''),
  /** For non-loopback binds: HTTP basic credential, password stored as a scrypt hash. */
  basicAuth: z
    .object({ user: required, passwordHash: z.string().regex(/^scrypt\$/, 'must be a scrypt$… hash') })
    .optional(),
  corsOrigins: z.array(z.string().url()).default([]),
  /**
   * Host names the HTTP server answers to besides loopback names and addresses and the bound address
   * (with a wildcard bind: any IP address). Anything else is refused, so a DNS-rebinding page cannot use it.
   */
  allowedHosts: z
    .array(z.string().refine((v) => isIpLiteral(v) || HOST_NAME.test(v), 'must be a host name or IP address, without scheme or port'))
    .default([]),
  /**
   * HTTPS, which the server speaks whenever host is not loopback: a PEM certificate and key; both empty means a
   * self-signed certificate made at first start and kept in the data dir.
   */
  tls: z
    .object({ certFile: z.string().default(''), keyFile: z.string().default('') })
    .prefault({})
    .superRefine((tls, ctx) => {
      if (tls.certFile && !tls.keyFile) ctx.addIssue({ code: 'custom', path: ['keyFile'], message: 'is required when http.tls.certFile is set' });
      if (tls.keyFile && !tls.certFile) ctx.addIssue({ code: 'custom', path: ['certFile'], message: 'is required when http.tls.keyFile is set' });
    }),
  maxRequestBytes: byteCount.default(4 * 1024 ** 3),
  /** Longest a request may take to arrive in full (headers and body); longer ones get 408 and are cut. */
  requestTimeoutMs: z.number().int().min(1000).max(24 * 3_600_000).default(3_600_000),
  /** A request body that sends nothing for this long is cut (408), so a stalled upload holds nothing. */
  bodyIdleTimeoutMs: z.number().int().min(1000).max(3_600_000).default(60_000),
  /** Threads for image work (rendered, thumbnails, WADO-URI images, conversion to Explicit VR LE); 0: one fewer than the cores, at least 1. */
  imageThreads: z.number({ error: 'must be a number of threads' }).int('must be a whole number').min(0, 'must be 0 (one fewer than the cores) or more').max(64, 'must be at most 64').default(0),
  /** Image tasks that may wait for a thread; a request past that gets 503 with Retry-After. */
  imageQueue: z.number({ error: 'must be a number of tasks' }).int('must be a whole number').min(1, 'must be at least 1').max(10_000, 'must be at most 10000').default(32),
  /**
   * Bytes of rendered thumbnails kept on disk (data dir cache/thumbnails), least recently used out first; 0 keeps
   * none. Thumbnails of an instance go with it (deleted, evicted, replaced).
   */
  thumbnailCacheBytes: byteCount.default(256 * 1024 ** 2),
});

export const storageSchema = z.object({
  /** 0 means no limit. */
  maxArchiveBytes: byteCount.default(0),
  /** Ingest is refused when the free space of the data dir's filesystem would fall below this. */
  minFreeBytes: byteCount.default(1024 ** 3),
  /** Evict delivered studies, oldest first, to stay within the limits. */
  evictDelivered: z.boolean().default(false),
});

/**
 * Where the appliance sends images or a client secret: a URL with a host and no embedded credentials,
 * never a link-local or cloud metadata address. Plain http is refused here for `httpsOnly` URLs; the
 * destination decides about its own baseUrl (loopback, or allowInsecureHttp).
 */
function remoteUrl(httpsOnly: boolean) {
  return z.string().superRefine((value, ctx) => {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be a URL such as https://workspace-service.dicom.azurehealthcareapis.com/v2' });
      return;
    }
    const allowed = httpsOnly ? ['https:'] : ['https:', 'http:'];
    if (!allowed.includes(url.protocol)) {
      ctx.addIssue({ code: 'custom', message: `must be an https: URL, not ${url.protocol}` });
      return;
    }
    if (url.username || url.password) ctx.addIssue({ code: 'custom', message: 'must not carry a user name or password (credentials belong under auth)' });
    const forbidden = forbiddenHostReason(url.hostname);
    if (forbidden) ctx.addIssue({ code: 'custom', message: `must not point at a link-local or metadata address: ${forbidden}` });
  });
}

/** A destination secret: `enc:v1:…` as sealed by forward/secrets.ts, or plain text typed by hand (sealed at the next start). */
const secret = required;

export const destinationAuthSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('none') }),
  z.object({ kind: z.literal('basic'), user: required, password: secret }),
  z.object({ kind: z.literal('bearer'), token: secret }),
  z.object({
    kind: z.literal('entra-client-secret'),
    tenantId: required,
    clientId: required,
    clientSecret: secret,
    authority: remoteUrl(true).optional(),
    scope: z.string().default('https://dicom.healthcareapis.azure.com/.default'),
  }),
  z.object({
    kind: z.literal('entra-client-certificate'),
    tenantId: required,
    clientId: required,
    certificateFile: required,
    privateKeyFile: required,
    authority: remoteUrl(true).optional(),
    scope: z.string().default('https://dicom.healthcareapis.azure.com/.default'),
  }),
  z.object({
    kind: z.literal('entra-device-code'),
    tenantId: required,
    clientId: required,
    authority: remoteUrl(true).optional(),
    scope: z.string().default('https://dicom.healthcareapis.azure.com/.default'),
  }),
  /**
   * The box's own Azure identity (a VM in Azure, or a server enrolled in Azure Arc): no secret to keep. Without
   * clientId the system-assigned identity; with it, that user-assigned identity.
   */
  z.object({
    kind: z.literal('managed-identity'),
    clientId: z.string().min(1, 'must not be empty (leave it out for the system-assigned identity)').optional(),
    scope: z.string().regex(/^https:\/\/\S+$/, 'must be the https resource URI, optionally ending in /.default').default('https://dicom.healthcareapis.azure.com/.default'),
  }),
]);

export const destinationSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1 to 64 letters, digits, - or _'),
  baseUrl: remoteUrl(false),
  /** Plain http to a host other than loopback (a DICOMweb server on the clinic LAN): images and credentials travel unencrypted. */
  allowInsecureHttp: z.boolean().default(false),
  enabled: z.boolean().default(true),
  auth: destinationAuthSchema.default({ kind: 'none' }),
  maxConcurrentRequests: z.number().int().min(1).max(64).default(4),
  maxInstancesPerRequest: z.number().int().min(1).max(10_000).default(50),
  maxBytesPerRequest: byteCount.min(1).default(256 * 1024 ** 2),
  upsert: z.boolean().default(false),
  verifyAfterDelivery: z.boolean().default(false),
  /** The clinic's archive of record: queries and retrieves of data not held here go to it (at most one). */
  archive: z.boolean().default(false),
  requestTimeoutMs: z.number().int().min(1000).default(300_000),
  /** Backoff after failures: full jitter between 0 and min(cap, base·2^n); unset means 1 s and 1 min. */
  retryBaseMs: z.number().int().min(10).optional(),
  retryCapMs: z.number().int().min(10).optional(),
  route: z
    .object({ callingAes: z.array(aeTitle).default([]), modalities: z.array(z.string().min(1)).default([]) })
    .prefault({}),
}).superRefine((destination, ctx) => {
  const url = URL.canParse(destination.baseUrl) ? new URL(destination.baseUrl) : undefined;
  if (url?.protocol !== 'http:' || isLoopbackHost(url.hostname) || destination.allowInsecureHttp) return;
  ctx.addIssue({
    code: 'custom',
    path: ['baseUrl'],
    message: 'must be https: (plain http: is only for loopback, or for a LAN server with allowInsecureHttp: true)',
  });
});

/** Prefetch of priors: when a study arrives for a patient, fetch that patient's most recent earlier studies. */
export const prefetchRuleSchema = z.object({
  /** Only studies with one of these modalities (ModalitiesInStudy); empty means any. */
  modalities: z.array(z.string().min(1).max(16)).default([]),
  maxStudies: z.number().int().min(1).max(100).default(3),
  maxAgeDays: z.number().int().min(1).max(36_500).default(1825),
});

/** Reading from the archive destination; nothing here acts until a destination has `archive: true`. */
export const cloudSchema = z.object({
  federation: z
    .object({
      /** QIDO-RS and C-FIND add the archive's matches to the local ones. */
      enabled: z.boolean().default(true),
      /** The archive's part of a query is given up after this long; local matches are answered anyway. */
      timeoutMs: z.number().int().min(100).max(60_000).default(3000),
    })
    .prefault({}),
  prefetch: z
    .object({
      /** Empty: no prefetch. */
      rules: z.array(prefetchRuleSchema).default([]),
      /** Studies fetched at the same time; forwarding goes first. */
      concurrency: z.number().int().min(1).max(16).default(1),
    })
    .prefault({}),
  changeFeed: z
    .object({
      /** Follow the archive's change feed (or, without one, poll QIDO by date). */
      enabled: z.boolean().default(true),
      pollIntervalMs: z.number().int().min(1000).default(60_000),
      /** Entries per change-feed request; the Azure DICOM service answers at most 200. */
      batchSize: z.number().int().min(1).max(200).default(100),
    })
    .prefault({}),
  worklist: z
    .object({
      /** Offer the archive's worklist (UPS-RS SCHEDULED workitems) to modalities by Modality Worklist C-FIND, kept here for offline use. */
      enabled: z.boolean().default(false),
      /**
       * The modalities' AE titles. Each is searched as the Code Value of the workitems' Scheduled Station Name Code
       * Sequence and answered as the Scheduled Station AE Title of the items found.
       */
      stations: z.array(aeTitle).default([]),
      refreshIntervalMs: z.number({ error: 'must be a number of milliseconds' }).int('must be a whole number').min(1000, 'must be at least 1000').default(300_000),
      /** Backoff of a workitem state change the archive did not take (offline, 5xx): base·2^n up to the cap. */
      retryBaseMs: z.number().int().min(100).default(5_000),
      retryCapMs: z.number().int().min(100).default(10 * 60_000),
    })
    .prefault({})
    .superRefine((worklist, ctx) => {
      if (worklist.enabled && worklist.stations.length === 0) {
        ctx.addIssue({ code: 'custom', path: ['stations'], message: 'must name at least one station AE title when cloud.worklist.enabled is on' });
      }
    }),
});

/**
 * The HTTP proxy for everything that leaves the box (forwarding, archive reads, Entra sign-in, the connection
 * test). An empty url means the environment decides (HTTPS_PROXY, HTTP_PROXY, NO_PROXY); a url set here
 * overrides the environment.
 */
export const proxySchema = z.object({
  url: z.string().default('').superRefine((value, ctx) => {
    if (value === '') return;
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      ctx.addIssue({ code: 'custom', message: 'must be empty or a URL such as http://proxy.clinic.lan:3128' });
      return;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') ctx.addIssue({ code: 'custom', message: `must be an http: or https: URL, not ${url.protocol}` });
    if (url.username || url.password) ctx.addIssue({ code: 'custom', message: 'must not carry a user name or password (they belong in network.proxy.user and network.proxy.password)' });
    if (url.pathname !== '/' || url.search || url.hash) ctx.addIssue({ code: 'custom', message: 'must be only scheme, host and port, without a path' });
  }),
  user: z.string().default(''),
  /** Sealed like destination secrets (`enc:v1:…`); plain text typed by hand is sealed at the next start. */
  password: z.string().default(''),
  /** Hosts reached without the proxy, as in NO_PROXY: comma-separated names, .domain suffixes, host:port, or *. */
  noProxy: z.string().default(''),
}).superRefine((proxy, ctx) => {
  if (proxy.password && !proxy.user) ctx.addIssue({ code: 'custom', path: ['user'], message: 'is required when network.proxy.password is set' });
});

export const networkSchema = z.object({
  proxy: proxySchema.prefault({}),
  /** A PEM bundle of CA certificates trusted besides the default ones, for upstreams and Entra alike (TLS inspection). */
  caFile: z.string().default(''),
});

/** Storage Commitment (PS3.4 Annex J): when an instance counts as committed, per calling AE with a default. */
export const commitmentPolicySchema = z.enum(['local', 'cloud'], { error: "must be 'local' (durable here) or 'cloud' (delivered to the archive destination)" });

export const storageCommitmentSchema = z.object({
  defaultPolicy: commitmentPolicySchema.default('local'),
  /** Calling AE title → policy; AEs not listed get the default. */
  policies: z.record(aeTitle, commitmentPolicySchema).default({}),
  /** A transaction still open after this long is reported with its missing instances failed. */
  timeLimitMs: z.number({ error: 'must be a number of milliseconds' }).int('must be a whole number').min(1000, 'must be at least 1000').max(30 * 86_400_000, 'must be at most 30 days').default(86_400_000),
  /** Backoff of a report the requesting AE did not take (not listening, refused): base·2^n up to the cap. */
  retryBaseMs: z.number().int().min(100).default(5_000),
  retryCapMs: z.number().int().min(100).default(10 * 60_000),
});

export const settingsSchema = z.object({
  aeTitle: aeTitle.default('DICOMEDGE'),
  dimse: dimseSchema.prefault({}),
  peers: z.array(peerSchema).default([]),
  http: httpSchema.prefault({}),
  storage: storageSchema.prefault({}),
  destinations: z
    .array(destinationSchema)
    .default([])
    .refine((list) => new Set(list.map((d) => d.name)).size === list.length, 'destination names must be unique')
    .superRefine((list, context) => {
      const first = list.findIndex((d) => d.archive);
      list.forEach((destination, index) => {
        if (index <= first || !destination.archive) return;
        context.addIssue({
          code: 'custom',
          path: [index, 'archive'],
          message: `only one destination can be the archive, and "${list[first]!.name}" already is`,
        });
      });
    }),
  cloud: cloudSchema.prefault({}),
  network: networkSchema.prefault({}),
  storageCommitment: storageCommitmentSchema.prefault({}),
  log: z
    .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info') })
    .prefault({}),
});

export type Settings = z.infer<typeof settingsSchema>;
export type DestinationSettings = z.infer<typeof destinationSchema>;
export type DestinationAuth = z.infer<typeof destinationAuthSchema>;
export type PeerSettings = z.infer<typeof peerSchema>;
export type NetworkSettings = z.infer<typeof networkSchema>;
export type CloudSettings = z.infer<typeof cloudSchema>;
export type PrefetchRule = z.infer<typeof prefetchRuleSchema>;
export type CommitmentPolicy = z.infer<typeof commitmentPolicySchema>;
export type StorageCommitmentSettings = z.infer<typeof storageCommitmentSchema>;

/** The destination marked as the clinic's archive, if any. */
export function archiveDestination(settings: Pick<Settings, 'destinations'>): DestinationSettings | undefined {
  return settings.destinations.find((d) => d.archive);
}

export const DEFAULT_HTTP_PORT = 8780;
export const DEFAULT_DIMSE_PORT = 11112;

export { uidProblem };
