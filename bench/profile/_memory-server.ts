/**
 * Shared by the profiling scripts: the most any Node server can give a client here (from memory, or passing an
 * upstream's answer through), and a plain median.
 */
import { spawn } from 'node:child_process';

/** A bare node:http server in its own process that answers every GET with `bytes` bytes from memory, in 1 MiB writes. */
export async function memoryServer(bytes: number): Promise<{ url: string; stop(): void }> {
  const code = `const c=Buffer.alloc(1<<20,7);const s=require('node:http').createServer(async(q,r)=>{r.writeHead(200,{'content-length':${bytes}});`
    + `let n=0;while(n<${bytes}){const k=Math.min(c.length,${bytes}-n);if(!r.write(k===c.length?c:c.subarray(0,k)))await new Promise(d=>r.once('drain',d));n+=k;}r.end();})`
    + `.listen(0,'127.0.0.1',()=>console.log(s.address().port));`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve) => child.stdout.once('data', (c: Buffer) => resolve(c.toString().trim())));
  return { url: `http://127.0.0.1:${port}/`, stop: () => child.kill() };
}

/**
 * A bare node:http pass-through in its own process: every GET goes to `upstream` (same path and Accept) and its
 * answer is piped back untouched. Nothing parsed, nothing stored: the most a Node server that relays an
 * archive's answer can give a client here.
 */
export async function passThroughServer(upstream: string): Promise<{ url: string; stop(): void }> {
  const base = new URL(upstream);
  const code = `const h=require('node:http');const a=new h.Agent({keepAlive:true});const s=h.createServer((q,r)=>{`
    + `h.get({host:${JSON.stringify(base.hostname)},port:${Number(base.port)},path:${JSON.stringify(base.pathname.replace(/\/$/, ''))}+q.url,agent:a,headers:{accept:q.headers.accept??'*/*'}},(u)=>{`
    + `r.writeHead(u.statusCode,{'content-type':u.headers['content-type']});u.pipe(r);}).on('error',()=>r.destroy());})`
    + `.listen(0,'127.0.0.1',()=>console.log(s.address().port));`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<string>((resolve) => child.stdout.once('data', (c: Buffer) => resolve(c.toString().trim())));
  return { url: `http://127.0.0.1:${port}`, stop: () => child.kill() };
}

export const medianOf = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
