/**
 * Node 20 has no XMLHttpRequest, which dicomweb-client needs. This is the small part of it that
 * dicomweb-client uses (open, setRequestHeader, responseType, send, onreadystatechange, status,
 * response, getResponseHeader, getAllResponseHeaders), on top of fetch.
 */
export class FetchXMLHttpRequest {
  readyState = 0;
  status = 0;
  responseType: '' | 'arraybuffer' | 'json' | 'text' = '';
  response: unknown = null;
  responseText = '';
  withCredentials = false;
  onreadystatechange: (() => void) | null = null;
  onloadstart: (() => void) | null = null;
  onloadend: (() => void) | null = null;
  onprogress: ((event: unknown) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  private method = 'GET';
  private url = '';
  private readonly headers: Record<string, string> = {};
  private responseHeaders = new Headers();

  open(method: string, url: string): void {
    this.method = method;
    this.url = url;
    this.readyState = 1;
  }

  setRequestHeader(name: string, value: string): void {
    this.headers[name] = value;
  }

  getResponseHeader(name: string): string | null {
    return this.responseHeaders.get(name);
  }

  getAllResponseHeaders(): string {
    return [...this.responseHeaders.entries()].map(([k, v]) => `${k}: ${v}`).join('\r\n');
  }

  send(body?: unknown): void {
    this.onloadstart?.();
    const payload = body instanceof ArrayBuffer || ArrayBuffer.isView(body) || typeof body === 'string' ? (body as BodyInit) : undefined;
    fetch(this.url, { method: this.method, headers: this.headers, body: payload })
      .then(async (res) => {
        this.status = res.status;
        this.responseHeaders = res.headers;
        const bytes = await res.arrayBuffer();
        const text = new TextDecoder().decode(bytes);
        this.responseText = text;
        if (this.responseType === 'arraybuffer') this.response = bytes;
        else if (this.responseType === 'json') this.response = text ? JSON.parse(text) : null;
        else this.response = text;
      })
      .catch((error) => {
        this.status = 0;
        this.onerror?.(error);
      })
      .finally(() => {
        this.readyState = 4;
        this.onreadystatechange?.();
        this.onloadend?.();
      });
  }
}

/** Installs the shim as globalThis.XMLHttpRequest (only where none exists). */
export function installXMLHttpRequest(): void {
  const global = globalThis as { XMLHttpRequest?: unknown };
  global.XMLHttpRequest ??= FetchXMLHttpRequest;
}
