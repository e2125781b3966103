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
  type RollStream = DestinationStream & { end(): void; once(event: 'close', listener: () => void): void };
  export default function build(options: PinoRollOptions): Promise<RollStream>;
}
