/**
 * SSRF guard for outbound HTTP: address classification, a DNS `lookup` that refuses blocked
 * addresses, and a small HTTP(S) client (`guardedRequest`) built on node:http/node:https that
 * uses it for every hop of a redirect chain.
 *
 * How the guard closes the usual holes:
 * - Names are resolved once per connection by the guarded `lookup`, every resolved address is
 *   checked, and node connects to exactly the addresses that were checked — a DNS answer that
 *   changes between check and connect (rebinding) cannot sneak in.
 * - Literal IP hosts never reach `lookup` (node connects to them directly), so they are checked
 *   before the request is made. URLs go through WHATWG parsing first, which already normalises
 *   `http://2130706433/`, `http://0x7f.1/`, `http://0177.0.0.1/` and `[::ffff:127.0.0.1]`.
 * - IPv6 addresses that embed an IPv4 address (IPv4-mapped, IPv4-translated, IPv4-compatible,
 *   NAT64 64:ff9b::/96, 6to4) are classified by the embedded address.
 * - Redirects are followed by hand, and each hop's URL is checked again (scheme and address).
 * - Only http: and https: are spoken; no proxy environment variables are honoured (node:http
 *   ignores them), and there is no connection pooling (`agent: false`).
 *
 * Policy (see `isBlocked`): only 'public' addresses are reachable by default. The
 * allowPrivate switch (WEFT_ALLOW_PRIVATE_NETWORK) additionally opens loopback, private
 * (RFC 1918, CGNAT 100.64/10, unique-local fc00::/7, site-local fec0::/10), link-local and
 * reserved ranges. It never opens 'unspecified' (0.0.0.0/8, ::: on Linux they reach the
 * local host), 'multicast', 'broadcast', cloud 'metadata' endpoints (credentials live there)
 * or unparseable ('invalid') addresses.
 */
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { LookupAddress, LookupOptions } from 'node:dns';
import ipaddr from 'ipaddr.js';
import { WeftError } from '../core/errors.ts';

export type AddressClass =
  | 'public'
  | 'loopback'
  | 'private'
  | 'link-local'
  | 'unspecified'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'metadata'
  | 'invalid';

/** Classes that `allowPrivate` opens. Everything else but 'public' stays blocked regardless. */
const OPENED_BY_ALLOW_PRIVATE: ReadonlySet<AddressClass> = new Set(['loopback', 'private', 'link-local', 'reserved']);

/**
 * Cloud instance-metadata / credential endpoints. Always blocked, even with allowPrivate.
 * 169.254.169.254: AWS, GCP, Azure, OCI, DigitalOcean, OpenStack…; 169.254.170.2: AWS ECS task
 * credentials; 169.254.170.23 / fd00:ec2::23: EKS Pod Identity; fd00:ec2::254: AWS IMDS over
 * IPv6; fd20:ce::254: GCE metadata over IPv6; 100.100.100.200: Alibaba Cloud; 168.63.129.16:
 * Azure WireServer; 192.0.0.192: Oracle Cloud (legacy).
 */
const METADATA_ADDRESSES: readonly (ipaddr.IPv4 | ipaddr.IPv6)[] = [
  '169.254.169.254',
  '169.254.170.2',
  '169.254.170.23',
  '100.100.100.200',
  '168.63.129.16',
  '192.0.0.192',
  'fd00:ec2::254',
  'fd00:ec2::23',
  'fd20:ce::254',
].map((a) => ipaddr.parse(a));

function isMetadata(addr: ipaddr.IPv4 | ipaddr.IPv6): boolean {
  return METADATA_ADDRESSES.some((m) => m.kind() === addr.kind() && addr.match(m, m.kind() === 'ipv4' ? 32 : 128));
}

function classifyV4(addr: ipaddr.IPv4): AddressClass {
  if (isMetadata(addr)) return 'metadata';
  const range: string = addr.range();
  switch (range) {
    case 'unicast':
    case 'as112': // public anycast services
    case 'amt':
      return 'public';
    case 'unspecified': // 0.0.0.0/8 ("this network"); 0.0.0.0 reaches the local host on Linux
      return 'unspecified';
    case 'broadcast':
      return 'broadcast';
    case 'multicast':
      return 'multicast';
    case 'linkLocal':
      return 'link-local';
    case 'loopback':
      return 'loopback';
    case 'private':
    case 'carrierGradeNat': // 100.64.0.0/10 shared address space (ISP/cloud internal, Tailscale…)
      return 'private';
    default: // 'reserved' (documentation, benchmarking 198.18/15, 192.0.0/24, 240/4…) and anything new
      return 'reserved';
  }
}

