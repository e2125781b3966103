/**
 * Shared by the cache bench and the profiling scripts: the most any Node server can give a client here (from
 * memory, or passing an upstream's answer through), the most any relay gives (zero-copy, in the kernel), and a
 * plain median. Each server runs in its own process, whose pid is given for its CPU seconds.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { access } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface CeilingServer {
  url: string;
  pid: number;
  stop(): void;
}

/** The port a child prints on its first line, once it listens. */
async function listening(child: ChildProcess): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.stdout!.once('data', (c: Buffer) => resolve(c.toString().trim()));
  });
}

/** A bare node:http server in its own process that answers every GET with `bytes` bytes from memory, in 1 MiB writes. */
export async function memoryServer(bytes: number): Promise<CeilingServer> {
  const code = `const c=Buffer.alloc(1<<20,7);const s=require('node:http').createServer(async(q,r)=>{r.writeHead(200,{'content-length':${bytes}});`
    + `let n=0;while(n<${bytes}){const k=Math.min(c.length,${bytes}-n);if(!r.write(k===c.length?c:c.subarray(0,k)))await new Promise(d=>r.once('drain',d));n+=k;}r.end();})`
    + `.listen(0,'127.0.0.1',()=>console.log(s.address().port));`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await listening(child);
  return { url: `http://127.0.0.1:${port}/`, pid: child.pid!, stop: () => child.kill() };
}

/**
 * A bare node:http pass-through in its own process: every GET goes to `upstream` (same path and Accept) and its
 * answer is piped back untouched. Nothing parsed, nothing stored: the most a Node server that relays an
 * archive's answer can give a client here.
 */
export async function passThroughServer(upstream: string): Promise<CeilingServer> {
  const base = new URL(upstream);
  const code = `const h=require('node:http');const a=new h.Agent({keepAlive:true});const s=h.createServer((q,r)=>{`
    + `h.get({host:${JSON.stringify(base.hostname)},port:${Number(base.port)},path:${JSON.stringify(base.pathname.replace(/\/$/, ''))}+q.url,agent:a,headers:{accept:q.headers.accept??'*/*'}},(u)=>{`
    + `r.writeHead(u.statusCode,{'content-type':u.headers['content-type']});u.pipe(r);}).on('error',()=>r.destroy());})`
    + `.listen(0,'127.0.0.1',()=>console.log(s.address().port));`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await listening(child);
  return { url: `http://127.0.0.1:${port}`, pid: child.pid!, stop: () => child.kill() };
}

/**
 * A relay that copies nothing in user space (_zero-copy-relay.py: splice(2) socket to socket, in python3), in its
 * own process: what any relay of `upstream` gives at most here, whatever its language. With `bytesPerSecond`, it
 * paces each answer to that rate: `upstream` behind a link of that speed. Undefined without python3.
 */
export async function zeroCopyRelay(upstream: string, bytesPerSecond?: number): Promise<CeilingServer | undefined> {
  const base = new URL(upstream);
  const script = join(dirname(fileURLToPath(import.meta.url)), '_zero-copy-relay.py');
  await access(script);
  const child = spawn('python3', [script, base.hostname, base.port, ...(bytesPerSecond ? [String(bytesPerSecond)] : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await listening(child).catch(() => undefined);
  if (port === undefined) return undefined;
  return { url: `http://127.0.0.1:${port}${base.pathname.replace(/\/$/, '')}`, pid: child.pid!, stop: () => child.kill() };
}

export const medianOf = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
