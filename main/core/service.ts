/** A part of the appliance that the composition root starts and stops in order. */
export interface ApplianceService {
  readonly name: string;
  /** Starts the service; returns one human-readable line per listener it opened. */
  start(): Promise<string[]>;
  /** Stops taking new work and finishes what is in flight. */
  stop(): Promise<void>;
}
