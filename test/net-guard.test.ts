import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { LookupAddress } from 'node:dns';
import { WeftError } from '../src/core/errors.ts';
import {
  checkUrl,
  classifyAddress,
  createGuardedLookup,
  guardedRequest,
  isBlocked,
  resolveChecked,
  type AddressClass,
  type GuardOptions,
  type ResolvedAddress,
  type Resolver,
} from '../src/steps/net-guard.ts';

// Public, private and metadata addresses appear below only as data for the pure classifier and
// for injected resolvers whose answers are never connected to; the only server dialled is the
// loopback one at the end.

const ADDRESSES: [string, AddressClass][] = [
  // IPv4
  ['8.8.8.8', 'public'],
  ['1.1.1.1', 'public'],
  ['93.184.216.34', 'public'],
  ['172.32.0.1', 'public'],
  ['100.128.0.1', 'public'],
  ['192.175.48.1', 'public'], // AS112 anycast
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['10.0.0.1', 'private'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['192.168.1.1', 'private'],
  ['100.64.0.1', 'private'], // CGNAT
  ['100.127.255.255', 'private'],
  ['169.254.1.1', 'link-local'],
  ['169.254.169.254', 'metadata'],
  ['169.254.170.2', 'metadata'],
  ['100.100.100.200', 'metadata'],
  ['168.63.129.16', 'metadata'],
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  ['255.255.255.255', 'broadcast'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['240.0.0.1', 'reserved'],
  ['192.0.2.1', 'reserved'],
  ['198.18.0.1', 'reserved'],
  ['192.0.0.8', 'reserved'],
  // inet_aton forms, read the way the C library reads them
  ['2130706433', 'loopback'],
  ['0x7f000001', 'loopback'],
  ['0x7f.1', 'loopback'],
  ['0177.0.0.1', 'loopback'],
  ['127.1', 'loopback'],
  ['012.0.0.1', 'private'], // octal 012 = 10
  // IPv6
  ['2001:4860:4860::8888', 'public'],
  ['2606:4700:4700::1111', 'public'],
  ['::1', 'loopback'],
  ['[::1]', 'loopback'],
  ['0:0:0:0:0:0:0:1', 'loopback'],
  ['::', 'unspecified'],
  ['[::]', 'unspecified'],
  ['fe80::1', 'link-local'],
  ['fe80::1%eth0', 'link-local'],
  ['febf::1', 'link-local'],
  ['fc00::1', 'private'],
  ['fd12:3456:789a::1', 'private'],
  ['fec0::1', 'private'],
  ['fd00:ec2::254', 'metadata'],
  ['fd00:ec2::23', 'metadata'],
  ['fd20:ce::254', 'metadata'],
  ['ff02::1', 'multicast'],
  ['ff0e::1', 'multicast'],
  ['2001:db8::1', 'reserved'],
  ['100::1', 'reserved'],
  ['4000::1', 'reserved'],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'reserved'], // Teredo
  // IPv6 with an embedded IPv4 address
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', 'loopback'],
  ['[::ffff:7f00:1]', 'loopback'],
  ['0:0:0:0:0:ffff:7f00:1', 'loopback'],
  ['::ffff:10.0.0.1', 'private'],
  ['::ffff:169.254.169.254', 'metadata'],
  ['::ffff:a9fe:a9fe', 'metadata'],
  ['::ffff:0.0.0.0', 'unspecified'],
  ['::ffff:8.8.8.8', 'public'],
  ['::ffff:0:7f00:1', 'loopback'], // IPv4-translated (RFC 6145)
  ['::7f00:1', 'loopback'], // IPv4-compatible
  ['::127.0.0.1', 'loopback'],
  ['::a00:1', 'private'],
  ['64:ff9b::7f00:1', 'loopback'], // NAT64
  ['64:ff9b::a9fe:a9fe', 'metadata'],
  ['64:ff9b::808:808', 'public'],
  ['64:ff9b:1::1', 'private'], // local-use NAT64
  ['2002:7f00:1::1', 'loopback'], // 6to4
  ['2002:c0a8:101::1', 'private'],
  ['2002:808:808::1', 'public'],
  // not addresses
  ['localhost', 'invalid'],
  ['example.com', 'invalid'],
  ['', 'invalid'],
  ['1.2.3.4.5', 'invalid'],
  ['256.0.0.1', 'invalid'],
  ['::ffff:1.2.3', 'invalid'],
  ['[::1', 'invalid'],
];

const OPENED_BY_ALLOW_PRIVATE = new Set<AddressClass>(['loopback', 'private', 'link-local', 'reserved']);

void describe('classifyAddress / isBlocked', () => {
  for (const [ip, expected] of ADDRESSES) {
    void it(`${JSON.stringify(ip)} → ${expected}`, () => {
      assert.equal(classifyAddress(ip), expected);
      assert.equal(isBlocked(ip, false), expected !== 'public');
      assert.equal(isBlocked(ip, true), expected !== 'public' && !OPENED_BY_ALLOW_PRIVATE.has(expected));
    });
  }

  void it('allowPrivate never opens metadata, unspecified, multicast, broadcast or invalid', () => {
    for (const ip of ['169.254.169.254', 'fd00:ec2::254', '::ffff:169.254.169.254', '0.0.0.0', '::', 'ff02::1', '224.0.0.1', '255.255.255.255', 'nope']) {
      assert.equal(isBlocked(ip, true), true, ip);
    }
    for (const ip of ['127.0.0.1', '::1', '10.0.0.1', 'fd12::1', '169.254.1.1', '100.64.0.1', '::ffff:127.0.0.1']) {
      assert.equal(isBlocked(ip, true), false, ip);
    }
  });
});

/** What actually reaches the check: WHATWG URL parsing normalises numeric hosts first. */
const URL_FORMS: [string, string, AddressClass][] = [
  ['http://2130706433/', '127.0.0.1', 'loopback'],
  ['http://0x7f.1/', '127.0.0.1', 'loopback'],
  ['http://0x7F000001/', '127.0.0.1', 'loopback'],
  ['http://0177.0.0.1/', '127.0.0.1', 'loopback'],
  ['http://127.1/', '127.0.0.1', 'loopback'],
  ['http://127.0.0.1./', '127.0.0.1', 'loopback'],
  ['http://%31%32%37.0.0.1/', '127.0.0.1', 'loopback'],
  ['http://0/', '0.0.0.0', 'unspecified'],
  ['http://[::]/', '[::]', 'unspecified'],
  ['http://[::1]:8080/', '[::1]', 'loopback'],
  ['http://[::ffff:127.0.0.1]/', '[::ffff:7f00:1]', 'loopback'],
  ['http://[0:0:0:0:0:ffff:7f00:1]/', '[::ffff:7f00:1]', 'loopback'],
  ['http://[::127.0.0.1]/', '[::7f00:1]', 'loopback'],
  ['http://169.254.169.254/latest/meta-data/', '169.254.169.254', 'metadata'],
  ['http://0xa9fea9fe/', '169.254.169.254', 'metadata'],
  ['http://2852039166/', '169.254.169.254', 'metadata'],
  ['http://[::ffff:a9fe:a9fe]/', '[::ffff:a9fe:a9fe]', 'metadata'],
  ['http://[fd00:ec2::254]/', '[fd00:ec2::254]', 'metadata'],
  ['https://user:pw@10.0.0.1:8443/x', '10.0.0.1', 'private'],
];

void describe('URL forms', () => {
  for (const [url, hostname, expected] of URL_FORMS) {
    void it(`${url} → ${hostname} (${expected}) is refused`, () => {
      const parsed = new URL(url);
      assert.equal(parsed.hostname, hostname);
      assert.equal(classifyAddress(parsed.hostname), expected);
      assert.throws(() => checkUrl(parsed, { allowPrivate: false }), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_HTTP_BLOCKED' && !e.retryable);
      const opened = OPENED_BY_ALLOW_PRIVATE.has(expected);
      if (opened) assert.doesNotThrow(() => checkUrl(parsed, { allowPrivate: true }));
      else assert.throws(() => checkUrl(parsed, { allowPrivate: true }), /WEFT_HTTP_BLOCKED|not allowed/);
    });
  }

  void it('names are left to the guarded lookup', () => {
    assert.doesNotThrow(() => checkUrl(new URL('https://api.example.com/v1'), { allowPrivate: false }));
  });
});

void describe('scheme refusal', () => {
  for (const url of ['file:///etc/passwd', 'ftp://127.0.0.1/x', 'data:text/plain,hello', 'gopher://127.0.0.1:70/_x', 'javascript:alert(1)', 'ws://127.0.0.1/', 'dict://127.0.0.1:11211/stat', 'blob:http://127.0.0.1/x']) {
    void it(`refuses ${url}`, async () => {
      assert.throws(() => checkUrl(new URL(url), { allowPrivate: true }), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_HTTP_BLOCKED');
      await assert.rejects(guardedRequest({ method: 'GET', url, allowPrivate: true }), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_HTTP_BLOCKED' && !e.retryable);
    });
  }
});

function fixed(map: Record<string, string[]>): Resolver & { calls: string[] } {
  const calls: string[] = [];
  const fn = async (host: string): Promise<ResolvedAddress[]> => {
    calls.push(host);
    const list = map[host];
    if (list === undefined) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return list.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  return Object.assign(fn, { calls });
}

function lookupOnce(opts: GuardOptions, host: string, all = false): Promise<{ err: NodeJS.ErrnoException | null; address: string | LookupAddress[]; family?: number }> {
  const lookup = createGuardedLookup(opts);
  return new Promise((resolve) => {
    lookup(host, { all }, (err, address, family) => resolve({ err, address, family }));
  });
}

void describe('resolveChecked / guarded lookup', () => {
  void it('passes names that resolve to public addresses only', async () => {
    const resolve = fixed({ 'api.example.test': ['93.184.216.34', '2606:2800:220:1:248:1893:25c8:1946'] });
    const out = await resolveChecked('api.example.test', { allowPrivate: false, resolve });
    assert.deepEqual(out, [
      { address: '93.184.216.34', family: 4 },
      { address: '2606:2800:220:1:248:1893:25c8:1946', family: 6 },
    ]);
  });

  void it('refuses when ANY resolved address is blocked (mixed lists)', async () => {
    const cases: Record<string, string[]> = {
      'a.test': ['93.184.216.34', '127.0.0.1'],
      'b.test': ['10.0.0.5', '93.184.216.34'],
      'c.test': ['2606:4700::1111', '::1'],
      'd.test': ['93.184.216.34', '::ffff:169.254.169.254'],
      'e.test': ['93.184.216.34', '0.0.0.0'],
      'f.test': ['not-an-address'],
    };
    const resolve = fixed(cases);
    for (const host of Object.keys(cases)) {
      await assert.rejects(resolveChecked(host, { allowPrivate: false, resolve }), (e: unknown) => {
        assert.ok(e instanceof WeftError);
        assert.equal(e.code, 'WEFT_HTTP_BLOCKED');
        assert.equal(e.retryable, false);
        assert.match(e.message, new RegExp(host.replace('.', '\\.')));
        return true;
      });
    }
  });

  void it('allowPrivate opens private answers but not metadata', async () => {
    const resolve = fixed({ 'svc.internal': ['10.0.0.5', '127.0.0.1'], 'meta.internal': ['169.254.169.254'] });
    assert.equal((await resolveChecked('svc.internal', { allowPrivate: true, resolve })).length, 2);
    await assert.rejects(resolveChecked('meta.internal', { allowPrivate: true, resolve }), /metadata/);
  });

  void it('DNS rebinding: every lookup is checked, and the answer checked is the answer used', async () => {
    let calls = 0;
    const rebinding: Resolver = async () => {
      calls++;
      return calls === 1 ? [{ address: '93.184.216.34', family: 4 }] : [{ address: '127.0.0.1', family: 4 }];
    };
    const opts = { allowPrivate: false, resolve: rebinding };
    const first = await lookupOnce(opts, 'rebind.test');
    assert.equal(first.err, null);
    assert.equal(first.address, '93.184.216.34');
    assert.equal(first.family, 4);
    const second = await lookupOnce(opts, 'rebind.test');
    assert.ok(second.err instanceof WeftError);
    assert.equal(second.err.code, 'WEFT_HTTP_BLOCKED');
    assert.match(second.err.message, /rebind\.test/);
    assert.match(second.err.message, /127\.0\.0\.1/);
    assert.equal(calls, 2);
  });

  void it('supports the all:true convention and family filtering', async () => {
    const resolve = fixed({ 'dual.test': ['93.184.216.34', '2606:4700::1111'] });
    const all = await lookupOnce({ allowPrivate: false, resolve }, 'dual.test', true);
    assert.equal(all.err, null);
    assert.deepEqual(all.address, [
      { address: '93.184.216.34', family: 4 },
      { address: '2606:4700::1111', family: 6 },
    ]);
    const lookup = createGuardedLookup({ allowPrivate: false, resolve });
    const v6 = await new Promise<string | LookupAddress[]>((res, rej) =>
      lookup('dual.test', { family: 6 }, (err, address) => (err ? rej(err) : res(address))),
    );
    assert.equal(v6, '2606:4700::1111');
  });

  void it('checks literal IPs without asking the resolver', async () => {
    const resolve = fixed({});
    await assert.rejects(resolveChecked('127.0.0.1', { allowPrivate: false, resolve }), /WEFT_HTTP_BLOCKED|not allowed/);
    await assert.rejects(resolveChecked('[::1]', { allowPrivate: false, resolve }), /not allowed/);
    assert.deepEqual(await resolveChecked('::1', { allowPrivate: true, resolve }), [{ address: '::1', family: 6 }]);
    assert.deepEqual(resolve.calls, []);
  });

  void it('passes resolver failures through', async () => {
    const r = await lookupOnce({ allowPrivate: false, resolve: fixed({}) }, 'nx.test');
    assert.equal(r.err?.code, 'ENOTFOUND');
  });

  void it('the system resolver refuses localhost', async () => {
    await assert.rejects(resolveChecked('localhost', { allowPrivate: false }), (e: unknown) => e instanceof WeftError && e.code === 'WEFT_HTTP_BLOCKED');
  });
});

void describe('guardedRequest uses the checked address', () => {
  let server: http.Server;
  let port: number;
  const seen: { host: string | undefined; url: string | undefined }[] = [];

  before(async () => {
    server = http.createServer((req, res) => {
      seen.push({ host: req.headers.host, url: req.url });
      res.setHeader('content-type', 'text/plain');
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise((r) => server.close(r));
  });

  void it('connects to the one address the resolver returned, resolving once', async () => {
    const resolve = fixed({ 'svc.test': ['127.0.0.1'] });
    const res = await guardedRequest({ method: 'GET', url: `http://svc.test:${port}/hello?a=1`, allowPrivate: true, resolve });
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'ok');
    assert.deepEqual(resolve.calls, ['svc.test']);
    assert.deepEqual(seen.at(-1), { host: `svc.test:${port}`, url: '/hello?a=1' });
  });

  void it('refuses a name that maps to loopback without connecting', async () => {
    const before = seen.length;
    const resolve = fixed({ 'svc.test': ['127.0.0.1'] });
    await assert.rejects(
      guardedRequest({ method: 'GET', url: `http://svc.test:${port}/`, allowPrivate: false, resolve }),
      (e: unknown) => e instanceof WeftError && e.code === 'WEFT_HTTP_BLOCKED',
    );
    assert.equal(seen.length, before);
  });
});
