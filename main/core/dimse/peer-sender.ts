/**
 * The C-STORE side of a C-MOVE: one association to the move destination, opened with the first instance
 * and fed one instance at a time as each becomes available (at once when it is here, as it arrives when
 * it comes from the archive), then released.
 */
import dimse from 'dcmjs-dimse';
import type { Logger } from 'pino';
import type { PeerSettings } from '../contract/settings.js';
import { holdClientAssociation, sendFileDataSetsStreamed, tuneClientForRequests, type HeldAssociation } from './dcmjs-dimse-internals.js';
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

/** One association to the destination, as opened. */
interface Link {
  client: InstanceType<typeof Client>;
  held: HeldAssociation;
  accepted: Promise<boolean>;
  closedFlag: { closed: boolean };
  ended: Promise<void>;
  /** SOP classes it proposed contexts for. */
  classes: Set<string>;
  /** Released by us to open one that proposes more (its close is then no failure). */
  retired: boolean;
}

export class PeerStoreSender {
  private link: Link | undefined;
  private broken = false;
  private inFlight: (() => void) | undefined;
  private readonly expected: ExpectedInstance[];

  constructor(
    private readonly peer: Pick<PeerSettings, 'aeTitle' | 'host' | 'port'>,
    private readonly callingAe: string,
    private readonly timeouts: SenderTimeouts,
    /** The instances known to be sent: the association proposes a context for each SOP class (and syntax). */
    expected: readonly ExpectedInstance[],
    private readonly logger: Logger,
  ) {
    this.expected = [...expected];
  }

  /**
   * Sends one instance and resolves with its outcome; call again only once it has resolved. An instance of a
   * SOP class the open association did not propose (one only the archive's answer revealed) goes over a
   * new association that does (PS3.4 C.4.2.3.1 lets the SCP open a new one for sub-operations).
   */
  async send(request: StoreRequest): Promise<Outcome> {
    if (this.broken) return 'failed';
    const sopClassUid = request.getAffectedSopClassUid();
    this.expected.push({ sopClassUid, transferSyntaxUid: request.getDataset()?.getTransferSyntaxUid() ?? '' });
    if (this.link && !this.link.classes.has(sopClassUid) && !this.link.closedFlag.closed) {
      this.logger.info({ event: 'c-move-reassociate', destination: this.peer.aeTitle, sopClassUid }, 'a new association to propose another SOP class');
      const link = this.link;
      link.retired = true;
      link.held.release();
      await link.ended;
      this.link = undefined;
    }
    if (!this.link) return this.open(request);
    const link = this.link;
    if (!(await link.accepted) || link.closedFlag.closed) return 'failed';
    if (!link.held.accepts(request)) {
      // dcmjs-dimse would skip it without a word, and the outcome would never come.
      this.logger.warn({ event: 'c-move-no-context', destination: this.peer.aeTitle, sopClassUid: request.getAffectedSopClassUid(),
        sopInstanceUid: request.getAffectedSopInstanceUid() }, 'the move destination accepted no presentation context for this instance');
      return 'failed';
    }
    const tracked = track(request);
    this.inFlight = tracked.fail;
    link.held.send(request);
    const outcome = await tracked.outcome;
    this.inFlight = undefined;
    return outcome;
  }

  /** Keeps the association from idling out while the next instance is on its way. */
  touch(): void {
    if (this.link && !this.link.closedFlag.closed) this.link.held.touch();
  }

  /** Releases the association (after the last instance). */
  release(): void {
    if (this.link && !this.link.closedFlag.closed) this.link.held.release();
  }

  abort(): void {
    this.broken = true;
    if (this.link && !this.link.closedFlag.closed) this.link.client.abort();
  }

  private open(first: StoreRequest): Promise<Outcome> {
    const client = new Client();
    client.addRequest(first);
    const proposed = this.proposedContexts();
    for (const context of proposed) client.addAdditionalPresentationContext(context.context, context.addAsNew);
    const tracked = track(first);
    this.inFlight = tracked.fail;
    const destination = this.peer.aeTitle;
    const closedFlag = { closed: false };
    const accepted = new Promise<boolean>((resolve) => {
      client.on('associationAccepted', () => resolve(true));
      client.on('closed', () => resolve(false));
    });
    const ended = new Promise<void>((resolve) => client.on('closed', () => resolve()));
    client.on('networkError', (error: Error) =>
      this.logger.warn({ event: 'c-move-network-error', destination, reason: error.message }, 'C-MOVE destination link failed'));
    client.on('associationRejected', (reject: unknown) =>
      this.logger.warn({ event: 'c-move-rejected', destination, reject }, 'C-MOVE destination rejected the association'));
    const classes = new Set([first.getAffectedSopClassUid(), ...this.expected.map((e) => e.sopClassUid)]);
    const link: Link = { client, held: undefined as unknown as HeldAssociation, accepted, closedFlag, ended, classes, retired: false };
    client.on('closed', () => {
      closedFlag.closed = true;
      if (!link.retired) this.broken = true;
      this.inFlight?.();
    });
    client.send(this.peer.host, this.peer.port, this.callingAe, destination, this.timeouts);
    link.held = holdClientAssociation(client);
    tuneClientForRequests(client);
    sendFileDataSetsStreamed(client);
    this.link = link;
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
