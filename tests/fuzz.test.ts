// Fuzzing from the gateway's own API description: every operation in /openapi.json, called by every kind of caller
// (no key, administrator, marketer, merchant, a member's app token, a box's signature) with hostile values in its
// body, query string and path: wrong types, huge and non-finite numbers, control characters, odd unicode,
// prototype keys. Nothing may answer 5xx, and nothing may be logged at error level. Deterministic (a seeded
// generator) and bounded (REQUESTS per backend).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadPrivateKey, signRequest } from '../beacon-agent/signing.js';
import { signAppReport, HEADER_APP_SIGNATURE, HEADER_APP_TIMESTAMP } from '../beacon-agent/app-report.js';
import { newCouponCode } from '../gateway/domain/coupons.js';
import { issueApiKey } from '../gateway/domain/api-keys.js';
import { backends, isolatedConfig, type Isolated } from './support/backends.js';
import { grantConsents } from './support/consent.js';
import { seedCoupons } from './support/seed-coupons.js';
import { startGateway, type TestGateway } from './support/gateway.js';
import type { KeyObject } from 'node:crypto';

const SEED = 13;
/** Requests per backend, at most. */
const REQUESTS = 2_400;
const CALLERS = ['none', 'administrator', 'marketer', 'merchant', 'member', 'signed'] as const;
type Caller = (typeof CALLERS)[number];

/** mulberry32: a small seeded generator, so that a failure can be run again exactly. */
function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]! };
}

/** A path part as sent; a lone surrogate, which cannot be encoded, goes as the bytes of one (invalid UTF-8). */
const encodePathPart = (s: string) => {
  try {
    return encodeURIComponent(s);
  } catch {
    return '%ED%A0%80';
  }
};

/** Raw JSON for the values JSON.stringify cannot write. */
const RAW = { inf: '"\u0001INF"', ninf: '"\u0001NINF"' };
const HOSTILE_STRINGS = [
  '', ' ', '\u0000', 'a\u0000b', '\u001b[2J', '\u007f', 'line\nbreak', 'tab\there', '\r\n', '\ud800', '\udfff\ud800', '😀'.repeat(40),
  '\u202eevil', 'ǅǈǋ', 'ｆｕｌｌ', 'Ω≈ç√∫', '\ufeff', '\u0085', '__proto__', 'constructor', 'prototype', "' OR 1=1 --", '%00', '../../etc/passwd',
  '1e999', 'Infinity', '-Infinity', 'NaN', '-0', '9'.repeat(400), 'null', 'true', '[]', '{}', 'x'.repeat(5_000), 'COUPON:', '00000000-0000-0000-0000-000000000000',
  '2026-02-30T25:61:00Z', '0000-01-01T00:00:00Z', '+99999-01-01T00:00:00Z', '9999-12-31', 'Etc/GMT+99', '+1', '+1415555000000000000',
];
const CONTROLS = ['\u0000', '\u0001', '\u001b', '\u007f', '\n', '\t', '\r'];
const HOSTILE_NUMBERS = [0, -0, -1, 1.5, 1e308, -1e308, 2 ** 53 + 1, 5e-324, 65536, -2_147_483_649, 2_147_483_648];
const HOSTILE_TYPES: unknown[] = [null, true, false, [], {}, [[]], [null], { a: 1 }, RAW.inf, RAW.ninf, ...HOSTILE_NUMBERS, 'x'];

interface Schema {
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  const?: unknown;
  enum?: unknown[];
  format?: string;
  minimum?: number;
  exclusiveMinimum?: number;
  minItems?: number;
  pattern?: string;
}

/** Which of the run's objects an id field names, by the field's name. */
const ID_FIELDS: Record<string, string> = {
  storeId: 'store', memberId: 'member', merchantId: 'brand', campaignId: 'campaign', agentId: 'agent', redemptionId: 'redemption',
  storeIds: 'store', geofenceIds: 'store', zoneIds: 'store', zoneId: 'store', tillId: 'store', signupId: 'member', homeStoreId: 'store',
};
/** Values that a field's pattern or meaning asks for, so that the rest of a body is valid and the broken part reaches deep. */
const PATTERNS: Record<string, string> = {
  '^\\d{2}:\\d{2}$': '09:00', '^[0-9]{6}$': '123456', '^[A-Za-z0-9-]+$': 'event-0001', '^[0-9a-f]{16}$': '0123456789abcdef', '^[1-9]': '2026-06-01',
  '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$': 'f7826da6-4fa2-4e98-8024-bc5b71e0893e',
};
const TEXT_FIELDS: Record<string, string> = { phone: '+14155550199', from: '+14155550199', timeZone: 'UTC', message: 'Deal {code}', endpoint: 'https://push.example.com/x' };

