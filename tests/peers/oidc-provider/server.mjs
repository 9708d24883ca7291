// panva/node-oidc-provider (pinned in package.json) as an independent,
// OpenID-certified token endpoint for apptoken's OAuth 2.0 client credentials
// client. Loopback only, no outbound network, exits by itself.
//
//   node server.mjs [--keys DIR] [--ttl SECONDS] [--no-default-resource]
//                   [--lifetime SECONDS]
//
// Prints exactly one JSON line on stdout once it is listening (see README.md
// for its shape), then serves until stdin closes, SIGTERM/SIGINT/SIGHUP, or
// --lifetime elapses. Everything else (oidc-provider notices, request
// diagnostics) goes to stderr.

import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

// oidc-provider prints its NOTICEs with console.info (stdout); stdout is
// reserved for the single startup line.
console.info = console.error;
console.log = console.error;

const { values: args } = parseArgs({
  options: {
    keys: { type: 'string' },
    ttl: { type: 'string' },
    lifetime: { type: 'string' },
    'no-default-resource': { type: 'boolean', default: false },
  },
  strict: true,
});

const keysArg = args.keys ?? process.env.OIDC_PEER_KEYS;
const ownKeysDir = keysArg === undefined;
const keysDir = ownKeysDir
  ? mkdtempSync(join(tmpdir(), 'oidc-provider-peer-'))
  : resolve(keysArg);
mkdirSync(keysDir, { recursive: true });

const ttl = args.ttl === undefined ? 600 : Number.parseInt(args.ttl, 10);
if (!Number.isSafeInteger(ttl) || ttl <= 0) {
  throw new Error(`--ttl must be a positive integer, got ${args.ttl}`);
}

// The resource servers this provider knows. A client credentials request may
// name one of them with `resource=`; anything else is invalid_target.
const DEFAULT_RESOURCE = 'https://api.example.test';
const RESOURCE_SERVERS = {
  [DEFAULT_RESOURCE]: {
    scope: 'api:read api:write',
    audience: DEFAULT_RESOURCE,
    accessTokenFormat: 'jwt',
    jwt: { sign: { alg: 'RS256' } },
  },
  // Same scopes, opaque access token: for clients that must not assume JWTs.
  'https://opaque.example.test': {
    scope: 'api:read api:write',
    audience: 'https://opaque.example.test',
    accessTokenFormat: 'opaque',
  },
};

// Keys. Provider signing key (JWT access tokens), and one key pair per
// private_key_jwt client; the clients' private keys go to keysDir as PKCS#8.
function keyPair(type, options, kid, use) {
  const { privateKey, publicKey } = generateKeyPairSync(type, options);
  return {
    kid,
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }),
    privateJwk: { ...privateKey.export({ format: 'jwk' }), kid, use },
    publicJwk: { ...publicKey.export({ format: 'jwk' }), kid, use },
  };
}

const opKey = keyPair('rsa', { modulusLength: 2048 }, 'op-rs256', 'sig');
const rsaClientKey = keyPair('rsa', { modulusLength: 2048 }, 'jwt-rsa-1', 'sig');
const ecClientKey = keyPair('ec', { namedCurve: 'P-256' }, 'jwt-ec-1', 'sig');

const rsaPemPath = join(keysDir, 'jwt-rsa.pem');
const ecPemPath = join(keysDir, 'jwt-ec.pem');
writeFileSync(rsaPemPath, rsaClientKey.privatePem, { mode: 0o600 });
writeFileSync(ecPemPath, ecClientKey.privatePem, { mode: 0o600 });

const SCOPE = 'api:read api:write';
const common = {
  grant_types: ['client_credentials'],
  response_types: [],
  redirect_uris: [],
  scope: SCOPE,
};

const CLIENTS = [
  {
    ...common,
    client_id: 'secret-basic',
    client_secret: 'basic-secret-1234567890-abcdefghijklmnop',
    token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    ...common,
    client_id: 'secret-post',
    client_secret: 'post-secret-1234567890-abcdefghijklmnopq',
    token_endpoint_auth_method: 'client_secret_post',
  },
  {
    // A secret with characters that RFC 6749 section 2.3.1 requires to be
    // form-urlencoded inside the Basic credentials (':', '+', '/', ' ', '%').
    ...common,
    client_id: 'secret-basic-special',
    client_secret: 'p@ss:w+rd/ %&=~-1234567890-abcdefghijklmnop',
    token_endpoint_auth_method: 'client_secret_basic',
  },
  {
    ...common,
    client_id: 'jwt-rsa',
    token_endpoint_auth_method: 'private_key_jwt',
    // token_endpoint_auth_signing_alg left unset: any asymmetric alg in
    // enabledJWA.clientAuthSigningAlgValues that the key supports (RS256, PS256).
    jwks: { keys: [rsaClientKey.publicJwk] },
  },
  {
    ...common,
    client_id: 'jwt-ec',
    token_endpoint_auth_method: 'private_key_jwt',
    token_endpoint_auth_signing_alg: 'ES256',
    jwks: { keys: [ecClientKey.publicJwk] },
  },
];

