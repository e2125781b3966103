// A real HTTP proxy (Debian's tinyproxy) started by a test on a free loopback port, with its own config
// and log: the log shows each CONNECT it carried. It can ask for a user and password (407) or allow
// tunnels only to port 443 (so any test upstream gets 403), and it can be stopped and started again on
// the same port to play "the proxy is down".
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { spawnDaemon, untilReadyOrExit, type Daemon } from './daemon.js';
import { freePort, waitForPort } from './net.js';
import { requireTool } from './process.js';

export interface TinyproxyOptions {
  dir: string;
  /** Require this user and password (Proxy-Authorization: Basic). */
  basicAuth?: { user: string; password: string };
  /** Allow CONNECT only to port 443: every loopback upstream of a test is refused with 403. */
  refuseTunnels?: boolean;
}

export class Tinyproxy {
  private daemon: Daemon | undefined;

  private constructor(private readonly options: TinyproxyOptions, readonly port: number, private readonly configFile: string, readonly logFile: string) {}

  static async start(options: TinyproxyOptions): Promise<Tinyproxy> {
    requireTool('tinyproxy', 'tinyproxy');
    const port = await freePort();
    const configFile = join(options.dir, 'tinyproxy.conf');
    const logFile = join(options.dir, 'tinyproxy.log');
    const lines = [
      `Port ${port}`, 'Listen 127.0.0.1', 'Timeout 60', `LogFile "${logFile}"`, 'LogLevel Info', 'MaxClients 50',
      `PidFile "${join(options.dir, 'tinyproxy.pid')}"`, 'DisableViaHeader Yes',
      ...(options.basicAuth ? [`BasicAuth ${options.basicAuth.user} ${options.basicAuth.password}`] : []),
      ...(options.refuseTunnels ? ['ConnectPort 443'] : []),
    ];
    await writeFile(configFile, `${lines.join('\n')}\n`);
    const proxy = new Tinyproxy(options, port, configFile, logFile);
    await proxy.resume();
    return proxy;
  }

  /** http://127.0.0.1:PORT */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts it again (on the same port) after pause(). */
  async resume(): Promise<void> {
    if (this.daemon) return;
    this.daemon = spawnDaemon(requireTool('tinyproxy', 'tinyproxy'), ['-d', '-c', this.configFile], { cwd: this.options.dir });
    await untilReadyOrExit(this.daemon, 'tinyproxy', waitForPort(this.port));
  }

  /** Stops it: connections to its port are refused until resume(). */
  async pause(): Promise<void> {
    await this.daemon?.stop();
    this.daemon = undefined;
  }

  /** The CONNECT requests in its log, as "host:port". */
  async tunnels(): Promise<string[]> {
    const log = await readFile(this.logFile, 'utf8').catch(() => '');
    return [...log.matchAll(/Request \(file descriptor \d+\): CONNECT (\S+) HTTP/g)].map((m) => m[1]!);
  }

  async stop(): Promise<void> {
    await this.pause();
  }
}
