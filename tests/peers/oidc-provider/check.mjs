// Documents what the pinned oidc-provider really does at its token endpoint,
// for the author of apptoken's client credentials client. Starts server.mjs
// (twice: with and without a default resource), talks to it with curl, signs
// client assertions with node:crypto, prints every answer.
//
//   node check.mjs            # human-readable report on stdout
//   node check.mjs --json     # the same observations as one JSON document
//
// Loopback only; both servers are stopped before it exits (one by closing its
// stdin, one by SIGTERM, and how long each took is reported too).

import { spawn, execFile } from 'node:child_process';
import {
  constants, createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign, verify,
} from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

const here = dirname(fileURLToPath(import.meta.url));
const asJson = process.argv.includes('--json');
const observations = [];

function out(line = '') {
  if (!asJson) process.stdout.write(`${line}\n`);
}

// ---- servers ---------------------------------------------------------------

async function startServer(extraArgs, keysDir) {
  const child = spawn(process.execPath, [join(here, 'server.mjs'), '--keys', keysDir, '--lifetime', '120', ...extraArgs], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((ok) => child.on('exit', (code, signal) => ok({ code, signal })));
  const rl = createInterface({ input: child.stdout });
  const line = await new Promise((ok, fail) => {
    rl.once('line', ok);
    child.once('exit', () => fail(new Error(`server exited before its startup line:\n${stderr}`)));
  });
  let extraStdout = '';
  rl.on('line', (l) => { extraStdout += `${l}\n`; });
  return {
    child, info: JSON.parse(line), line, exited, stderr: () => stderr, extraStdout: () => extraStdout,
  };
}

// ---- HTTP with curl --------------------------------------------------------

function curl(args) {
  return new Promise((ok, fail) => {
    execFile('curl', ['-sS', '-i', '--noproxy', '*', '--max-time', '10', ...args], { maxBuffer: 1 << 20 }, (err, stdout) => {
      if (err) { fail(err); return; }
      // -i: status line + headers, blank line, body (last response only).
      const split = stdout.indexOf('\r\n\r\n');
      const head = stdout.slice(0, split).split('\r\n');
      const body = stdout.slice(split + 4);
      const status = Number(head[0].split(' ')[1]);
      const headers = {};
      for (const h of head.slice(1)) {
        const i = h.indexOf(':');
        headers[h.slice(0, i).toLowerCase()] = h.slice(i + 1).trim();
      }
      let json;
      try { json = JSON.parse(body); } catch { /* not JSON */ }
      ok({ status, headers, body, json });
    });
  });
}

function form(fields) {
  return Object.entries(fields).filter(([, v]) => v !== undefined).flatMap(([k, v]) => ['--data-urlencode', `${k}=${v}`]);
}

// RFC 6749 section 2.3.1: client_id and client_secret are each
// application/x-www-form-urlencoded, then joined with ':' and base64-encoded.
function formUrlEncode(s) {
  return encodeURIComponent(s).replace(/%20/g, '+').replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
function basic(id, secret, { encode = true } = {}) {
  const pair = encode ? `${formUrlEncode(id)}:${formUrlEncode(secret)}` : `${id}:${secret}`;
  return ['-H', `Authorization: Basic ${Buffer.from(pair).toString('base64')}`];
}

// ---- JWTs with node:crypto -------------------------------------------------

const b64u = (b) => Buffer.from(b).toString('base64url');

function signJwt(header, payload, pem) {
  const key = createPrivateKey(pem);
  const input = `${b64u(JSON.stringify(header))}.${b64u(JSON.stringify(payload))}`;
  let sig;
  switch (header.alg) {
    case 'RS256': sig = sign('sha256', Buffer.from(input), key); break;
    case 'PS256': sig = sign('sha256', Buffer.from(input), { key, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }); break;
    case 'ES256': sig = sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }); break;
    default: throw new Error(`alg ${header.alg}`);
  }
  return `${input}.${b64u(sig)}`;
}

