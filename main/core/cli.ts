import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { Appliance, type ApplianceOverrides } from './appliance.js';
import { SettingsError } from './settings/errors.js';
import { notifySystemd } from './systemd-notify.js';
import { appVersion } from './web/web-service.js';

const USAGE = `usage: dicom-edge [serve] [options]
       dicom-edge --help | --version

  --data-dir DIR      where settings, archive, index and logs live
                      (default: $DICOM_EDGE_DATA_DIR or $XDG_DATA_HOME/dicom-edge or ~/.local/share/dicom-edge)
  --aet TITLE         our AE title (default DICOMEDGE)
  --dimse-port PORT   DIMSE listener port (default 11112)
  --http-host HOST    HTTP bind address (default 127.0.0.1)
  --http-port PORT    HTTP port (default 8780)
  --api-token-file PATH
                      read the session token for the HTTP API from this file (first line)
  --api-token TOKEN   the token itself (shown to every local user by ps; prefer the file
                      or $DICOM_EDGE_API_TOKEN). Default: http.apiToken, else generated at each start

  --no-log-file       log to stdout only, no rotating file under the data dir
                      (for a service whose stdout already goes to the journal)
  -h, --help          print this help and exit
  -v, --version       print the version and exit

Flags override settings.json, which overrides the defaults.`;

export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.DICOM_EDGE_DATA_DIR) return resolve(env.DICOM_EDGE_DATA_DIR);
  const base = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(base, 'dicom-edge');
}

function portFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UsageError(`--${name} must be a port number from 1 to 65535, got ${JSON.stringify(value)}`);
  }
  return port;
}

class UsageError extends Error {}

/** The API token from --api-token, --api-token-file or $DICOM_EDGE_API_TOKEN, in that order; undefined for none. */
function apiTokenFrom(flag: string | undefined, file: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  if (flag !== undefined && file !== undefined) throw new UsageError('give --api-token or --api-token-file, not both');
  if (flag !== undefined) return flag;
  if (file !== undefined) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new UsageError(`--api-token-file ${file}: cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
    }
    const token = text.split(/\r?\n/)[0]!.trim();
    if (!token) throw new UsageError(`--api-token-file ${file}: the file is empty`);
    return token;
  }
  return env.DICOM_EDGE_API_TOKEN?.trim() || undefined;
}

export type CommandLine =
  | { command: 'help' }
  | { command: 'version' }
  | { command: 'serve'; dataDir: string; logFile: boolean; overrides: ApplianceOverrides };

/** Reads the command line; throws UsageError (exit 2, usage on stderr) for anything it does not know. */
export function parseCommandLine(argv: string[], env: NodeJS.ProcessEnv = process.env): CommandLine {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        'data-dir': { type: 'string' },
        aet: { type: 'string' },
        'dimse-port': { type: 'string' },
        'http-host': { type: 'string' },
        'http-port': { type: 'string' },
        'api-token': { type: 'string' },
        'api-token-file': { type: 'string' },
        'no-log-file': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
      },
    });
  } catch (error) {
    // node:util's own messages name the flag ("Unknown option '--x'", "Option '--aet <value>' argument missing").
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return { command: 'help' };
  if (values.version) return { command: 'version' };
  if (positionals.length > 1 || (positionals[0] ?? 'serve') !== 'serve') {
    throw new UsageError(`unknown command ${JSON.stringify(positionals.join(' '))}`);
  }
  return {
    command: 'serve',
    dataDir: values['data-dir'] ? resolve(values['data-dir']) : defaultDataDir(env),
    logFile: !values['no-log-file'],
    overrides: {
      aeTitle: values.aet,
      dimsePort: portFlag('dimse-port', values['dimse-port']),
      httpHost: values['http-host'],
      httpPort: portFlag('http-port', values['http-port']),
      apiToken: apiTokenFrom(values['api-token'], values['api-token-file'], env),
    },
  };
}

/** A systemd notification, logged once whether it was sent or not (a failure does not stop the appliance). */
async function tellSystemd(appliance: Appliance, fields: Record<string, string>, event: string): Promise<void> {
  if (!process.env.NOTIFY_SOCKET) return;
  const failure = await notifySystemd(fields);
  if (failure) appliance.logger.warn({ event: `${event}-failed`, reason: failure }, `could not tell systemd: ${failure}`);
  else appliance.logger.info({ event, ...fields }, 'told systemd');
}

export async function main(argv: string[]): Promise<number> {
  let options;
  try {
    options = parseCommandLine(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    console.error(`dicom-edge: ${error.message}\n\n${USAGE}`);
    return 2;
  }
  if (options.command === 'help') {
    console.log(USAGE);
    return 0;
  }
  if (options.command === 'version') {
    console.log(`dicom-edge ${appVersion()}`);
    return 0;
  }
  // Signals are handled from the first moment, so a stop requested during start-up is not lost.
  let requestedStop: string | undefined;
  let onStopRequest: ((signal: string) => void) | undefined;
  const handleSignal = (signal: string) => {
    if (requestedStop) {
      console.log(`received ${signal} again, still waiting for in-flight writes to finish`);
      return;
    }
    requestedStop = signal;
    onStopRequest?.(signal);
  };
  process.on('SIGINT', handleSignal);
  process.on('SIGTERM', handleSignal);
  // Keeps the process alive even when no listener holds the event loop open.
  const keepAlive = setInterval(() => undefined, 1 << 30);
  try {
    let appliance: Appliance;
    try {
      appliance = await Appliance.create({ dataDir: options.dataDir, overrides: options.overrides, logFile: options.logFile, logToStdout: true });
      await appliance.start();
    } catch (error) {
      if (error instanceof SettingsError) console.error(`dicom-edge: ${error.message}`);
      else console.error(`dicom-edge: cannot start: ${(error as Error).stack ?? error}`);
      return 1;
    }
    console.log(`data dir: ${options.dataDir}`);
    await tellSystemd(appliance, { READY: '1', STATUS: 'receiving' }, 'systemd-ready');
    const signal = await new Promise<string>((resolve) => {
      if (requestedStop) resolve(requestedStop);
      else onStopRequest = resolve;
    });
    console.log(`received ${signal}, stopping`);
    await tellSystemd(appliance, { STOPPING: '1', STATUS: 'stopping' }, 'systemd-stopping');
    try {
      await appliance.stop();
      return 0;
    } catch (error) {
      console.error(`dicom-edge: stop failed: ${(error as Error).message}`);
      return 1;
    }
  } finally {
    clearInterval(keepAlive);
  }
}

const isEntry = process.argv[1] && /cli\.(ts|js)$/.test(process.argv[1]);
if (isEntry) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}
