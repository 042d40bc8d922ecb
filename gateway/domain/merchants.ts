// Merchants (brands that run campaigns, partners that publish alliance offers) and their stores' tills.
import type { Sql } from '../db/database.js';
import { AppError } from '../errors.js';

/** The brand that owns whatever was made before there were merchants, and stores opened without naming one. */
export const HOUSE_BRAND_ID = '00000000-0000-4000-8000-000000000001';

export type MerchantKind = 'brand' | 'partner';

export interface Merchant {
  id: string;
  kind: MerchantKind;
  name: string;
  createdAt: string;
}

export interface Till {
  id: string;
  storeId: string;
  name: string;
  createdAt: string;
}

interface MerchantRow { id: string; kind: MerchantKind; name: string; created_at: Date }
interface TillRow { id: string; store_id: string; name: string; created_at: Date }

const merchantView = (r: MerchantRow): Merchant => ({ id: r.id, kind: r.kind, name: r.name, createdAt: r.created_at.toISOString() });
const tillView = (r: TillRow): Till => ({ id: r.id, storeId: r.store_id, name: r.name, createdAt: r.created_at.toISOString() });

export async function createMerchant(db: Sql, input: { kind: MerchantKind; name: string }): Promise<Merchant> {
  const [row] = await db.query<MerchantRow>('INSERT INTO merchants (kind, name) VALUES ($1, $2) RETURNING *', [input.kind, input.name]);
  return merchantView(row!);
}

export async function getMerchant(db: Sql, id: string): Promise<Merchant> {
  const [row] = await db.query<MerchantRow>('SELECT * FROM merchants WHERE id = $1', [id]);
  if (!row) throw new AppError('MERCHANT_NOT_FOUND', `merchant ${id} does not exist`);
  return merchantView(row);
}

/** Every merchant, or only `only` (a marketer's or merchant's own). */
export async function listMerchants(db: Sql, only: string | null): Promise<Merchant[]> {
  const rows = await db.query<MerchantRow>('SELECT * FROM merchants WHERE ($1::uuid IS NULL OR id = $1) ORDER BY created_at, id LIMIT 1000', [only]);
  return rows.map(merchantView);
}

export async function createTill(db: Sql, storeId: string, name: string): Promise<Till> {
  const [store] = await db.query('SELECT 1 FROM stores WHERE id = $1', [storeId]);
  if (!store) throw new AppError('STORE_NOT_FOUND', `store ${storeId} does not exist`);
  const [row] = await db.query<TillRow>(
    'INSERT INTO tills (store_id, name) VALUES ($1, $2) ON CONFLICT (store_id, name) DO NOTHING RETURNING *', [storeId, name],
  );
  if (!row) throw new AppError('TILL_NAME_TAKEN', `store ${storeId} already has a till named "${name}"`);
  return tillView(row);
}

export async function storeTills(db: Sql, storeId: string): Promise<Till[]> {
  return (await db.query<TillRow>('SELECT * FROM tills WHERE store_id = $1 ORDER BY created_at, id', [storeId])).map(tillView);
}

/** The stores of a merchant. */
export async function merchantStores(db: Sql, merchantId: string): Promise<Array<{ id: string; name: string; timeZone: string }>> {
  const rows = await db.query<{ id: string; name: string; time_zone: string }>(
    'SELECT id, name, time_zone FROM stores WHERE merchant_id = $1 ORDER BY created_at, id LIMIT 1000', [merchantId],
  );
  return rows.map((r) => ({ id: r.id, name: r.name, timeZone: r.time_zone }));
}
