// A reverse proxy in front of a real HTTP peer (Orthanc) that can hold requests until a test lets them go,
// or cut a multipart answer after a number of whole parts, as an archive stalling or dying mid-study would.
import http from 'node:http';
import { listenLoopback, type LoopbackServer } from '../doubles/http-server.js';

export interface GateProxy {
  /** `http://127.0.0.1:PORT`: the upstream's paths are served under it unchanged. */
  readonly origin: string;
  /** Requests matching it wait for the promise it returns before they go upstream. */
  hold: ((req: http.IncomingMessage) => Promise<unknown> | undefined) | undefined;
  /** Answers to requests matching it send this many whole parts and part of the next, then the connection is cut. */
  cutAfterParts: ((req: http.IncomingMessage) => number | undefined) | undefined;
  /** Every request seen, as `METHOD path?query`. */
  readonly seen: string[];
  close(): Promise<void>;
}

/** `port`: listen there (0: any free one), e.g. to come back where a closed proxy was. */
export async function startGateProxy(upstream: string, port = 0): Promise<GateProxy> {
  const target = new URL(upstream);
  let server!: LoopbackServer;
  const proxy: GateProxy = {
    origin: '',
    hold: undefined,
    cutAfterParts: undefined,
    seen: [],
    close: () => server.close(),
  };
  server = await listenLoopback(async (req, res) => {
    proxy.seen.push(`${req.method} ${req.url}`);
    await proxy.hold?.(req);
    const cutAfter = proxy.cutAfterParts?.(req);
    const upstreamReq = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url,
      headers: { ...req.headers, host: target.host } });
    req.pipe(upstreamReq);
    const answer = await new Promise<http.IncomingMessage>((resolve, reject) => upstreamReq.on('response', resolve).on('error', reject));
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    const boundary = /boundary="?([^";]+)"?/.exec(String(answer.headers['content-type'] ?? ''))?.[1];
    if (cutAfter === undefined || !boundary) {
      answer.pipe(res);
      return;
    }
    // The delimiter that opens part n+1 marks the end of n whole parts; the answer goes on until 200 bytes into it.
    const delimiter = Buffer.from(`--${boundary}`, 'latin1');
    let seen = Buffer.alloc(0);
    let sent = 0;
    answer.on('data', (chunk: Buffer) => {
      seen = Buffer.concat([seen, chunk]);
      let at = -1;
      for (let n = 0; n <= cutAfter && (at = seen.indexOf(delimiter, at + 1)) >= 0; n++);
      const cutAt = at >= 0 && seen.length >= at + delimiter.length + 200 ? at + delimiter.length + 200 : undefined;
      const upTo = cutAt ?? Math.max(sent, seen.length - delimiter.length);
      res.write(seen.subarray(sent, upTo));
      sent = upTo;
      if (cutAt === undefined) return;
      answer.destroy();
      res.write(Buffer.alloc(0), () => res.socket?.destroy());
    });
    answer.on('end', () => res.end(seen.subarray(sent)));
  }, port);
  Object.assign(proxy, { origin: server.origin });
  return proxy;
}
