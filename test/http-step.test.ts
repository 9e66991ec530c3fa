import { after, before, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { DEFAULT_RETRY, type CompiledStep } from '../src/core/compiled.ts';
import { WeftError } from '../src/core/errors.ts';
import { classifyAddress, type ResolvedAddress } from '../src/steps/net-guard.ts';
import { createHttpStep, httpStep } from '../src/steps/http.ts';
import type { StepContext, StepExecutor } from '../src/steps/types.ts';

// Every server here listens on 127.0.0.1 or ::1, and every URL dialled (even if the guard regressed)
// points at loopback: addresses outside it are tested in net-guard.test.ts as pure data only.

interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: string;
}

interface TestServer {
  server: http.Server;
  port: number;
  seen: Seen[];
  connections: number;
  sockets: Set<Socket>;
  /** Resolves when a socket that carried a /hang request closes. */
  hangClosed: Promise<void>;
  base: string;
}

const BIG = 11 * 1024 * 1024;

async function startServer(host: '127.0.0.1' | '::1', redirectTarget?: () => string): Promise<TestServer> {
  let resolveHangClosed: () => void = () => {};
  const state: TestServer = {
    server: undefined as unknown as http.Server,
    port: 0,
    seen: [],
    connections: 0,
    sockets: new Set(),
    hangClosed: new Promise<void>((r) => (resolveHangClosed = r)),
    base: '',
  };
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      state.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const u = new URL(req.url ?? '/', 'http://x');
      const path = u.pathname;
      const json = (status: number, value: unknown, headers: Record<string, string> = {}): void => {
        res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers });
        res.end(JSON.stringify(value));
      };
      let m: RegExpExecArray | null;
      if (path === '/json') return json(200, { hello: 'world', n: [1, 2] }, { 'x-multi': 'a' });
      if (path === '/echo') return json(200, { method: req.method, url: req.url, headers: req.headers, body });
      if (path === '/text') {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        return res.end('plain text');
      }
      if (path === '/json-as-text') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        return res.end('{"a":1}');
      }
      if (path === '/bad-json') {
        res.writeHead(200, { 'content-type': 'application/json' });
        return res.end('{not json');
      }
      if ((m = /^\/status\/(\d+)$/.exec(path))) {
        res.writeHead(Number(m[1]), { 'content-type': 'text/plain', 'retry-after': '7' });
        return res.end('upstream said\nno: details here');
      }
      if ((m = /^\/redirect\/(\d+)$/.exec(path))) {
        const n = Number(m[1]);
        res.writeHead(302, { location: n <= 1 ? '/json' : `/redirect/${n - 1}` });
        return res.end();
      }
      if ((m = /^\/code\/(\d+)$/.exec(path))) {
        res.writeHead(Number(m[1]), { location: u.searchParams.get('to') ?? '/echo' });
        return res.end();
      }
      if (path === '/to') {
        res.writeHead(302, { location: u.searchParams.get('loc') ?? (redirectTarget ? redirectTarget() : '/json') });
        return res.end();
      }
      if (path === '/hang') {
        req.socket.on('close', () => resolveHangClosed());
        return; // never answer
      }
      if (path === '/big') {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(BIG) });
        return res.end(Buffer.alloc(BIG, 0x61));
      }
      if (path === '/big-chunked') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        const chunk = Buffer.alloc(1024 * 1024, 0x61);
        let sent = 0;
        const pump = (): void => {
          while (sent < 11 && !res.destroyed) {
            sent++;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
          res.end();
        };
        res.on('error', () => {});
        return pump();
      }
      if (path === '/empty') {
        res.writeHead(204);
        return res.end();
      }
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    });
  });
  server.on('connection', (socket) => {
    state.connections++;
    state.sockets.add(socket);
    socket.on('close', () => state.sockets.delete(socket));
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  state.server = server;
  state.port = (server.address() as AddressInfo).port;
  state.base = host === '::1' ? `http://[::1]:${state.port}` : `http://127.0.0.1:${state.port}`;
  return state;
}

async function stopServer(s: TestServer): Promise<void> {
  for (const socket of s.sockets) socket.destroy();
  await new Promise((r) => s.server.close(r));
}

interface CtxOptions {
  allowPrivate?: boolean;
  timeoutMs?: number;
  signal?: AbortSignal;
  scope?: Record<string, unknown>;
  params?: Record<string, unknown>;
  attempt?: number;
}

function makeCtx(definition: Record<string, unknown>, o: CtxOptions = {}): StepContext {
  const step = {
    id: 'call',
    type: 'http',
    definition: { type: 'http', ...definition },
    needs: [],
    dependents: [],
    trigger: 'all_success',
    retry: DEFAULT_RETRY,
    timeoutMs: o.timeoutMs,
    onError: 'fail',
    refs: [],
    level: 0,
  } as unknown as CompiledStep;
  return {
    runId: 'run-1',
    stepId: 'call',
    attempt: o.attempt ?? 1,
    idempotencyKey: 'run-1:call',
    step,
    scope: o.scope ?? {},
    params: o.params ?? {},
    signal: o.signal ?? new AbortController().signal,
    settings: { allowPrivateNetwork: o.allowPrivate ?? true, defaultProvider: undefined },
    agents: async () => undefined,
    streamOutput: () => {},
  };
}

interface Output {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

async function run(exec: StepExecutor, definition: Record<string, unknown>, o: CtxOptions = {}): Promise<Output> {
  return (await exec(makeCtx(definition, o))).output as Output;
}

function isWeft(code: string, retryable?: boolean) {
  return (e: unknown): boolean => {
    assert.ok(e instanceof WeftError, `expected WeftError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (retryable !== undefined) assert.equal(e.retryable, retryable, e.message);
    return true;
  };
}

void describe('http step (allowPrivateNetwork: true)', () => {
  let a: TestServer;
  let b: TestServer;
  before(async () => {
    a = await startServer('127.0.0.1');
    b = await startServer('127.0.0.1');
  });
  after(async () => {
    await stopServer(a);
    await stopServer(b);
  });
  beforeEach(() => {
    a.seen.length = 0;
    b.seen.length = 0;
  });

  void it('GET JSON', async () => {
    const out = await run(httpStep, { url: `${a.base}/json` });
    assert.equal(out.status, 200);
    assert.deepEqual(out.body, { hello: 'world', n: [1, 2] });
    assert.equal(out.headers['content-type'], 'application/json; charset=utf-8');
    assert.equal(out.headers['x-multi'], 'a');
    assert.equal(Object.getPrototypeOf(out.headers), Object.prototype);
    assert.deepEqual(JSON.parse(JSON.stringify(out)), out, 'output is plain JSON');
    assert.equal(a.seen[0]?.method, 'GET');
    assert.equal(a.seen[0]?.body, '');
  });

  void it('POST JSON body rendered from scope, with method defaulted', async () => {
    const out = await run(
      httpStep,
      {
        url: `${a.base}/echo`,
        body: { name: '{{ $input.name }}', count: '{{ $input.n }}', nested: { greeting: 'hi {{ $input.name }}', list: ['{{ $prev.x }}', 3] }, flag: true },
      },
      { scope: { input: { name: 'Ada', n: 42 }, prev: { x: { deep: 1 } } } },
    );
    const echo = out.body as { method: string; headers: Record<string, string>; body: string };
    assert.equal(echo.method, 'POST');
    assert.equal(echo.headers['content-type'], 'application/json');
    assert.deepEqual(JSON.parse(echo.body), { name: 'Ada', count: 42, nested: { greeting: 'hi Ada', list: [{ deep: 1 }, 3] }, flag: true });
  });

  void it('string body template is sent as text; explicit method wins', async () => {
    const out = await run(httpStep, { method: 'PUT', url: `${a.base}/echo`, body: 'Dear {{ $input.name }}' }, { scope: { input: { name: 'Ada' } } });
    const echo = out.body as { method: string; headers: Record<string, string>; body: string };
    assert.equal(echo.method, 'PUT');
    assert.equal(echo.body, 'Dear Ada');
    assert.equal(echo.headers['content-type'], 'text/plain; charset=utf-8');
  });

  void it('`with` bindings are visible as $with', async () => {
    await run(httpStep, { url: `${a.base}/echo`, query: { q: '{{ $with.q }}' } }, { params: { q: 'from-with' } });
    assert.equal(a.seen[0]?.url, '/echo?q=from-with');
  });

  void it('text responses: auto with text/plain, and response: text on JSON', async () => {
    assert.equal((await run(httpStep, { url: `${a.base}/text` })).body, 'plain text');
    assert.equal((await run(httpStep, { url: `${a.base}/json`, response: 'text' })).body, '{"hello":"world","n":[1,2]}');
    assert.equal((await run(httpStep, { url: `${a.base}/json-as-text` })).body, '{"a":1}');
    assert.deepEqual((await run(httpStep, { url: `${a.base}/json-as-text`, response: 'json' })).body, { a: 1 });
    assert.equal((await run(httpStep, { url: `${a.base}/bad-json` })).body, '{not json', 'auto falls back to text');
    await assert.rejects(run(httpStep, { url: `${a.base}/bad-json`, response: 'json' }), isWeft('WEFT_HTTP_ERROR', false));
    const empty = await run(httpStep, { url: `${a.base}/empty`, method: 'DELETE' });
    assert.equal(empty.status, 204);
    assert.equal(empty.body, '');
  });

  void it('renders url, headers and query templates', async () => {
    const out = await run(
      httpStep,
      {
        url: 'http://127.0.0.1:{{ $input.port }}/echo?fixed=1',
        headers: { 'X-Token': 'Bearer {{ $input.token }}', 'X-Count': '{{ $input.n }}', 'X-Gone': '{{ $input.missing }}' },
        query: { q: '{{ $input.q }}', n: '{{ $input.n }}', tag: '{{ $input.tags }}', skip: '{{ $input.missing }}' },
      },
      { scope: { input: { port: a.port, token: 's3cret', n: 7, q: 'a b&c', tags: ['x', 'y'] } } },
    );
    assert.equal(out.status, 200);
    const seen = a.seen[0];
    assert.ok(seen);
    assert.equal(seen.url, '/echo?fixed=1&q=a+b%26c&n=7&tag=x&tag=y');
    assert.equal(seen.headers['x-token'], 'Bearer s3cret');
    assert.equal(seen.headers['x-count'], '7');
    assert.equal(seen.headers['x-gone'], undefined);
    assert.equal(seen.headers['user-agent'], 'weft/0.1');
  });

  void it('sends a stable Idempotency-Key unless the step sets one', async () => {
    await run(httpStep, { url: `${a.base}/echo` }, { attempt: 1 });
    await run(httpStep, { url: `${a.base}/echo` }, { attempt: 2 });
    await run(httpStep, { url: `${a.base}/echo`, headers: { 'idempotency-KEY': 'mine-{{ $input.k }}' } }, { scope: { input: { k: 9 } } });
    await run(httpStep, { url: `${a.base}/echo`, headers: { 'Idempotency-Key': '{{ null }}' } });
    assert.equal(a.seen[0]?.headers['idempotency-key'], 'run-1:call');
    assert.equal(a.seen[1]?.headers['idempotency-key'], 'run-1:call');
    assert.equal(a.seen[2]?.headers['idempotency-key'], 'mine-9');
    assert.equal(a.seen[3]?.headers['idempotency-key'], undefined, 'a header rendering to null opts out');
  });

  void it('follows redirects', async () => {
    const out = await run(httpStep, { url: `${a.base}/redirect/3` });
    assert.equal(out.status, 200);
    assert.deepEqual(out.body, { hello: 'world', n: [1, 2] });
    assert.deepEqual(a.seen.map((s) => s.url), ['/redirect/3', '/redirect/2', '/redirect/1', '/json']);
  });

  void it('303/302 turn into GET without a body; 307/308 keep method and body', async () => {
    for (const code of [301, 302, 303]) {
      a.seen.length = 0;
      const out = await run(httpStep, { url: `${a.base}/code/${code}`, body: { x: 1 } });
      const echo = out.body as { method: string; body: string; headers: Record<string, string> };
      assert.equal(echo.method, 'GET', String(code));
      assert.equal(echo.body, '');
      assert.equal(echo.headers['content-type'], undefined);
    }
    for (const code of [307, 308]) {
      const out = await run(httpStep, { url: `${a.base}/code/${code}`, method: 'PATCH', body: { x: 1 } });
      const echo = out.body as { method: string; body: string; headers: Record<string, string> };
      assert.equal(echo.method, 'PATCH', String(code));
      assert.equal(echo.body, '{"x":1}');
      assert.equal(echo.headers['content-type'], 'application/json');
    }
  });

  void it('strips Authorization and Cookie on cross-origin redirects only', async () => {
    const headers = { Authorization: 'Bearer top-secret', Cookie: 'sid=1', 'X-Keep': 'yes' };
    await run(httpStep, { url: `${a.base}/code/302?to=${encodeURIComponent(`${b.base}/echo`)}`, headers });
    const cross = b.seen[0];
    assert.ok(cross);
    assert.equal(cross.headers.authorization, undefined);
    assert.equal(cross.headers.cookie, undefined);
    assert.equal(cross.headers['x-keep'], 'yes');
    assert.equal(cross.headers['idempotency-key'], 'run-1:call');

    a.seen.length = 0;
    await run(httpStep, { url: `${a.base}/code/307?to=/echo`, headers });
    const same = a.seen[1];
    assert.ok(same);
    assert.equal(same.headers.authorization, 'Bearer top-secret');
    assert.equal(same.headers.cookie, 'sid=1');
  });

  void it('a redirect status listed in ok_status is returned, not followed', async () => {
    const out = await run(httpStep, { url: `${a.base}/code/302?to=/json`, ok_status: [302] });
    assert.equal(out.status, 302);
    assert.equal(out.headers.location, '/json');
    assert.equal(a.seen.length, 1);
  });

  void it('5 redirects are fine, 6 fail', async () => {
    assert.equal((await run(httpStep, { url: `${a.base}/redirect/5` })).status, 200);
    a.seen.length = 0;
    await assert.rejects(run(httpStep, { url: `${a.base}/redirect/6` }), (e: unknown) => {
      isWeft('WEFT_HTTP_ERROR', false)(e);
      assert.match((e as Error).message, /redirect/i);
      return true;
    });
    assert.equal(a.seen.length, 6, 'gave up without requesting the 7th URL');
  });

  void it('maps statuses to retryable / non-retryable errors without echoing request headers', async () => {
    const cases: [number, boolean][] = [[500, true], [502, true], [503, true], [408, true], [425, true], [429, true], [400, false], [401, false], [404, false], [422, false]];
    for (const [status, retryable] of cases) {
      await assert.rejects(run(httpStep, { url: `${a.base}/status/${status}`, headers: { Authorization: 'Bearer hunter2' } }), (e: unknown) => {
        isWeft('WEFT_HTTP_ERROR', retryable)(e);
        const err = e as WeftError;
        assert.match(err.message, new RegExp(`\\b${status}\\b`));
        assert.match(err.message, /upstream said no: details here/);
        assert.doesNotMatch(err.message, /hunter2/);
        assert.equal(err.details?.status, status);
        return true;
      });
    }
  });

  void it('ok_status makes other statuses succeed', async () => {
    const out = await run(httpStep, { url: `${a.base}/status/404`, ok_status: [200, 404] });
    assert.equal(out.status, 404);
    assert.equal(out.body, 'upstream said\nno: details here');
  });

  void it('connection refused is retryable', async () => {
    const tmp = await startServer('127.0.0.1');
    const port = tmp.port;
    await stopServer(tmp);
    await assert.rejects(run(httpStep, { url: `http://127.0.0.1:${port}/` }), (e: unknown) => {
      isWeft('WEFT_HTTP_ERROR', true)(e);
      assert.match((e as Error).message, /ECONNREFUSED/);
      return true;
    });
  });

  void it('times out via timeout_ms promptly and closes the socket', async () => {
    const s = await startServer('127.0.0.1');
    try {
      const t0 = Date.now();
      await assert.rejects(run(httpStep, { url: `${s.base}/hang` }, { timeoutMs: 150 }), isWeft('WEFT_STEP_TIMEOUT', true));
      assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
      await s.hangClosed;
      assert.equal(s.sockets.size, 0);
    } finally {
      await stopServer(s);
    }
  });

  void it('aborts via the signal promptly and closes the socket', async () => {
    const s = await startServer('127.0.0.1');
    try {
      const controller = new AbortController();
      const t0 = Date.now();
      const p = run(httpStep, { url: `${s.base}/hang` }, { signal: controller.signal, timeoutMs: 60_000 });
      setTimeout(() => controller.abort(new WeftError('WEFT_CANCELLED', 'run cancelled')), 100);
      await assert.rejects(p, (e: unknown) => {
        isWeft('WEFT_CANCELLED')(e);
        assert.equal((e as Error).message, 'run cancelled', 'the engine\'s reason is passed through');
        return true;
      });
      assert.ok(Date.now() - t0 < 2000);
      await s.hangClosed;
      assert.equal(s.sockets.size, 0);
      // An already-aborted signal never connects.
      const before = s.connections;
      await assert.rejects(run(httpStep, { url: `${s.base}/json` }, { signal: AbortSignal.abort() }), isWeft('WEFT_CANCELLED'));
      assert.equal(s.connections, before);
    } finally {
      await stopServer(s);
    }
  });

  void it('refuses oversized bodies (declared and streamed)', async () => {
    await assert.rejects(run(httpStep, { url: `${a.base}/big` }), (e: unknown) => {
      isWeft('WEFT_HTTP_ERROR', false)(e);
      assert.match((e as Error).message, /exceeds 10485760 bytes/);
      return true;
    });
    await assert.rejects(run(httpStep, { url: `${a.base}/big-chunked` }), isWeft('WEFT_HTTP_ERROR', false));
    const small = createHttpStep({ maxBodyBytes: 10 });
    await assert.rejects(run(small, { url: `${a.base}/json` }), /exceeds 10 bytes/);
  });

  void it('rejects bad templates and header values without echoing them', async () => {
    await assert.rejects(run(httpStep, { url: '{{ $input.n }}' }, { scope: { input: { n: 5 } } }), /url must render to a string/);
    await assert.rejects(run(httpStep, { url: 'not a url {{ $input.secret }}' }, { scope: { input: { secret: 'pw123' } } }), (e: unknown) => {
      isWeft('WEFT_HTTP_ERROR', false)(e);
      assert.doesNotMatch((e as Error).message, /pw123/);
      return true;
    });
    await assert.rejects(run(httpStep, { url: `${a.base}/echo`, headers: { 'X-Evil': '{{ $input.v }}' } }, { scope: { input: { v: 'ok\r\nX-Injected: pw123' } } }), (e: unknown) => {
      isWeft('WEFT_HTTP_ERROR', false)(e);
      assert.doesNotMatch((e as Error).message, /pw123/);
      return true;
    });
    assert.equal(a.seen.length, 0);
  });
});