/** The IPv4 address in the low 32 bits of an IPv6 address. */
function low32(addr: ipaddr.IPv6): ipaddr.IPv4 {
  const p = addr.parts;
  const hi = p[6] ?? 0;
  const lo = p[7] ?? 0;
  return new ipaddr.IPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
}

/** Embedded IPv4 classes win when they are not public; otherwise `fallback`. */
function embedded(v4: ipaddr.IPv4, fallback: AddressClass): AddressClass {
  const cls = classifyV4(v4);
  return cls === 'public' ? fallback : cls;
}

function classifyV6(addr: ipaddr.IPv6): AddressClass {
  if (isMetadata(addr)) return 'metadata';
  const p = addr.parts;
  const range: string = addr.range();
  switch (range) {
    case 'unspecified':
      return 'unspecified';
    case 'loopback':
      return 'loopback';
    case 'linkLocal':
      return 'link-local';
    case 'multicast':
      return 'multicast';
    case 'uniqueLocal': // fc00::/7
    case 'deprecatedSiteLocal': // fec0::/10
      return 'private';
    case 'ipv4Mapped': // ::ffff:a.b.c.d — a dual-stack socket connects to the IPv4 address
    case 'rfc6145': // ::ffff:0:a.b.c.d (IPv4-translated)
      return classifyV4(low32(addr));
    case 'rfc6052': {
      // 64:ff9b::/96 well-known NAT64 prefix: the gateway connects to the embedded IPv4 address.
      // 64:ff9b:1::/48 is the local-use NAT64 prefix (embedding depends on the site): private.
      if (p[0] === 0x64 && p[1] === 0xff9b && p[2] === 0 && p[3] === 0 && p[4] === 0 && p[5] === 0) {
        return classifyV4(low32(addr));
      }
      return 'private';
    }
    case '6to4': {
      // 2002:AABB:CCDD::/48 tunnels to AA.BB.CC.DD.
      const a = p[1] ?? 0;
      const b = p[2] ?? 0;
      return embedded(new ipaddr.IPv4([a >> 8, a & 0xff, b >> 8, b & 0xff]), 'public');
    }
    case 'as112v6':
    case 'amt':
      return 'public';
    case 'unicast': {
      // IPv4-compatible ::a.b.c.d (deprecated) and the rest of ::/96: classify by the embedded IPv4.
      if (p.slice(0, 6).every((x) => x === 0)) return classifyV4(low32(addr));
      // Global unicast is 2000::/3; anything else is not (yet) routable on the internet.
      const first = p[0] ?? 0;
      return first >= 0x2000 && first <= 0x3fff ? 'public' : 'reserved';
    }
    default: // teredo, discard 100::/64, documentation, benchmarking, ORCHID, segment routing, reserved…
      return 'reserved';
  }
}

/**
 * What kind of address `ip` is. Accepts IPv4 (including the inet_aton forms `2130706433`,
 * `0x7f.1`, `0177.0.0.1`, interpreted as the C library would), IPv6 (optionally in brackets,
 * optionally with a `%zone`). Anything else is 'invalid'. Pure.
 */
export function classifyAddress(ip: string): AddressClass {
  let s = ip.trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  if (s === '' || !ipaddr.isValid(s)) return 'invalid';
  let addr: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    addr = ipaddr.parse(s);
  } catch {
    return 'invalid';
  }
  return addr.kind() === 'ipv4' ? classifyV4(addr as ipaddr.IPv4) : classifyV6(addr as ipaddr.IPv6);
}

/** Whether an address of this class may be connected to. */
export function isClassBlocked(cls: AddressClass, allowPrivate: boolean): boolean {
  if (cls === 'public') return false;
  return !(allowPrivate && OPENED_BY_ALLOW_PRIVATE.has(cls));
}

/**
 * Whether connecting to `ip` is refused. Everything but 'public' is blocked; `allowPrivate`
 * opens loopback, private, link-local and reserved, but never unspecified, multicast,
 * broadcast, metadata or invalid addresses.
 */
export function isBlocked(ip: string, allowPrivate: boolean): boolean {
  return isClassBlocked(classifyAddress(ip), allowPrivate);
}

// ---------------------------------------------------------------------------------------------
// Guarded DNS lookup

export interface ResolvedAddress {
  address: string;
  family: 4 | 6;
}

/** Resolves a host name to every address it has. */
export type Resolver = (hostname: string) => Promise<ResolvedAddress[]>;

/** The production resolver: the system resolver (getaddrinfo, /etc/hosts…), all addresses. */
export const systemResolver: Resolver = async (hostname) => {
  const all = await dns.promises.lookup(hostname, { all: true });
  return all.map((a) => ({ address: a.address, family: a.family === 6 ? 6 : 4 }));
};

