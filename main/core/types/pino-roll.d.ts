declare module 'pino-roll' {
  import type pino from 'pino';
  interface PinoRollOptions {
    file: string | (() => string);
    size?: string | number;
    frequency?: 'daily' | 'hourly' | number;
    mkdir?: boolean;
    limit?: { count?: number; removeOtherLogFiles?: boolean };
    extension?: string;
  }
  /** The rotating file is a SonicBoom (as pino.destination makes) that reopens itself on the next file. */
  export default function build(options: PinoRollOptions): Promise<ReturnType<typeof pino.destination>>;
}