const server = createServer();
await new Promise((ok, fail) => {
  server.once('error', fail);
  server.listen(0, '127.0.0.1', ok);
});
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

const provider = new Provider(issuer, {
  clients: CLIENTS,
  jwks: { keys: [opKey.privateJwk] },
  // Explicit so that discovery lists exactly what is configured.
  clientAuthMethods: ['client_secret_basic', 'client_secret_post', 'private_key_jwt'],
  enabledJWA: {
    clientAuthSigningAlgValues: ['RS256', 'PS256', 'ES256'],
  },
  scopes: ['openid', 'api:read', 'api:write'],
  features: {
    devInteractions: { enabled: false },
    introspection: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => {
        if (oneOf) return oneOf;
        return args['no-default-resource'] ? undefined : DEFAULT_RESOURCE;
      },
      getResourceServerInfo: async (_ctx, resourceIndicator) => {
        const info = RESOURCE_SERVERS[resourceIndicator];
        if (!info) throw new errors.InvalidTarget();
        return { ...info, accessTokenTTL: ttl };
      },
    },
  },
  ttl: {
    ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL || ttl,
  },
  // Keys are generated per run; no cookies are used by client credentials,
  // but oidc-provider wants keys to avoid its development default.
  cookies: { keys: [randomUUID()] },
  // No outbound network. Nothing configured here needs it (no jwks_uri,
  // sector_identifier_uri, request_uri, ...); this hook runs before every
  // outgoing request oidc-provider 8.x makes, so any attempt fails loudly.
  httpOptions(url) {
    throw new Error(`oidc-provider peer: outbound request refused (${url.href})`);
  },
});

// Why a request failed, for the test's log (the response carries only a
// generic error_description; the detail is in error_detail).
for (const event of ['grant.error', 'introspection.error', 'server_error', 'discovery.error']) {
  provider.on(event, (_ctx, err) => {
    console.error(`oidc-provider peer: ${event}: ${err.error ?? err.name}: ${err.error_description ?? err.message}${err.error_detail ? ` (${err.error_detail})` : ''}`);
  });
}
provider.on('grant.success', (ctx) => {
  console.error(`oidc-provider peer: grant.success client_id=${ctx.oidc.client?.clientId}`);
});

server.on('request', provider.callback());

let stopping = false;
function stop(why, code = 0) {
  if (stopping) return;
  stopping = true;
  console.error(`oidc-provider peer: stopping (${why})`);
  if (ownKeysDir) rmSync(keysDir, { recursive: true, force: true });
  server.close();
  server.closeAllConnections?.();
  process.exit(code);
}

for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(signal, () => stop(signal));
}
// The parent dropping its end of our stdin (or dying) stops us.
process.stdin.on('end', () => stop('stdin closed'));
process.stdin.on('close', () => stop('stdin closed'));
process.stdin.on('error', () => stop('stdin error'));
process.stdin.resume();
process.stdout.on('error', () => stop('stdout closed'));

if (args.lifetime !== undefined) {
  const seconds = Number.parseInt(args.lifetime, 10);
  if (!Number.isSafeInteger(seconds) || seconds <= 0) {
    throw new Error(`--lifetime must be a positive integer, got ${args.lifetime}`);
  }
  setTimeout(() => stop('lifetime elapsed'), seconds * 1000).unref();
}

const secretOf = (id) => CLIENTS.find((c) => c.client_id === id).client_secret;
const startup = {
  issuer,
  token_endpoint: `${issuer}/token`,
  jwks_uri: `${issuer}/jwks`,
  discovery: `${issuer}/.well-known/openid-configuration`,
  introspection_endpoint: `${issuer}/token/introspection`,
  pid: process.pid,
  default_resource: args['no-default-resource'] ? null : DEFAULT_RESOURCE,
  resources: Object.keys(RESOURCE_SERVERS),
  scope: SCOPE,
  access_token_ttl: ttl,
  keys_dir: keysDir,
  clients: {
    'secret-basic': {
      client_id: 'secret-basic',
      token_endpoint_auth_method: 'client_secret_basic',
      client_secret: secretOf('secret-basic'),
    },
    'secret-post': {
      client_id: 'secret-post',
      token_endpoint_auth_method: 'client_secret_post',
      client_secret: secretOf('secret-post'),
    },
    'secret-basic-special': {
      client_id: 'secret-basic-special',
      token_endpoint_auth_method: 'client_secret_basic',
      client_secret: secretOf('secret-basic-special'),
    },
    'jwt-rsa': {
      client_id: 'jwt-rsa',
      token_endpoint_auth_method: 'private_key_jwt',
      private_key_pem: rsaPemPath,
      kid: rsaClientKey.kid,
      algs: ['RS256', 'PS256'],
    },
    'jwt-ec': {
      client_id: 'jwt-ec',
      token_endpoint_auth_method: 'private_key_jwt',
      private_key_pem: ecPemPath,
      kid: ecClientKey.kid,
      algs: ['ES256'],
    },
  },
};
process.stdout.write(`${JSON.stringify(startup)}\n`);