export interface GuardOptions {
  /** Open loopback/private/link-local/reserved ranges (WEFT_ALLOW_PRIVATE_NETWORK). */
  allowPrivate: boolean;
  /** Test seam: replaces the system resolver. */
  resolve?: Resolver;
  /** Test seam: replaces `classifyAddress` (e.g. to let a loopback test server stand in for a public host). */
  classify?: (ip: string) => AddressClass;
}

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function blockedError(host: string, address: string, cls: AddressClass): WeftError {
  const what = host === address ? `address ${address}` : `${host} (resolves to ${address})`;
  return new WeftError('WEFT_HTTP_BLOCKED', `Refusing to connect to ${what}: ${cls} addresses are not allowed`, {
    retryable: false,
    details: { host, address, addressClass: cls },
  });
}

/** Throws WEFT_HTTP_BLOCKED when a literal address may not be reached. */
export function checkAddress(host: string, address: string, options: GuardOptions): void {
  const cls = (options.classify ?? classifyAddress)(address);
  if (isClassBlocked(cls, options.allowPrivate)) throw blockedError(host, address, cls);
}

/**
 * Resolves `hostname` (literal IPs are checked without DNS) and checks every address.
 * Refuses with WEFT_HTTP_BLOCKED (not retryable) if ANY address is blocked, so a name cannot
 * smuggle a private address in among public ones. DNS failures propagate as node errors.
 */
export async function resolveChecked(hostname: string, options: GuardOptions): Promise<ResolvedAddress[]> {
  const host = stripBrackets(hostname);
  const literal = net.isIP(host);
  if (literal !== 0) {
    checkAddress(host, host, options);
    return [{ address: host, family: literal === 6 ? 6 : 4 }];
  }
  const resolved = await (options.resolve ?? systemResolver)(host);
  if (resolved.length === 0) {
    throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND', hostname: host });
  }
  const out: ResolvedAddress[] = [];
  for (const r of resolved) {
    checkAddress(host, r.address, options);
    const family = net.isIP(r.address);
    // A resolver answer that is not an IP address is classified 'invalid' above and refused.
    out.push({ address: r.address, family: family === 6 ? 6 : 4 });
  }
  return out;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A `lookup` for node's net/http/https/tls `lookup` option. It resolves through
 * `resolveChecked`, so node then connects to the checked addresses only. Supports both the
 * single-address and the `all: true` (autoSelectFamily) calling conventions.
 */
export function createGuardedLookup(options: GuardOptions) {
  return function guardedLookup(
    hostname: string,
    opts: LookupOptions | LookupCallback,
    cb?: LookupCallback,
  ): void {
    const callback = (typeof opts === 'function' ? opts : cb) as LookupCallback;
    const lookupOptions: LookupOptions = typeof opts === 'function' ? {} : (opts ?? {});
    const fam = lookupOptions.family === 'IPv4' ? 4 : lookupOptions.family === 'IPv6' ? 6 : (lookupOptions.family ?? 0);
    resolveChecked(hostname, options).then(
      (addresses) => {
        const wanted = fam === 4 || fam === 6 ? addresses.filter((a) => a.family === fam) : addresses;
        const first = wanted[0];
        if (first === undefined) {
          const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND', hostname });
          callback(err, lookupOptions.all ? [] : '', 0);
        } else if (lookupOptions.all) {
          callback(null, wanted.map((a) => ({ address: a.address, family: a.family })));
        } else {
          callback(null, first.address, first.family);
        }
      },
      (err: unknown) => {
        callback(err as NodeJS.ErrnoException, lookupOptions.all ? [] : '', 0);
      },
    );
  };
}

// ---------------------------------------------------------------------------------------------
// Guarded HTTP client

export const DEFAULT_MAX_REDIRECTS = 5;
export const DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024;

export interface GuardedRequestOptions extends GuardOptions {
  method: string;
  url: string | URL;
  /** Header names are matched case-insensitively. Values must already be valid header values. */
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Aborts the request (and closes the socket); the reason is rethrown when it is a WeftError. */
  signal?: AbortSignal;
  /** Whole-exchange deadline (all hops, headers and body) → WEFT_STEP_TIMEOUT, retryable. */
  timeoutMs?: number;
  maxRedirects?: number;
  maxBodyBytes?: number;
  /** Statuses that end the chain even when they are redirects (e.g. the caller's ok_status). */
  noFollow?: (status: number) => boolean;
}

export interface GuardedResponse {
  status: number;
  /** Lower-cased names; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
  /** The URL of the final hop. */
  url: string;
  redirects: number;
}

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];
const BODY_HEADERS = ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location', 'transfer-encoding'];
/** Set by node from the connection details; never taken from the caller. */
const CONTROLLED_HEADERS = new Set(['host', 'content-length', 'transfer-encoding', 'connection']);
const NON_RETRYABLE_NET_CODES = new Set([
  'ENOTFOUND',
  'ERR_INVALID_URL',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_INVALID_CHAR',
  'ERR_INVALID_HTTP_TOKEN',
  'ERR_HTTP_INVALID_HEADER_VALUE',
]);

