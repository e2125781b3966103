/**
 * Keeps the OS from suspending the app while a modality is sending (an open association) or uploads are under
 * way: a suspended box drops the association mid-study and stalls the outbox. Holds one
 * powerSaveBlocker('prevent-app-suspension') while busy, none while idle; the screen may still sleep.
 */
export interface PowerSaveBlockerLike {
  start(type: 'prevent-app-suspension' | 'prevent-display-sleep'): number;
  stop(id: number): void;
}

export interface Activity {
  openAssociations: number;
  /** Outbox rows being sent now. */
  sending: number;
}

export function isBusy(activity: Activity): boolean {
  return activity.openAssociations > 0 || activity.sending > 0;
}

export class SuspensionGuard {
  private blockerId: number | undefined;

  constructor(
    private readonly blocker: PowerSaveBlockerLike,
    private readonly onChange: (holding: boolean, activity: Activity) => void = () => undefined,
  ) {}

  get holding(): boolean {
    return this.blockerId !== undefined;
  }

  update(activity: Activity): void {
    const busy = isBusy(activity);
    if (busy && this.blockerId === undefined) {
      this.blockerId = this.blocker.start('prevent-app-suspension');
      this.onChange(true, activity);
    } else if (!busy && this.blockerId !== undefined) {
      this.release();
      this.onChange(false, activity);
    }
  }

  release(): void {
    if (this.blockerId === undefined) return;
    this.blocker.stop(this.blockerId);
    this.blockerId = undefined;
  }
}

/** The DIMSE service among the appliance's services (it counts its open associations). */
export function findAssociationCounter(services: readonly unknown[]): { openAssociations: number } | undefined {
  return services.find((service): service is { openAssociations: number } =>
    typeof (service as { openAssociations?: unknown }).openAssociations === 'number');
}