function assertion(client, info, {
  alg, aud = info.token_endpoint, kid = client.kid, jti = randomUUID(), omit = [], exp, pem,
} = {}) {
  const now = Math.floor(Date.now() / 1000);
  const payload = {
    iss: client.client_id, sub: client.client_id, aud, jti, iat: now, exp: exp ?? now + 60,
  };
  for (const k of omit) delete payload[k];
  const header = { alg, typ: 'JWT', ...(kid ? { kid } : {}) };
  return { jwt: signJwt(header, payload, pem ?? readFileSync(client.private_key_pem)), payload };
}

function jwtParts(token) {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    return {
      header: JSON.parse(Buffer.from(parts[0], 'base64url')),
      payload: JSON.parse(Buffer.from(parts[1], 'base64url')),
    };
  } catch { return undefined; }
}

let opJwks;
function verifyAccessToken(token) {
  const [h, p, s] = token.split('.');
  const { header } = jwtParts(token);
  const jwk = opJwks.keys.find((k) => k.kid === header.kid);
  if (!jwk || header.alg !== 'RS256') return false;
  return verify('sha256', Buffer.from(`${h}.${p}`), createPublicKey({ key: jwk, format: 'jwk' }), Buffer.from(s, 'base64url'));
}

// ---- reporting -------------------------------------------------------------

// The server logs why a request failed (error_detail, which the response does
// not carry) on its stderr; each case shows the lines that appeared with it.
let current;
let seen = 0;
function serverLog() {
  const all = current.stderr();
  const fresh = all.slice(seen);
  seen = all.length;
  return fresh.split('\n').filter((l) => l.startsWith('oidc-provider peer: grant.error') || l.startsWith('oidc-provider peer: introspection.error'))
    .map((l) => l.replace('oidc-provider peer: ', ''));
}

