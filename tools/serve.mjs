// A small static server for the demo page and the browser tests: the right MIME types (wasm as
// application/wasm, JS modules), COOP/COEP headers (cross-origin isolation, so the page may use
// SharedArrayBuffer later), no caching, single byte ranges (`Range: bytes=a-b`, as model hosts
// serve them, with ETag and Last-Modified; `?norange` on a URL makes it ignore ranges, as some
// servers do), and nothing outside its roots.
//
//   node tools/serve.mjs [--port 8080] [--host 127.0.0.1] ROOT [/prefix=DIR ...]
//
// Also importable: `startServer({ root, mounts, port })` resolves to `{ url, close, log }`; `log`
// lists every response as `{ path, range, status, bytes }` (the tests count what a load fetched).

import { createServer } from 'node:http';
import { createReadStream, statSync } from 'node:fs';
import { extname, join, normalize, resolve, sep } from 'node:path';

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.wasm': 'application/wasm', '.svg': 'image/svg+xml',
  '.png': 'image/png', '.ico': 'image/x-icon', '.txt': 'text/plain; charset=utf-8', '.md': 'text/markdown; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
};

export function startServer({ root, mounts = {}, port = 0, host = '127.0.0.1' }) {
  const roots = [...Object.entries(mounts).map(([p, d]) => [p.replace(/\/?$/, '/'), resolve(d)]), ['/', resolve(root)]];
  const log = [];
  const server = createServer((req, res) => {
    let path;
    let norange;
    try {
      const u = new URL(req.url, 'http://x');
      path = decodeURIComponent(u.pathname);
      norange = u.searchParams.has('norange');
    } catch { res.writeHead(400).end(); return; }
    const [prefix, dir] = roots.find(([p]) => path.startsWith(p));
    let file = resolve(join(dir, normalize(path.slice(prefix.length))));
    if (file !== dir && !file.startsWith(dir + sep)) { res.writeHead(403).end('forbidden'); return; }
    let st;
    try { st = statSync(file); if (st.isDirectory()) { file = join(file, 'index.html'); st = statSync(file); } } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found'); return;
    }
    const headers = {
      'content-type': TYPES[extname(file)] || 'application/octet-stream',
      'content-length': st.size,
      'accept-ranges': 'bytes',
      'cache-control': 'no-store',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
      'cross-origin-resource-policy': 'same-origin',
      'last-modified': st.mtime.toUTCString(),
      etag: `W/"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`,
    };
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range || '');
    const entry = { path, range: req.headers.range || null, status: 200, bytes: 0 };
    log.push(entry);
    if (req.headers.range && range && !norange) {
      let start = range[1] === '' ? Math.max(0, st.size - Number(range[2])) : Number(range[1]);
      let end = range[1] === '' || range[2] === '' ? st.size - 1 : Math.min(Number(range[2]), st.size - 1);
      if (!(start <= end && start < st.size)) {
        res.writeHead(416, { 'content-range': `bytes */${st.size}` }).end();
        return;
      }
      res.writeHead(206, { ...headers, 'content-length': end - start + 1, 'content-range': `bytes ${start}-${end}/${st.size}` });
      if (req.method === 'HEAD') { res.end(); return; }
      Object.assign(entry, { status: 206, bytes: end - start + 1 });
      createReadStream(file, { start, end }).pipe(res);
      return;
    }
    res.writeHead(200, headers);
    if (req.method === 'HEAD') { res.end(); return; }
    entry.bytes = st.size;
    createReadStream(file).pipe(res);
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => ok({ url: `http://${host}:${server.address().port}/`, close: () => new Promise((r) => server.close(r)), server, log }));
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  let port = 8080; let host = '127.0.0.1'; let root; const mounts = {};
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--port') port = Number(args[++i]);
    else if (args[i] === '--host') host = args[++i];
    else if (args[i].includes('=')) { const [p, d] = args[i].split('='); mounts[p] = d; }
    else root = args[i];
  }
  if (!root) { console.error('usage: serve.mjs [--port N] ROOT [/prefix=DIR ...]'); process.exit(2); }
  startServer({ root, mounts, port, host }).then(({ url }) => console.log(`serving ${resolve(root)} at ${url}`), (e) => {
    console.error(`error: cannot listen on ${host}:${port}: ${e.message}${e.code === 'EADDRINUSE' ? ' (the port is in use: try PORT=8081)' : ''}`);
    process.exit(1);
  });
}