function parseTarget(url: string | URL): URL {
  try {
    return typeof url === 'string' ? new URL(url) : new URL(url.href);
  } catch {
    throw new WeftError('WEFT_HTTP_ERROR', 'Invalid URL', { retryable: false });
  }
}

/** Refuses non-http(s) schemes and literal-IP hosts that are blocked (those never reach `lookup`). */
export function checkUrl(url: URL, options: GuardOptions): void {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new WeftError('WEFT_HTTP_BLOCKED', `Refusing URL scheme "${url.protocol}": only http: and https: are allowed`, {
      retryable: false,
      details: { scheme: url.protocol },
    });
  }
  const host = stripBrackets(url.hostname);
  if (host === '') throw new WeftError('WEFT_HTTP_BLOCKED', 'Refusing URL without a host', { retryable: false });
  if (net.isIP(host) !== 0) checkAddress(host, host, options);
}

function networkError(err: unknown, host: string): WeftError {
  if (err instanceof WeftError) return err;
  const e = err as NodeJS.ErrnoException;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  const what = code ?? (e instanceof Error ? e.message : String(err));
  return new WeftError('WEFT_HTTP_ERROR', `HTTP request to ${host} failed: ${what}`, {
    retryable: code === undefined || !NON_RETRYABLE_NET_CODES.has(code),
    cause: err,
    details: code === undefined ? { host } : { host, code },
  });
}

function abortReason(signal: AbortSignal): WeftError {
  const reason: unknown = signal.reason;
  if (reason instanceof WeftError) return reason;
  if (reason instanceof Error && reason.name === 'TimeoutError') {
    return new WeftError('WEFT_STEP_TIMEOUT', 'HTTP request timed out', { retryable: true, cause: reason });
  }
  return new WeftError('WEFT_CANCELLED', 'HTTP request aborted', { retryable: false, cause: reason });
}

function tooLarge(limit: number): WeftError {
  return new WeftError('WEFT_HTTP_ERROR', `Response body exceeds ${limit} bytes`, { retryable: false, details: { limit } });
}

function plainHeaders(raw: string[]): Record<string, string> {
  const map = new Map<string, string>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] ?? '').toLowerCase();
    const value = raw[i + 1] ?? '';
    const prev = map.get(name);
    map.set(name, prev === undefined ? value : `${prev}, ${value}`);
  }
  return Object.fromEntries(map); // own data properties, even for a header named __proto__
}

interface Hop {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  location: string | undefined;
}

function requestOnce(
  url: URL,
  method: string,
  headers: Record<string, string>,
  body: Buffer | undefined,
  options: GuardedRequestOptions,
  signal: AbortSignal,
  maxBodyBytes: number,
  follow: (status: number) => boolean,
): Promise<Hop> {
  const host = stripBrackets(url.hostname);
  return new Promise<Hop>((resolve, reject) => {
    if (signal.aborted) {
      reject(abortReason(signal));
      return;
    }
    let settled = false;
    let req: http.ClientRequest | undefined;
    let res: http.IncomingMessage | undefined;
    const finish = (err: WeftError | undefined, hop?: Hop): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener('abort', onAbort);
      if (err !== undefined) {
        res?.destroy();
        req?.destroy();
        reject(err);
      } else {
        resolve(hop as Hop);
      }
    };
    const onAbort = (): void => finish(abortReason(signal));
    signal.addEventListener('abort', onAbort, { once: true });

    const outHeaders: Record<string, string> = { ...headers };
    if (body !== undefined) outHeaders['content-length'] = String(body.length);
    const auth = url.username || url.password
      ? `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`
      : undefined;
    const requestOptions: https.RequestOptions = {
      protocol: url.protocol,
      hostname: host,
      port: url.port === '' ? undefined : Number(url.port),
      path: `${url.pathname}${url.search}`,
      method,
      headers: outHeaders,
      lookup: createGuardedLookup(options),
      agent: false,
      ...(auth === undefined ? {} : { auth }),
    };
    try {
      req = (url.protocol === 'https:' ? https : http).request(requestOptions);
    } catch (err) {
      finish(networkError(err, host));
      return;
    }
    req.on('error', (err) => finish(networkError(err, host)));
    req.on('response', (response) => {
      res = response;
      const status = response.statusCode ?? 0;
      const responseHeaders = plainHeaders(response.rawHeaders);
      const location = responseHeaders['location'];
      if (REDIRECT_STATUSES.has(status) && location !== undefined && follow(status)) {
        // Do not read a redirect's body; the connection is not reused anyway.
        finish(undefined, { status, headers: responseHeaders, body: Buffer.alloc(0), location });
        response.destroy();
        req?.destroy();
        return;
      }
      const declared = Number(responseHeaders['content-length']);
      if (Number.isFinite(declared) && declared > maxBodyBytes) {
        finish(tooLarge(maxBodyBytes));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      response.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > maxBodyBytes) {
          finish(tooLarge(maxBodyBytes));
          return;
        }
        chunks.push(chunk);
      });
      response.on('end', () => {
        finish(undefined, { status, headers: responseHeaders, body: Buffer.concat(chunks), location: undefined });
      });
      response.on('error', (err) => finish(networkError(err, host)));
      response.on('close', () => {
        if (!response.complete) finish(networkError(Object.assign(new Error('response aborted'), { code: 'ECONNRESET' }), host));
      });
    });
    req.end(body);
  });
}

