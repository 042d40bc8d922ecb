import { DEFAULT_MAX_ACCURACY_M, type Campaign, type CampaignStatus, type Offer } from '../../campaign-rules/index.js';
import { AppError } from '../errors.js';
import type { Database, Sql } from '../db/database.js';
import { toGeofence } from './stores.js';

/** What a marketer sends; stored (less the offer) as the campaign's definition. */
export interface CampaignInput {
  name: string;
  storeId?: string;
  /** Defaults to every geofence of storeId. */
  geofenceIds?: string[];
  priority?: number;
  startsAt?: string;
  endsAt?: string;
  trigger: { kind: 'checkin' };
  maxAccuracyM?: number;
  channel?: 'sms';
  offer: { title: string; message: string; validDays?: number };
}

interface Definition {
  storeId: string | null;
  geofenceIds: string[];
  priority: number;
  startsAt: string | null;
  endsAt: string | null;
  trigger: { kind: 'checkin' };
  maxAccuracyM: number;
  channel: 'sms';
}

export interface CampaignView extends Definition {
  id: string;
  name: string;
  status: CampaignStatus;
  version: number;
  offer: Offer;
  createdAt: string;
}

interface CampaignRow {
  id: string;
  name: string;
  status: CampaignStatus;
  version: number;
  definition: Definition;
  created_at: Date;
  offer_id: string;
  offer_title: string;
  offer_message: string;
  offer_valid_days: number;
}

const SELECT = `SELECT c.*, o.id AS offer_id, o.title AS offer_title, o.message AS offer_message, o.valid_days AS offer_valid_days
  FROM campaigns c JOIN offers o ON o.campaign_id = c.id`;

const toView = (r: CampaignRow): CampaignView => ({
  id: r.id,
  name: r.name,
  status: r.status,
  version: r.version,
  ...r.definition,
  offer: { id: r.offer_id, kind: 'coupon', title: r.offer_title, message: r.offer_message, validDays: r.offer_valid_days },
  createdAt: r.created_at.toISOString(),
});

export async function createCampaign(db: Database, input: CampaignInput, defaultValidDays: number): Promise<CampaignView> {
  const startsAt = input.startsAt ? new Date(input.startsAt) : null;
  const endsAt = input.endsAt ? new Date(input.endsAt) : null;
  if (startsAt && endsAt && endsAt <= startsAt) {
    throw new AppError('VALIDATION_FAILED', 'body/endsAt must be later than body/startsAt');
  }
  return db.transaction(async (tx) => {
    if (input.storeId) {
      const [store] = await tx.query('SELECT 1 FROM stores WHERE id = $1', [input.storeId]);
      if (!store) throw new AppError('STORE_NOT_FOUND', `store ${input.storeId} does not exist`);
    }
    const geofenceIds = await resolveGeofences(tx, input);
    const definition: Definition = {
      storeId: input.storeId ?? null,
      geofenceIds,
      priority: input.priority ?? 0,
      startsAt: startsAt?.toISOString() ?? null,
      endsAt: endsAt?.toISOString() ?? null,
      trigger: input.trigger,
      maxAccuracyM: input.maxAccuracyM ?? DEFAULT_MAX_ACCURACY_M,
      channel: input.channel ?? 'sms',
    };
    const [c] = await tx.query<{ id: string }>(
      `INSERT INTO campaigns (name, status, definition) VALUES ($1, 'active', $2) RETURNING id`,
      [input.name, definition],
    );
    await tx.query('INSERT INTO campaign_versions (campaign_id, version, definition) VALUES ($1, 1, $2)', [c!.id, definition]);
    await tx.query(`INSERT INTO offers (campaign_id, kind, title, message, valid_days) VALUES ($1, 'coupon', $2, $3, $4)`, [
      c!.id,
      input.offer.title,
      input.offer.message,
      input.offer.validDays ?? defaultValidDays,
    ]);
    return getCampaign(tx, c!.id);
  });
}

async function resolveGeofences(db: Sql, input: CampaignInput): Promise<string[]> {
  if (input.geofenceIds && input.geofenceIds.length > 0) {
    const ids = [...new Set(input.geofenceIds)];
    const found = await db.query<{ id: string }>('SELECT id FROM geofences WHERE id = ANY($1::uuid[])', [ids]);
    const missing = ids.filter((id) => !found.some((f) => f.id === id));
    if (missing.length > 0) throw new AppError('VALIDATION_FAILED', `body/geofenceIds: geofence ${missing[0]} does not exist`);
    return ids;
  }
  if (!input.storeId) throw new AppError('VALIDATION_FAILED', 'body must name a storeId or geofenceIds');
  const rows = await db.query<{ id: string }>('SELECT id FROM geofences WHERE store_id = $1 ORDER BY created_at, id', [input.storeId]);
  if (rows.length === 0) throw new AppError('VALIDATION_FAILED', `store ${input.storeId} has no geofence; add one or name geofenceIds`);
  return rows.map((r) => r.id);
}

export async function getCampaign(db: Sql, id: string): Promise<CampaignView> {
  const [row] = await db.query<CampaignRow>(`${SELECT} WHERE c.id = $1`, [id]);
  if (!row) throw new AppError('CAMPAIGN_NOT_FOUND', `campaign ${id} does not exist`);
  return toView(row);
}

/** Active campaigns with their geofences, in the engine's shape. */
export async function activeCampaigns(db: Sql): Promise<{ campaigns: Campaign[]; names: Map<string, string> }> {
  const rows = await db.query<CampaignRow>(`${SELECT} WHERE c.status = 'active'`);
  const fenceIds = [...new Set(rows.flatMap((r) => r.definition.geofenceIds))];
  const fences = fenceIds.length
    ? (await db.query<Parameters<typeof toGeofence>[0]>('SELECT * FROM geofences WHERE id = ANY($1::uuid[])', [fenceIds])).map(toGeofence)
    : [];
  const byId = new Map(fences.map((f) => [f.id, f]));
  const campaigns = rows.map((r): Campaign => {
    const v = toView(r);
    return {
      id: v.id,
      version: v.version,
      status: v.status,
      priority: v.priority,
      startsAt: v.startsAt ? new Date(v.startsAt) : null,
      endsAt: v.endsAt ? new Date(v.endsAt) : null,
      trigger: v.trigger,
      geofences: v.geofenceIds.flatMap((id) => byId.get(id) ?? []),
      maxAccuracyM: v.maxAccuracyM,
      channel: v.channel,
      offer: v.offer,
    };
  });
  return { campaigns, names: new Map(rows.map((r) => [r.id, r.name])) };
}
