declare module 'pino-roll' {
  import type { DestinationStream } from 'pino';
  interface PinoRollOptions {
    file: string | (() => string);
    size?: string | number;
    frequency?: 'daily' | 'hourly' | number;
    mkdir?: boolean;
    limit?: { count?: number; removeOtherLogFiles?: boolean };
    extension?: string;
  }
  type RollStream = DestinationStream & { end(cb?: () => void): void; flushSync?(): void };
  export default function build(options: PinoRollOptions): Promise<RollStream>;
}