void describe('http step (allowPrivateNetwork: false)', () => {
  let target: TestServer;
  before(async () => {
    target = await startServer('127.0.0.1');
  });
  after(async () => {
    await stopServer(target);
  });

  void it('refuses the loopback server in every spelling before any request reaches it', async () => {
    const urls = [
      `http://127.0.0.1:${target.port}/json`,
      `http://[::ffff:127.0.0.1]:${target.port}/json`,
      `http://[::ffff:7f00:1]:${target.port}/json`,
      `http://localhost:${target.port}/json`,
      `http://2130706433:${target.port}/json`,
      `http://0x7f.1:${target.port}/json`,
      `http://0177.0.0.1:${target.port}/json`,
      `http://[::1]:${target.port}/json`,
      `http://0.0.0.0:${target.port}/json`,
      `http://[::]:${target.port}/json`,
    ];
    for (const url of urls) {
      await assert.rejects(run(httpStep, { url }, { allowPrivate: false }), (e: unknown) => {
        isWeft('WEFT_HTTP_BLOCKED', false)(e);
        return true;
      }, url);
    }
    assert.equal(target.seen.length, 0);
    assert.equal(target.connections, 0);
  });

  void it('a metadata-class address stays blocked with allowPrivateNetwork: true', async () => {
    // Metadata addresses are only ever classified here, never dialled: a classifier seam marks the
    // loopback server as 'metadata', so a regression could at worst reach 127.0.0.1.
    const step = createHttpStep({ classify: (ip) => (ip === '127.0.0.1' ? 'metadata' : classifyAddress(ip)) });
    await assert.rejects(run(step, { url: `${target.base}/json` }, { allowPrivate: true }), (e: unknown) => {
      isWeft('WEFT_HTTP_BLOCKED', false)(e);
      assert.match((e as Error).message, /metadata/);
      return true;
    });
    assert.equal(target.connections, 0);
  });

  void describe('redirect from an allowed host to a blocked one', () => {
    // Test-only seams: a resolver mapping fake names, and a classifier that lets the ::1 server
    // stand in for a public host. 127.0.0.1 keeps its real classification.
    let front: TestServer;
    let nextLocation = '';
    const resolve = async (host: string): Promise<ResolvedAddress[]> => {
      if (host === 'public.test') return [{ address: '::1', family: 6 }];
      if (host === 'internal.test') return [{ address: '127.0.0.1', family: 4 }];
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    };
    const classify = (ip: string) => (ip === '::1' ? 'public' : classifyAddress(ip));
    const step = createHttpStep({ resolve, classify });

    before(async () => {
      front = await startServer('::1', () => nextLocation);
    });
    after(async () => {
      await stopServer(front);
    });

    void it('control: the fake public host is reachable and may redirect to itself', async () => {
      nextLocation = `http://public.test:${front.port}/json`;
      const out = await run(step, { url: `http://public.test:${front.port}/to` }, { allowPrivate: false });
      assert.deepEqual(out.body, { hello: 'world', n: [1, 2] });
      assert.equal(front.seen.at(-1)?.headers.host, `public.test:${front.port}`);
    });

    void it('refuses every blocked hop before it is requested', async () => {
      const targets = [
        `http://127.0.0.1:${target.port}/json`,
        `http://internal.test:${target.port}/json`,
        `http://[::ffff:127.0.0.1]:${target.port}/json`,
        `http://2130706433:${target.port}/json`,
        'file:///etc/passwd',
        'gopher://public.test/_x',
      ];
      for (const t of targets) {
        nextLocation = t;
        const before = front.seen.length;
        await assert.rejects(run(step, { url: `http://public.test:${front.port}/to` }, { allowPrivate: false }), isWeft('WEFT_HTTP_BLOCKED', false), t);
        assert.equal(front.seen.length, before + 1, 'the first hop was made');
      }
      assert.equal(target.seen.length, 0);
      assert.equal(target.connections, 0);
    });
  });
});
