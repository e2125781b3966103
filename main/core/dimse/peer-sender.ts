/**
 * The C-STORE side of a C-MOVE: one association to the move destination, opened with the first instance
 * and fed one instance at a time as each becomes available (at once when it is here, as it arrives when
 * it comes from the archive), then released.
 */
import dimse from 'dcmjs-dimse';
import type { Logger } from 'pino';
import type { PeerSettings } from '../contract/settings.js';
import { holdClientAssociation, tuneClientForRequests, type HeldAssociation } from './dcmjs-dimse-internals.js';
import './implementation.js';
import { track, type Outcome, type StoreRequest } from './sub-operations.js';

const { Client } = dimse;
const { PresentationContext } = dimse.association;
const { TransferSyntax } = dimse.constants;

const UNCOMPRESSED = new Set<string>([TransferSyntax.ImplicitVRLittleEndian, TransferSyntax.ExplicitVRLittleEndian]);

export interface SenderTimeouts {
  connectTimeout: number;
  associationTimeout: number;
  pduTimeout: number;
}

/** What will be sent, as far as is known before it is here: a SOP class, and its stored syntax ('' if unknown). */
export interface ExpectedInstance {
  sopClassUid: string;
  transferSyntaxUid: string;
}

export class PeerStoreSender {
  private client: InstanceType<typeof Client> | undefined;
  private held: HeldAssociation | undefined;
  private accepted: Promise<boolean> = Promise.resolve(false);
  private closed = false;
  private inFlight: (() => void) | undefined;

  constructor(
    private readonly peer: Pick<PeerSettings, 'aeTitle' | 'host' | 'port'>,
    private readonly callingAe: string,
    private readonly timeouts: SenderTimeouts,
    /** Every instance the move may send: the association proposes a context for each SOP class (and syntax). */
    private readonly expected: readonly ExpectedInstance[],
    private readonly logger: Logger,
  ) {}

  /** Sends one instance and resolves with its outcome; call again only once it has resolved. */
  async send(request: StoreRequest): Promise<Outcome> {
    if (this.closed) return 'failed';
    if (!this.client) return this.open(request);
    if (!(await this.accepted) || this.closed) return 'failed';
    const held = this.held!;
    if (!held.accepts(request)) {
      // dcmjs-dimse would skip it without a word, and the outcome would never come.
      this.logger.warn({ event: 'c-move-no-context', destination: this.peer.aeTitle, sopClassUid: request.getAffectedSopClassUid(),
        sopInstanceUid: request.getAffectedSopInstanceUid() }, 'the move destination accepted no presentation context for this instance');
      return 'failed';
    }
    const tracked = track(request);
    this.inFlight = tracked.fail;
    held.send(request);
    const outcome = await tracked.outcome;
    this.inFlight = undefined;
    return outcome;
  }

  /** Keeps the association from idling out while the next instance is on its way. */
  touch(): void {
    if (!this.closed) this.held?.touch();
  }

  /** Releases the association (after the last instance). */
  release(): void {
    if (this.held && !this.closed) this.held.release();
  }

  abort(): void {
    if (this.client && !this.closed) this.client.abort();
  }

  private open(first: StoreRequest): Promise<Outcome> {
    const client = new Client();
    this.client = client;
    client.addRequest(first);
    for (const context of this.proposedContexts()) client.addAdditionalPresentationContext(context.context, context.addAsNew);
    const tracked = track(first);
    this.inFlight = tracked.fail;
    const destination = this.peer.aeTitle;
    this.accepted = new Promise<boolean>((resolve) => {
      client.on('associationAccepted', () => resolve(true));
      client.on('closed', () => resolve(false));
    });
    client.on('networkError', (error: Error) =>
      this.logger.warn({ event: 'c-move-network-error', destination, reason: error.message }, 'C-MOVE destination link failed'));
    client.on('associationRejected', (reject: unknown) =>
      this.logger.warn({ event: 'c-move-rejected', destination, reject }, 'C-MOVE destination rejected the association'));
    client.on('closed', () => {
      this.closed = true;
      this.inFlight?.();
    });
    client.send(this.peer.host, this.peer.port, this.callingAe, destination, this.timeouts);
    this.held = holdClientAssociation(client);
    tuneClientForRequests(client);
    return tracked.outcome.finally(() => (this.inFlight = undefined));
  }

  /**
   * One context per SOP class with the uncompressed syntaxes (dcmjs-dimse converts to them if need be),
   * and one per compressed syntax an instance is stored in, so that it can go out as stored.
   */
  private proposedContexts(): Array<{ context: InstanceType<typeof PresentationContext>; addAsNew: boolean }> {
    const contexts: Array<{ context: InstanceType<typeof PresentationContext>; addAsNew: boolean }> = [];
    const seen = new Set<string>();
    for (const { sopClassUid, transferSyntaxUid } of this.expected) {
      if (!sopClassUid) continue;
      const uncompressed = `${sopClassUid}|`;
      if (!seen.has(uncompressed)) {
        seen.add(uncompressed);
        const context = new PresentationContext(0, sopClassUid);
        for (const syntax of UNCOMPRESSED) context.addTransferSyntaxUid(syntax);
        contexts.push({ context, addAsNew: false });
      }
      const stored = `${sopClassUid}|${transferSyntaxUid}`;
      if (transferSyntaxUid && !UNCOMPRESSED.has(transferSyntaxUid) && !seen.has(stored)) {
        seen.add(stored);
        contexts.push({ context: new PresentationContext(0, sopClassUid, transferSyntaxUid), addAsNew: true });
      }
    }
    return contexts;
  }
}
