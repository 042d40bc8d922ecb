// Tests start the gateway through here: it issues an administrator key and sends it with every injected
// request that brings no Authorization header of its own. Tests of access control start it from
// gateway/runtime.js instead, and say who they are on every request.
import type { InjectOptions } from 'fastify';
import type { LogStream } from '../../gateway/app.js';
import type { Config } from '../../gateway/config.js';
import { issueApiKey, type KeyRole } from '../../gateway/domain/api-keys.js';
import { startGateway as start, type Gateway } from '../../gateway/runtime.js';

export type { Gateway } from '../../gateway/runtime.js';

export interface TestGateway extends Gateway {
  /** The administrator key sent by default. */
  adminKey: string;
}

export async function startGateway(config: Config, options: { now?: () => Date; logStream?: LogStream } = {}): Promise<TestGateway> {
  const gw = await start(config, options);
  const { key } = await issueApiKey(gw.deps.db, { role: 'administrator', name: 'tests' });
  const inject = gw.app.inject.bind(gw.app) as (o: InjectOptions) => ReturnType<typeof gw.app.inject>;
  const withKey = (opts: InjectOptions | string) => {
    const o: InjectOptions = typeof opts === 'string' ? { url: opts } : opts;
    const headers = { ...(o.headers ?? {}) } as Record<string, string>;
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'authorization')) headers.authorization = `Bearer ${key}`;
    return inject({ ...o, headers });
  };
  (gw.app as unknown as { inject: typeof withKey }).inject = withKey;
  return Object.assign(gw, { adminKey: key });
}

/** A key of another role for a test that needs one. */
export async function keyFor(gw: Gateway, role: KeyRole, scope: { merchantId?: string; memberId?: string } = {}): Promise<string> {
  return (await issueApiKey(gw.deps.db, { role, name: `test ${role}`, ...scope })).key;
}

/** Headers that authenticate as the given key. */
export const as = (key: string) => ({ authorization: `Bearer ${key}` });

/** Headers of a fresh app token of the member. */
export const asMember = async (gw: Gateway, memberId: string) => as(await keyFor(gw, 'member', { memberId }));

/** The member's EID identity key, fetched as their app does (only the member may read it). */
export async function bleIdentity(gw: Gateway, memberId: string): Promise<{ status: number; body: { identityKey: string; rotationExponent: number; error?: { code: string } } }> {
  const res = await gw.app.inject({ method: 'GET', url: `/members/${memberId}/ble-identity`, headers: await asMember(gw, memberId) });
  if (res.statusCode >= 300 && res.statusCode !== 409) throw new Error(`GET ble-identity: ${res.statusCode} ${res.body}`);
  return { status: res.statusCode, body: res.json() };
}
