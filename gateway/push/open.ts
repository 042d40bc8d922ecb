// The push channel a gateway sends with. Its VAPID key pair comes from the environment when set; otherwise it is
// the one kept in the database, made by the first gateway to start, so that all gateways sign with one key.
import type { Config } from '../config.js';
import type { Sql } from '../db/database.js';
import type { PushChannel } from './provider.js';
import { generateVapidKeys, webPushProvider } from './web-push.js';

export interface VapidKeys {
  publicKey: string;
  privateKey: string;
  source: 'environment' | 'database';
}

/** The shared key pair: read it, or make it; of gateways making it at once, the first insert wins and all read that. */
export async function vapidKeys(db: Sql, config: Config): Promise<VapidKeys> {
  if (config.push.vapidKeys) return { ...config.push.vapidKeys, source: 'environment' };
  const read = async () =>
    (await db.query<{ public_key: string; private_key: string }>('SELECT public_key, private_key FROM vapid_keys WHERE id = 1'))[0];
  let row = await read();
  if (!row) {
    const fresh = generateVapidKeys();
    await db.query('INSERT INTO vapid_keys (id, public_key, private_key) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING', [fresh.publicKey, fresh.privateKey]);
    row = await read();
  }
  return { publicKey: row!.public_key, privateKey: row!.private_key, source: 'database' };
}

export async function openPushChannel(config: Config, db: Sql): Promise<PushChannel> {
  const keys = await vapidKeys(db, config);
  return {
    vapidPublicKey: keys.publicKey,
    providers: { webpush: webPushProvider({ subject: config.push.vapidSubject, publicKey: keys.publicKey, privateKey: keys.privateKey }) },
  };
}