async function describe(name, request, res) {
  await new Promise((ok) => { setTimeout(ok, 20); });
  const o = { case: name, request, status: res.status };
  const log = serverLog();
  if (log.length) o.server_log = log.length === 1 ? log[0] : log;
  for (const h of ['content-type', 'cache-control', 'pragma', 'www-authenticate']) {
    if (res.headers[h] !== undefined) o[h] = res.headers[h];
  }
  const j = res.json;
  if (j && j.access_token) {
    o.token_type = j.token_type;
    o.expires_in = j.expires_in;
    o.scope = Object.hasOwn(j, 'scope') ? j.scope : '(absent)';
    o.response_members = Object.keys(j);
    const parts = jwtParts(j.access_token);
    if (parts) {
      o.access_token = 'JWT';
      o.jwt_header = parts.header;
      o.jwt_claims = parts.payload;
      o.jwt_signature_valid_against_jwks_uri = verifyAccessToken(j.access_token);
    } else {
      o.access_token = `opaque (${j.access_token.length} chars)`;
    }
  } else {
    o.body = j ?? res.body;
  }
  observations.push(o);
  out(`## ${name}`);
  out(`   request: ${request}`);
  const { case: _c, request: _r, ...rest } = o;
  for (const [k, v] of Object.entries(rest)) out(`   ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  out();
  return res;
}

// ---- the checks --------------------------------------------------------------

const keysDir = mkdtempSync(join(tmpdir(), 'oidc-provider-check-'));
const main = await startServer([], join(keysDir, 'main'));
const { info } = main;
current = main;
const T = info.token_endpoint;
const C = info.clients;
const cc = { grant_type: 'client_credentials' };
const R = 'https://api.example.test';

out('# oidc-provider peer: observed behaviour');
out();
out(`startup line: ${main.line}`);
out();

try {
  const disco = await curl([info.discovery]);
  opJwks = (await curl([info.jwks_uri])).json;
  const d = disco.json;
  const discoObs = {
    case: 'discovery',
    status: disco.status,
    issuer: d.issuer,
    token_endpoint: d.token_endpoint,
    token_endpoint_auth_methods_supported: d.token_endpoint_auth_methods_supported,
    token_endpoint_auth_signing_alg_values_supported: d.token_endpoint_auth_signing_alg_values_supported,
    grant_types_supported: d.grant_types_supported,
    scopes_supported: d.scopes_supported,
    jwks_keys: opJwks.keys.map((k) => ({ kty: k.kty, kid: k.kid, use: k.use, alg: k.alg })),
  };
  observations.push(discoObs);
  out('## discovery (/.well-known/openid-configuration) and jwks_uri');
  for (const [k, v] of Object.entries(discoObs)) if (k !== 'case') out(`   ${k}: ${JSON.stringify(v)}`);
  out();

  // client_secret_basic
  const sb = C['secret-basic'];
  await describe('secret-basic, Basic auth, resource=api', 'Basic secret-basic:… + grant_type, resource', await curl([...basic(sb.client_id, sb.client_secret), ...form({ ...cc, resource: R }), T]));
  await describe('secret-basic, Basic auth, no resource (default resource applies)', 'Basic + grant_type only', await curl([...basic(sb.client_id, sb.client_secret), ...form(cc), T]));
  await describe('secret-basic, scope=api:read', 'Basic + scope=api:read, resource', await curl([...basic(sb.client_id, sb.client_secret), ...form({ ...cc, resource: R, scope: 'api:read' }), T]));
  await describe('secret-basic, scope="api:read api:write"', 'Basic + both scopes', await curl([...basic(sb.client_id, sb.client_secret), ...form({ ...cc, resource: R, scope: 'api:read api:write' }), T]));
  await describe('secret-basic, scope="api:read api:admin" (api:admin unknown)', 'Basic + unknown scope', await curl([...basic(sb.client_id, sb.client_secret), ...form({ ...cc, resource: R, scope: 'api:read api:admin' }), T]));
  await describe('secret-basic, scope=openid (not a resource-server scope)', 'Basic + scope=openid', await curl([...basic(sb.client_id, sb.client_secret), ...form({ ...cc, resource: R, scope: 'openid' }), T]));
  await describe('secret-basic, resource=opaque.example.test', 'Basic + resource with accessTokenFormat opaque', await curl([...basic(sb.client_id, sb.client_secret), ...form({ ...cc, resource: 'https://opaque.example.test', scope: 'api:read' }), T]));
  await describe('secret-basic, unknown resource', 'Basic + resource=https://unknown.example.test', await curl([...basic(sb.client_id, sb.client_secret), ...form({ ...cc, resource: 'https://unknown.example.test' }), T]));
  await describe('secret-basic, two resources', 'Basic + resource twice', await curl([...basic(sb.client_id, sb.client_secret), ...form(cc), '--data-urlencode', `resource=${R}`, '--data-urlencode', 'resource=https://opaque.example.test', T]));
  await describe('secret-basic, wrong secret (Basic)', 'Basic secret-basic:wrong…', await curl([...basic(sb.client_id, 'wrong-secret-1234567890-abcdefghijklmnop'), ...form({ ...cc, resource: R }), T]));
  await describe('secret-basic, unknown client_id (Basic)', 'Basic nobody:…', await curl([...basic('nobody', sb.client_secret), ...form({ ...cc, resource: R }), T]));
  await describe('secret-basic client sending its secret in the body (client_secret_post)', 'client_id+client_secret in the form', await curl([...form({ ...cc, resource: R, client_id: sb.client_id, client_secret: sb.client_secret }), T]));
  await describe('secret-basic, Basic and client_secret in the body', 'two mechanisms', await curl([...basic(sb.client_id, sb.client_secret), ...form({ ...cc, resource: R, client_secret: sb.client_secret }), T]));
  await describe('secret-basic, grant_type missing', 'Basic, no grant_type', await curl([...basic(sb.client_id, sb.client_secret), ...form({ resource: R }), T]));
  await describe('secret-basic, grant_type=password (not allowed)', 'Basic + grant_type=password', await curl([...basic(sb.client_id, sb.client_secret), ...form({ grant_type: 'password', username: 'u', password: 'p' }), T]));
  await describe('secret-basic, JSON body instead of a form', 'Content-Type: application/json', await curl([...basic(sb.client_id, sb.client_secret), '-H', 'Content-Type: application/json', '--data', JSON.stringify({ ...cc, resource: R }), T]));
  await describe('GET on the token endpoint', 'GET /token', await curl([T]));

  // RFC 6749 section 2.3.1 encoding with a secret that needs it
  const ss = C['secret-basic-special'];
  await describe('secret-basic-special, Basic with form-urlencoded id:secret (RFC 6749 2.3.1)', `secret ${JSON.stringify(ss.client_secret)} form-urlencoded`, await curl([...basic(ss.client_id, ss.client_secret), ...form({ ...cc, resource: R }), T]));
  await describe('secret-basic-special, Basic with the raw (not urlencoded) secret', 'raw id:secret in Basic', await curl([...basic(ss.client_id, ss.client_secret, { encode: false }), ...form({ ...cc, resource: R }), T]));
  await describe('secret-basic-special, Basic with percent-encoding but %20 for space', 'encodeURIComponent (space as %20)', await curl(['-H', `Authorization: Basic ${Buffer.from(`${encodeURIComponent(ss.client_id)}:${encodeURIComponent(ss.client_secret)}`).toString('base64')}`, ...form({ ...cc, resource: R }), T]));

  // client_secret_post
  const sp = C['secret-post'];
  await describe('secret-post, resource=api', 'client_id+client_secret in the form, resource', await curl([...form({ ...cc, resource: R, client_id: sp.client_id, client_secret: sp.client_secret }), T]));
  await describe('secret-post, no resource', 'client_id+client_secret in the form', await curl([...form({ ...cc, client_id: sp.client_id, client_secret: sp.client_secret }), T]));
  await describe('secret-post, wrong secret', 'client_secret=wrong…', await curl([...form({ ...cc, resource: R, client_id: sp.client_id, client_secret: 'wrong-secret-1234567890-abcdefghijklmnop' }), T]));
  await describe('secret-post client using Basic (client_secret_basic)', 'Basic secret-post:…', await curl([...basic(sp.client_id, sp.client_secret), ...form({ ...cc, resource: R }), T]));

  // private_key_jwt
  const jr = C['jwt-rsa'];
  const je = C['jwt-ec'];
  const jwtForm = (a, extra = {}) => form({ ...cc, client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer', client_assertion: a, ...extra });

  await describe('jwt-rsa RS256, aud=token_endpoint, resource=api', 'client_assertion RS256', await curl([...jwtForm(assertion(jr, info, { alg: 'RS256' }).jwt, { resource: R }), T]));
  await describe('jwt-rsa PS256, aud=token_endpoint, resource=api', 'client_assertion PS256', await curl([...jwtForm(assertion(jr, info, { alg: 'PS256' }).jwt, { resource: R }), T]));
  await describe('jwt-rsa RS256, no resource', 'client_assertion RS256, no resource', await curl([...jwtForm(assertion(jr, info, { alg: 'RS256' }).jwt), T]));
  await describe('jwt-rsa RS256 with client_id also in the form', 'client_id + client_assertion', await curl([...jwtForm(assertion(jr, info, { alg: 'RS256' }).jwt, { resource: R, client_id: jr.client_id }), T]));
  await describe('jwt-rsa RS256, aud=issuer', `aud=${info.issuer}`, await curl([...jwtForm(assertion(jr, info, { alg: 'RS256', aud: info.issuer }).jwt, { resource: R }), T]));
  await describe('jwt-rsa RS256, aud=[token_endpoint, other]', 'aud array', await curl([...jwtForm(assertion(jr, info, { alg: 'RS256', aud: [T, 'https://other.example.test'] }).jwt, { resource: R }), T]));
  await describe('jwt-rsa RS256, aud=issuer with trailing slash', `aud=${info.issuer}/`, await curl([...jwtForm(assertion(jr, info, { alg: 'RS256', aud: `${info.issuer}/` }).jwt, { resource: R }), T]));
  await describe('jwt-rsa RS256, aud=https://other.example.test', 'wrong aud', await curl([...jwtForm(assertion(jr, info, { alg: 'RS256', aud: 'https://other.example.test' }).jwt, { resource: R }), T]));
  await describe('jwt-rsa RS256 without kid header', 'no kid', await curl([...jwtForm(assertion(jr, info, { alg: 'RS256', kid: null }).jwt, { resource: R }), T]));
  await describe('jwt-rsa RS256 with an unknown kid', 'kid=nope', await curl([...jwtForm(assertion(jr, info, { alg: 'RS256', kid: 'nope' }).jwt, { resource: R }), T]));
  await describe('jwt-rsa RS256 without jti', 'no jti', await curl([...jwtForm(assertion(jr, info, { alg: 'RS256', omit: ['jti'] }).jwt, { resource: R }), T]));
  await describe('jwt-rsa RS256 without iat', 'no iat', await curl([...jwtForm(assertion(jr, info, { alg: 'RS256', omit: ['iat'] }).jwt, { resource: R }), T]));
  await describe('jwt-rsa RS256 expired (exp = now - 120)', 'exp in the past', await curl([...jwtForm(assertion(jr, info, { alg: 'RS256', exp: Math.floor(Date.now() / 1000) - 120 }).jwt, { resource: R }), T]));
  await describe('jwt-rsa RS256 exp a day ahead', 'exp = now + 86400', await curl([...jwtForm(assertion(jr, info, { alg: 'RS256', exp: Math.floor(Date.now() / 1000) + 86400 }).jwt, { resource: R }), T]));
  await describe('jwt-rsa signed with the EC key (ES256)', 'alg not matching the registered key', await curl([...jwtForm(assertion({ ...jr, private_key_pem: je.private_key_pem }, info, { alg: 'ES256' }).jwt, { resource: R }), T]));
  await describe('jwt-rsa signed with the wrong RSA key', 'signature by another key', await curl([...jwtForm(assertion(jr, info, { alg: 'RS256', pem: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) }).jwt, { resource: R }), T]));

  const reused = assertion(jr, info, { alg: 'RS256' }).jwt;
  await describe('jwt-rsa RS256, jti first use', 'fresh assertion', await curl([...jwtForm(reused, { resource: R }), T]));
  await describe('jwt-rsa RS256, same assertion again (jti replay)', 'identical assertion resent', await curl([...jwtForm(reused, { resource: R }), T]));
  const jti = randomUUID();
  await describe('jwt-rsa RS256, new assertion reusing an old jti', 'same jti, new iat/exp/signature', await curl([...jwtForm(assertion(jr, info, { alg: 'RS256', jti }).jwt, { resource: R }), T]));
  await new Promise((ok) => { setTimeout(ok, 1100); });
  await describe('jwt-rsa RS256, second assertion with that jti', 'same jti, later', await curl([...jwtForm(assertion(jr, info, { alg: 'RS256', jti }).jwt, { resource: R }), T]));

  const jti2 = randomUUID();
  await describe('jwt-rsa RS256, wrong aud, jti J', 'rejected before the replay check', await curl([...jwtForm(assertion(jr, info, { alg: 'RS256', aud: 'https://other.example.test', jti: jti2 }).jwt, { resource: R }), T]));
  await describe('jwt-rsa RS256, good aud, same jti J', 'is J spent by the rejected assertion?', await curl([...jwtForm(assertion(jr, info, { alg: 'RS256', jti: jti2 }).jwt, { resource: R }), T]));
  const spent = assertion(jr, info, { alg: 'RS256' }).jwt;
  await describe('jwt-rsa RS256, valid assertion but unknown resource', 'the grant fails after client authentication', await curl([...jwtForm(spent, { resource: 'https://unknown.example.test' }), T]));
  await describe('jwt-rsa RS256, that same assertion retried with a good resource', 'retry after a grant error', await curl([...jwtForm(spent, { resource: R }), T]));

  await describe('jwt-ec ES256, aud=token_endpoint, resource=api', 'client_assertion ES256', await curl([...jwtForm(assertion(je, info, { alg: 'ES256' }).jwt, { resource: R }), T]));
  await describe('jwt-ec ES256, no resource', 'client_assertion ES256, no resource', await curl([...jwtForm(assertion(je, info, { alg: 'ES256' }).jwt), T]));
  await describe('jwt-ec signed with the RSA key (RS256; client registered ES256 only)', 'alg other than token_endpoint_auth_signing_alg', await curl([...jwtForm(assertion({ ...je, private_key_pem: jr.private_key_pem }, info, { alg: 'RS256' }).jwt, { resource: R }), T]));
  await describe('jwt-ec ES256 with a DER (not JOSE) signature', 'dsaEncoding der', await curl([...jwtForm((() => {
    const now = Math.floor(Date.now() / 1000);
    const input = `${b64u(JSON.stringify({ alg: 'ES256', typ: 'JWT' }))}.${b64u(JSON.stringify({ iss: je.client_id, sub: je.client_id, aud: T, jti: randomUUID(), iat: now, exp: now + 60 }))}`;
    return `${input}.${b64u(sign('sha256', Buffer.from(input), createPrivateKey(readFileSync(je.private_key_pem))))}`;
  })(), { resource: R }), T]));

  // A client whose assertion names another client (sub/iss mismatch)
  await describe('jwt-ec, client_id=jwt-rsa in the form but assertion from jwt-ec', 'client_id mismatch', await curl([...jwtForm(assertion(je, info, { alg: 'ES256' }).jwt, { resource: R, client_id: jr.client_id }), T]));

  // introspection of the opaque token, authenticated as the same client
  const opaque = (await curl([...basic(sb.client_id, sb.client_secret), ...form({ ...cc, resource: 'https://opaque.example.test', scope: 'api:read' }), T])).json.access_token;
  await describe('introspection of an opaque token (resource server = secret-basic)', 'POST /token/introspection', await curl([...basic(sb.client_id, sb.client_secret), ...form({ token: opaque }), info.introspection_endpoint]));
} finally {
  // stdin close stops the main server
  const t0 = Date.now();
  main.child.stdin.end();
  const r = await main.exited;
  const o = { case: 'main server: stdin closed', exit: r, ms: Date.now() - t0, extra_stdout_lines: main.extraStdout() ? main.extraStdout().trim().split('\n') : [] };
  observations.push(o);
  out(`## ${o.case}`);
  out(`   exit: ${JSON.stringify(r)} after ${o.ms} ms; stdout after the startup line: ${JSON.stringify(o.extra_stdout_lines)}`);
  out();
}

// Without a default resource
const bare = await startServer(['--no-default-resource'], join(keysDir, 'bare'));
try {
  current = bare;
  seen = 0;
  const T2 = bare.info.token_endpoint;
  const sb = bare.info.clients['secret-basic'];
  opJwks = (await curl([bare.info.jwks_uri])).json;
  out(`(second server, --no-default-resource: ${bare.info.issuer})`);
  out();
  await describe('--no-default-resource: secret-basic, no resource, no scope', 'Basic + grant_type', await curl([...basic(sb.client_id, sb.client_secret), ...form(cc), T2]));
  await describe('--no-default-resource: secret-basic, no resource, scope=api:read', 'Basic + scope=api:read', await curl([...basic(sb.client_id, sb.client_secret), ...form({ ...cc, scope: 'api:read' }), T2]));
  await describe('--no-default-resource: secret-basic, resource=api', 'Basic + resource', await curl([...basic(sb.client_id, sb.client_secret), ...form({ ...cc, resource: R, scope: 'api:read' }), T2]));
} finally {
  const t0 = Date.now();
  bare.child.kill('SIGTERM');
  const r = await bare.exited;
  const o = { case: 'second server: SIGTERM', exit: r, ms: Date.now() - t0 };
  observations.push(o);
  out(`## ${o.case}`);
  out(`   exit: ${JSON.stringify(r)} after ${o.ms} ms`);
  out();
  rmSync(keysDir, { recursive: true, force: true });
}

if (asJson) process.stdout.write(`${JSON.stringify({ startup_line_example: JSON.parse(main.line), observations }, null, 2)}\n`);
