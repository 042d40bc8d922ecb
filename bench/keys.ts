// Credentials for the bench's requests: an administrator sets things up; tills redeem with a merchant key,
// so the redemption figures include checking it.
import { issueApiKey } from '../gateway/domain/api-keys.js';
import { HOUSE_BRAND_ID } from '../gateway/domain/merchants.js';
import type { Gateway } from '../gateway/runtime.js';

const keys = new WeakMap<Gateway, { admin: string; till: string }>();

async function keysOf(gw: Gateway) {
  let k = keys.get(gw);
  if (!k) {
    const admin = (await issueApiKey(gw.deps.db, { role: 'administrator', name: 'bench' })).key;
    const till = (await issueApiKey(gw.deps.db, { role: 'merchant', name: 'bench tills', merchantId: HOUSE_BRAND_ID })).key;
    k = { admin, till };
    keys.set(gw, k);
  }
  return k;
}

export const adminHeaders = async (gw: Gateway) => ({ authorization: `Bearer ${(await keysOf(gw)).admin}` });
/** A till of the house brand, whose stores the bench opens. */
export const tillHeaders = async (gw: Gateway) => ({ authorization: `Bearer ${(await keysOf(gw)).till}` });