interface Operation {
  method: string;
  path: string;
  query: Array<{ name: string; schema: Schema }>;
  body?: Schema;
  /** Who the description says may call it. */
  roles: string[];
  signed: boolean;
}

describe.each(backends)('fuzzing every operation on the %s backends', (backend) => {
  let iso: Isolated;
  let gw: TestGateway;
  const logged: string[] = [];
  const ids: Record<string, string> = {};
  const keys = {} as Record<Exclude<Caller, 'none' | 'signed'>, string>;
  let agent: { id: string; key: KeyObject };
  let identityKey: Buffer;
  const ok = async (method: 'POST' | 'GET', url: string, payload?: object) => {
    const res = await gw.app.inject({ method, url, ...(payload ? { payload } : {}) });
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`);
    return res.json();
  };

  beforeAll(async () => {
    iso = isolatedConfig(backend, { LOG_LEVEL: 'error' });
    gw = await startGateway(iso.config, { logStream: { write: (line) => void logged.push(line) } });
    const brand = (await ok('POST', '/merchants', { kind: 'brand', name: 'Fuzz brand' })).id;
    const store = await ok('POST', '/stores', { merchantId: brand, name: 'Fuzz St', timeZone: 'UTC', location: { lat: 10, lon: 10 }, geofence: { radiusM: 100 } });
    const campaign = (await ok('POST', '/campaigns', { name: 'Fuzz', storeId: store.id, trigger: { kind: 'checkin' }, offer: { title: 't', message: 'm {code}' } })).id;
    const member = await ok('POST', '/members', { phone: '+14155550190', timeZone: 'UTC' });
    await grantConsents(gw, member.id, member.phone, ['location', 'sms_marketing', 'ble_detection']);
    const victim = (await ok('POST', '/members', { timeZone: 'UTC' })).id;
    const [code] = [newCouponCode()];
    await seedCoupons(gw.deps.db, campaign, [code!]);
    const redemption = (await ok('POST', '/redemptions', { code, storeId: store.id })).id;
    const partner = (await ok('POST', '/merchants', { kind: 'partner', name: 'Fuzz partner' })).id;
    await ok('POST', '/stores', { merchantId: partner, name: 'Partner shop', timeZone: 'UTC', location: { lat: 11, lon: 10 } });
    const offer = (await ok('POST', '/alliance-offers', { merchantId: partner, title: 't', message: 'm {code}', faceValue: 1, validFrom: '2026-01-01T00:00:00Z', validTo: '2099-01-01T00:00:00Z' })).id;
    const reg = await ok('POST', '/agents', { storeId: store.id, name: 'box' });
    const spareAgent = (await ok('POST', '/agents', { storeId: store.id, name: 'spare' })).agent.id;
    const spareKey = (await issueApiKey(gw.deps.db, { role: 'merchant', name: 'spare', merchantId: brand })).apiKey.id;
    const key = async (role: 'marketer' | 'merchant' | 'member', scope: object) => (await issueApiKey(gw.deps.db, { role, name: `fuzz ${role}`, ...scope })).key;
    Object.assign(keys, { administrator: gw.adminKey, marketer: await key('marketer', { merchantId: brand }), merchant: await key('merchant', { merchantId: brand }), member: member.appToken });
    agent = { id: reg.agent.id, key: loadPrivateKey(reg.privateKey) };
    const identity = await gw.app.inject({ method: 'GET', url: `/members/${member.id}/ble-identity`, headers: { authorization: `Bearer ${member.appToken}` } });
    identityKey = Buffer.from(identity.json().identityKey, 'base64');
    Object.assign(ids, {
      brand, store: store.id, campaign, member: member.id, victim, redemption, partner, offer, agent: reg.agent.id, spareAgent, spareKey,
      delivery: (await gw.deps.db.query<{ id: string }>('SELECT id FROM deliveries LIMIT 1'))[0]?.id ?? '00000000-0000-4000-8000-000000000001',
    });
  }, 120_000);
  afterAll(async () => {
    await gw?.close();
    await iso?.cleanup();
  });

  /** A real object's id for a path's parameter, so that a request gets past "not found" to its body and query. */
  const idFor = (path: string, param: string): string => {
    if (param === 'subscriptionId') return '00000000-0000-4000-8000-000000000002';
    if (path.endsWith('/erase')) return ids.victim!;
    if (path.startsWith('/api-keys/')) return ids.spareKey!;
    if (path.startsWith('/agents/')) return path.endsWith('/revoke') || path.endsWith('/rotate') ? ids.spareAgent! : ids.agent!;
    const first = path.split('/')[1]!;
    const byCollection: Record<string, string> = {
      stores: ids.store!, campaigns: ids.campaign!, members: ids.member!, merchants: ids.brand!, redemptions: ids.redemption!,
      'alliance-offers': ids.offer!, deliveries: ids.delivery!, geofences: '00000000-0000-4000-8000-000000000003',
    };
    return byCollection[first] ?? '00000000-0000-4000-8000-000000000004';
  };

  /** A plausible value for a schema: the fuzz then breaks one part of it. */
  function sample(s: Schema | undefined, r: ReturnType<typeof prng>, depth = 0, name = ''): unknown {
    if (!s || depth > 6) return 'x';
    if (s.const !== undefined) return s.const;
    if (s.enum) return r.pick(s.enum);
    const alt = s.anyOf ?? s.oneOf;
    if (alt) return sample(r.pick(alt.filter((x) => x.type !== 'null')) ?? alt[0], r, depth + 1, name);
    const type = Array.isArray(s.type) ? s.type.find((t) => t !== 'null') : s.type;
    switch (type) {
      case 'object': {
        const out: Record<string, unknown> = {};
        for (const [k, v] of Object.entries(s.properties ?? {})) if (s.required?.includes(k) || r.next() < 0.5) out[k] = sample(v, r, depth + 1, k);
        return out;
      }
      case 'array': return Array.from({ length: Math.max(s.minItems ?? 0, 1) }, () => sample(s.items, r, depth + 1, name));
      case 'integer': case 'number': return s.minimum ?? (s.exclusiveMinimum !== undefined ? s.exclusiveMinimum + 1 : 1);
      case 'boolean': return true;
      case 'string': {
        if (s.format === 'uuid') return ids[ID_FIELDS[name] ?? 'store'];
        if (s.format === 'date-time') return '2026-06-01T12:00:00Z';
        if (s.format === 'date') return '2026-06-01';
        if (s.pattern) return PATTERNS[s.pattern] ?? 'x';
        return TEXT_FIELDS[name] ?? (name === 'code' ? newCouponCode() : 'text');
      }
      default: return 'x';
    }
  }

  /** Every path to a value inside a sample, for breaking one of them. */
  const leaves = (v: unknown, at: string[] = []): string[][] =>
    v !== null && typeof v === 'object' ? [at, ...Object.entries(v).flatMap(([k, x]) => leaves(x, [...at, k]))] : [at];

  const hostile = (r: ReturnType<typeof prng>): unknown => (r.next() < 0.6 ? r.pick(HOSTILE_STRINGS) : r.pick(HOSTILE_TYPES));

  function setAt(root: unknown, at: string[], value: unknown): unknown {
    if (at.length === 0) return value;
    const copy = structuredClone(root) as Record<string, unknown>;
    let node = copy;
    for (const k of at.slice(0, -1)) node = node[k] as Record<string, unknown>;
    node[at.at(-1)!] = value;
    return copy;
  }

  const toJson = (v: unknown) => JSON.stringify(v).replaceAll(RAW.inf, '1e999').replaceAll(RAW.ninf, '-1e999')
    .replaceAll(JSON.stringify(RAW.inf), '1e999').replaceAll(JSON.stringify(RAW.ninf), '-1e999');

  /** One hostile request for an operation: a body, query or path broken in one place, or a prototype key added. */
  function makeRequest(op: Operation, r: ReturnType<typeof prng>, i: number): { url: string; body?: string } {
    const params = [...op.path.matchAll(/\{(\w+)\}/g)].map((m) => m[1]!);
    const modes = [...(op.body ? ['body', 'body', 'body', 'proto'] as const : []), ...(op.query.length ? ['query'] as const : []), ...(params.length ? ['path'] as const : [])];
    const mode = modes.length ? modes[i % modes.length]! : 'query';
    let path = op.path;
    for (const p of params) {
      const value = mode === 'path' && r.next() < 0.8 ? String(hostile(r)) : idFor(op.path, p);
      path = path.replace(`{${p}}`, encodePathPart(value));
    }
    const query = new URLSearchParams();
    for (const q of op.query) if (r.next() < 0.5) query.append(q.name, String(sample(q.schema, r)));
    if (mode === 'query') {
      const name = op.query.length && r.next() < 0.8 ? r.pick(op.query).name : r.pick(['__proto__', 'constructor', 'limit', 'x']);
      query.set(name, String(r.pick([...HOSTILE_STRINGS, ...HOSTILE_NUMBERS.map(String)])));
      if (r.next() < 0.2) query.append(name, '2');
    }
    const qs = query.toString();
    const url = `${path}${qs ? `?${qs}` : ''}`;
    if (!op.body) return { url };
    let body = sample(op.body, r);
    if (mode === 'body') {
      // Each field in turn; a text field mostly gets its own value with a control character in it.
      const all = leaves(body);
      const at = all[Math.floor(i / modes.length) % all.length]!;
      const was = at.reduce<unknown>((v, k) => (v as Record<string, unknown>)[k], body);
      body = setAt(body, at, typeof was === 'string' && r.next() < 0.5 ? `${was}${r.pick(CONTROLS)}` : hostile(r));
    }
    let text = toJson(body);
    if (mode === 'proto' && text.startsWith('{')) {
      const key = r.pick(['"__proto__":{"isAdmin":true}', '"constructor":{"prototype":{"isAdmin":true}}', '"__proto__":null']);
      text = text === '{}' ? `{${key}}` : `{${key},${text.slice(1)}`;
    }
    return { url, body: text };
  }

  it('answers no hostile request with a 5xx and logs no error', async () => {
    const doc = (await gw.app.inject({ method: 'GET', url: '/openapi.json' })).json() as { paths: Record<string, Record<string, {
      parameters?: Array<{ in: string; name: string; schema: Schema }>;
      description?: string;
      summary?: string;
      requestBody?: { content?: Record<string, { schema: Schema }> };
    }>> };
    const ops: Operation[] = Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({
      method: method.toUpperCase(), path,
      query: (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => ({ name: p.name, schema: p.schema })),
      ...(op.requestBody?.content?.['application/json'] ? { body: op.requestBody.content['application/json'].schema } : {}),
      roles: /Roles: ([a-z, ]+)/.exec(op.description ?? '')?.[1]?.split(', ') ?? [],
      signed: /signature/.test(op.description ?? '') || /signed/.test(op.summary ?? ''),
    })))
      // Rotating the caller's own key would leave the rest of the run without it.
      .filter((op) => op.path !== '/api-keys/current/rotate');
    expect(ops.length).toBeGreaterThan(50);

    const r = prng(SEED);
    // Callers an operation refuses are tried once each; the rest of the budget goes to those it lets in.
    const allowed = (op: Operation, caller: Caller) =>
      caller === 'none' ? op.roles.length === 0 && !op.signed : caller === 'signed' ? op.signed : op.roles.includes(caller);
    const admitted = ops.reduce((n, op) => n + CALLERS.filter((c) => allowed(op, c)).length, 0);
    const refusedCount = ops.length * CALLERS.length - admitted;
    const perAdmitted = Math.max(1, Math.floor((REQUESTS - refusedCount) / admitted));
    const failures: string[] = [];
    let sent = 0;
    const statuses = new Map<number, number>();
    let stamp = Date.now();
    for (const op of ops) {
      for (const caller of CALLERS) {
        for (let i = 0, n = allowed(op, caller) ? perAdmitted : 1; i < n; i++) {
          const { url, body } = makeRequest(op, r, i);
          const headers: Record<string, string> = body !== undefined ? { 'content-type': 'application/json' } : {};
          if (caller === 'none' || caller === 'signed') headers.authorization = '';
          else headers.authorization = `Bearer ${keys[caller]}`;
          if (caller === 'signed') {
            const parts = { method: op.method, path: url, timestamp: ++stamp, body: body ?? '' };
            Object.assign(headers, signRequest(agent.key, agent.id, parts));
            headers[HEADER_APP_TIMESTAMP] = String(parts.timestamp);
            headers[HEADER_APP_SIGNATURE] = signAppReport(identityKey, parts);
          }
          const res = await gw.app.inject({ method: op.method as 'GET', url, headers, ...(body !== undefined ? { payload: body } : {}) });
          sent++;
          statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
          if (res.statusCode >= 500) failures.push(`${op.method} ${url} as ${caller}: ${res.statusCode} ${res.body.slice(0, 200)} body=${(body ?? '').slice(0, 300)}`);
        }
      }
    }
    expect(sent).toBeLessThanOrEqual(REQUESTS);
    // The hostile requests went past the door too: many were answered, not all refused.
    expect((statuses.get(200) ?? 0) + (statuses.get(201) ?? 0)).toBeGreaterThan(100);
    const errors = logged.filter((l) => (JSON.parse(l) as { level: number }).level >= 50).map((l) => l.slice(0, 600));
    expect({ failures, errors }).toEqual({ failures: [], errors: [] });
  }, 240_000);
});
