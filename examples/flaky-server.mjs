// A tiny endpoint for examples/retry-backoff.yaml: answers 503 to the first FAILS calls per
// Idempotency-Key, then 200 with the number of calls it saw. Loopback only.
import { createServer } from 'node:http';

const port = Number(process.env.PORT ?? 8787);
const fails = Number(process.env.FAILS ?? 2);
const calls = new Map();

const server = createServer((req, res) => {
  const key = req.headers['idempotency-key'] ?? 'none';
  const n = (calls.get(key) ?? 0) + 1;
  calls.set(key, n);
  res.setHeader('content-type', 'application/json');
  if (n <= fails) {
    res.statusCode = 503;
    res.end(JSON.stringify({ error: 'temporarily unavailable', calls: n }));
  } else {
    res.end(JSON.stringify({ ok: true, calls: n }));
  }
});
// PORT=0 takes a free port; the line printed names the one in use.
server.listen(port, '127.0.0.1', () => console.log(`flaky endpoint on http://127.0.0.1:${server.address().port}/flaky (fails ${fails}× per key)`));