/**
 * Performs an HTTP(S) request through the SSRF guard, following up to `maxRedirects` (5)
 * redirects by hand: every hop's URL is re-checked; 301/302/303 turn into GET without a body
 * (HEAD stays HEAD); 307/308 keep method and body; Authorization, Cookie and
 * Proxy-Authorization are dropped when a redirect crosses origins. The response body is
 * capped at `maxBodyBytes` (10 MiB) → WEFT_HTTP_ERROR. Non-2xx statuses are returned, not thrown.
 */
export async function guardedRequest(options: GuardedRequestOptions): Promise<GuardedResponse> {
  const maxRedirects = options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
  const maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const noFollow = options.noFollow ?? (() => false);

  const controller = new AbortController();
  const outer = options.signal;
  const onOuterAbort = (): void => controller.abort(outer?.reason);
  if (outer?.aborted) onOuterAbort();
  else outer?.addEventListener('abort', onOuterAbort, { once: true });
  let timer: NodeJS.Timeout | undefined;
  let url = parseTarget(options.url);
  if (options.timeoutMs !== undefined) {
    const ms = options.timeoutMs;
    timer = setTimeout(() => {
      controller.abort(
        new WeftError('WEFT_STEP_TIMEOUT', `HTTP request to ${stripBrackets(url.hostname)} timed out after ${ms} ms`, { retryable: true }),
      );
    }, ms);
  }

  try {
    let method = options.method.toUpperCase();
    let body: Buffer | undefined =
      options.body === undefined ? undefined : typeof options.body === 'string' ? Buffer.from(options.body) : options.body;
    let headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(options.headers ?? {})) {
      const lower = name.toLowerCase();
      if (!CONTROLLED_HEADERS.has(lower)) headers[lower] = value;
    }

    for (let redirects = 0; ; redirects++) {
      checkUrl(url, options);
      const hop = await requestOnce(url, method, headers, body, options, controller.signal, maxBodyBytes, (s) => !noFollow(s));
      if (hop.location === undefined) {
        return { status: hop.status, headers: hop.headers, body: hop.body, url: url.href, redirects };
      }
      if (redirects >= maxRedirects) {
        throw new WeftError('WEFT_HTTP_ERROR', `Too many redirects (more than ${maxRedirects})`, {
          retryable: false,
          details: { maxRedirects },
        });
      }
      let next: URL;
      try {
        next = new URL(hop.location, url);
      } catch {
        throw new WeftError('WEFT_HTTP_ERROR', `Invalid redirect location from ${stripBrackets(url.hostname)}`, { retryable: false });
      }
      if (next.origin !== url.origin || next.protocol !== url.protocol) {
        headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !CREDENTIAL_HEADERS.includes(k)));
      }
      if (hop.status === 301 || hop.status === 302 || hop.status === 303) {
        if (method !== 'HEAD') method = 'GET';
        body = undefined;
        headers = Object.fromEntries(Object.entries(headers).filter(([k]) => !BODY_HEADERS.includes(k)));
      }
      next.hash = '';
      url = next;
    }
  } finally {
    if (timer !== undefined) clearTimeout(timer);
    outer?.removeEventListener('abort', onOuterAbort);
  }
}
