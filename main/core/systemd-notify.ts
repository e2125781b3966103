import { spawn } from 'node:child_process';

/**
 * Tells systemd how the service stands (`Type=notify`): `READY=1` once every listener is open, `STOPPING=1`
 * when a stop begins. Node cannot send on the AF_UNIX datagram socket systemd listens on, so the message goes
 * through `systemd-notify` (the unit sets `NotifyAccess=all` for it); systemd-notify waits until systemd has
 * read the message before it exits. Outside systemd (no `$NOTIFY_SOCKET`) nothing is sent.
 * Resolves with undefined when sent or not needed, else with the reason it failed.
 */
export function notifySystemd(fields: Record<string, string>, env: NodeJS.ProcessEnv = process.env): Promise<string | undefined> {
  if (!env.NOTIFY_SOCKET) return Promise.resolve(undefined);
  const assignments = [`MAINPID=${process.pid}`, ...Object.entries(fields).map(([key, value]) => `${key}=${value}`)];
  return new Promise((resolve) => {
    let stderr = '';
    const child = spawn('systemd-notify', assignments, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    child.stderr.on('data', (chunk) => (stderr += chunk));
    child.once('error', (error) => resolve(`systemd-notify cannot run (${(error as NodeJS.ErrnoException).code ?? error.message}): install the systemd package`));
    child.once('close', (code) => resolve(code === 0 ? undefined : `systemd-notify exited with ${code}: ${stderr.trim()}`));
  });
}
