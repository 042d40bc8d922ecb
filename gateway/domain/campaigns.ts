// Campaigns for marketers: validated, versioned (every edit a new version with its own offer), paused,
// resumed, archived; and the engine's view of the active ones.
import {
  DEFAULT_MAX_ACCURACY_M, validateSchedule, validateTrigger, type Campaign, type CampaignStatus, type EventSource, type Problem,
} from '../../campaign-rules/index.js';
import type { CampaignDefinition, CampaignInput, CampaignView } from '../http/campaign-schema.js';
import { AppError, invalid } from '../errors.js';
import type { Database, Sql } from '../db/database.js';
import { toEngineGeofence, type GeofenceRow } from './geofences.js';
import { HOUSE_BRAND_ID } from './merchants.js';

export interface Normalized {
  name: string;
  /** The brand that runs the campaign. */
  merchantId: string;
  definition: CampaignDefinition;
  offer: { title: string; message: string; validDays: number };
}


const defaultSources = (kind: CampaignInput['trigger']['kind']): EventSource[] =>
  kind === 'zone_enter' || kind === 'zone_dwell' ? ['ble_zone', 'app_beacon'] : ['gps'];

/**
 * Checks references and meaning, fills defaults; throws with every problem at its path. Saves nothing.
 * `brandId`: the brand the campaign belongs to (a marketer's own; an existing campaign's); null lets the store
 * decide, or the house brand without one. Stores, geofences and zones of other merchants do not exist for it.
 */
export async function normalizeCampaign(db: Sql, input: CampaignInput, defaultValidDays: number, brandId: string | null = null): Promise<Normalized> {
  let storeZone: string | null = null;
  const problems: Problem[] = [];
  let brand = brandId ?? HOUSE_BRAND_ID;
  if (input.storeId) {
    const [store] = await db.query<{ time_zone: string; merchant_id: string; kind: string }>(
      'SELECT s.time_zone, s.merchant_id, m.kind FROM stores s JOIN merchants m ON m.id = s.merchant_id WHERE s.id = $1', [input.storeId],
    );
    if (!store) throw new AppError('STORE_NOT_FOUND', `store ${input.storeId} does not exist`);
    storeZone = store.time_zone;
    if (brandId === null) brand = store.merchant_id;
    if (store.merchant_id !== brand) problems.push({ path: '/storeId', problem: `store ${input.storeId} belongs to another merchant than the campaign` });
    else if (store.kind !== 'brand') problems.push({ path: '/storeId', problem: `store ${input.storeId} belongs to a partner; campaigns are run by brands` });
  }
  let geofenceIds: string[] = [];
  if (input.geofenceIds) {
    geofenceIds = [...new Set(input.geofenceIds)];
    const found = new Set((await db.query<{ id: string }>('SELECT id FROM geofences WHERE id = ANY($1::uuid[]) AND merchant_id = $2', [geofenceIds, brand])).map((r) => r.id));
    input.geofenceIds.forEach((id, i) => {
      if (!found.has(id)) problems.push({ path: `/geofenceIds/${i}`, problem: `geofence ${id} does not exist` });
    });
  } else if (input.storeId) {
    geofenceIds = (await db.query<{ id: string }>('SELECT id FROM geofences WHERE store_id = $1 ORDER BY created_at, id', [input.storeId])).map((r) => r.id);
  }
  const trigger = input.trigger;
  if (trigger.kind === 'zone_enter' || trigger.kind === 'zone_dwell') {
    const found = new Set((await db.query<{ id: string }>(
      'SELECT z.id FROM zones z JOIN stores s ON s.id = z.store_id WHERE z.id = ANY($1::uuid[]) AND s.merchant_id = $2', [trigger.zoneIds, brand],
    )).map((r) => r.id));
    trigger.zoneIds.forEach((id, i) => {
      if (!found.has(id)) problems.push({ path: `/trigger/zoneIds/${i}`, problem: `zone ${id} does not exist` });
    });
  }
  const schedule = {
    timeZone: input.schedule?.timeZone ?? storeZone ?? 'UTC',
    startsAt: input.schedule?.startsAt ? new Date(input.schedule.startsAt).toISOString() : null,
    endsAt: input.schedule?.endsAt ? new Date(input.schedule.endsAt).toISOString() : null,
    weekly: input.schedule?.weekly ?? null,
  };
  problems.push(...validateSchedule({ ...schedule, weekly: schedule.weekly ?? undefined }));
  problems.push(...validateTrigger(trigger, geofenceIds.length));
  const a = input.audience ?? {};
  if (a.homeStoreIds?.length) {
    // A brand targets its own stores' regulars only.
    const own = new Set((await db.query<{ id: string }>('SELECT id FROM stores WHERE id = ANY($1::uuid[]) AND merchant_id = $2', [a.homeStoreIds, brand])).map((r) => r.id));
    a.homeStoreIds.forEach((id, i) => {
      if (!own.has(id)) problems.push({ path: `/audience/homeStoreIds/${i}`, problem: `store ${id} does not exist` });
    });
  }
  for (const [min, max] of [['minVisits', 'maxVisits'], ['minDaysSinceLastVisit', 'maxDaysSinceLastVisit'], ['minLifetimeRedemptions', 'maxLifetimeRedemptions']] as const) {
    if (a[min] !== undefined && a[max] !== undefined && a[min] > a[max]) problems.push({ path: `/audience/${max}`, problem: `must not be below ${min}` });
  }
  problems.push(...await allianceProblems(db, input));
  if (problems.length > 0) throw invalid(...problems.map((p) => ({ field: `body${p.path}`, problem: p.problem })));
  return {
    name: input.name,
    merchantId: brand,
    definition: {
      storeId: input.storeId ?? null,
      geofenceIds,
      priority: input.priority ?? 0,
      expectedValue: input.expectedValue ?? 0,
      schedule,
      trigger,
      sources: input.sources ?? defaultSources(trigger.kind),
      minConfidence: input.minConfidence ?? 0,
      maxAccuracyM: input.maxAccuracyM ?? DEFAULT_MAX_ACCURACY_M,
      audience: a,
      channels: input.channels ?? ['sms'],
      caps: input.caps ?? {},
      budget: input.budget ?? {},
      holdoutPercent: input.holdoutPercent ?? 0,
      ...(input.alliance ? { alliance: { offerIds: [...new Set(input.alliance.offerIds)], near: input.alliance.near, withinM: input.alliance.withinM } } : {}),
    },
    offer: { title: input.offer.title, message: input.offer.message, validDays: input.offer.validDays ?? defaultValidDays },
  };
}

/**
 * A campaign's alliance offers must be published (withdrawn ones can no longer be chosen); whether one is valid
 * and has budget left is decided at each decision. Measuring from the store needs a store.
 */
async function allianceProblems(db: Sql, input: CampaignInput): Promise<Problem[]> {
  if (!input.alliance) return [];
  const problems: Problem[] = [];
  if (input.alliance.near === 'store' && !input.storeId) {
    problems.push({ path: '/alliance/near', problem: "is 'store' but the campaign has no storeId; give one, or use 'member'" });
  }
  const published = new Set((await db.query<{ id: string }>(
    `SELECT id FROM alliance_offers WHERE id = ANY($1::uuid[]) AND status = 'published'`, [input.alliance.offerIds],
  )).map((r) => r.id));
  input.alliance.offerIds.forEach((id, i) => {
    if (!published.has(id)) problems.push({ path: `/alliance/offerIds/${i}`, problem: `alliance offer ${id} does not exist or was withdrawn` });
  });
  return problems;
}

interface CampaignRow {
  id: string;
  merchant_id: string;
  name: string;
  status: CampaignStatus;
  version: number;
  definition: CampaignDefinition;
  created_at: Date;
  updated_at: Date;
  offer_id: string;
  offer_title: string;
  offer_message: string;
  offer_valid_days: number;
}

// The offer of the campaign's current version.
const SELECT = `SELECT c.*, o.id AS offer_id, o.title AS offer_title, o.message AS offer_message, o.valid_days AS offer_valid_days
  FROM campaigns c JOIN offers o ON o.campaign_id = c.id AND o.version = c.version`;

const offerView = (r: Pick<CampaignRow, 'offer_id' | 'offer_title' | 'offer_message' | 'offer_valid_days'>) => ({
  id: r.offer_id, kind: 'coupon', title: r.offer_title, message: r.offer_message, validDays: r.offer_valid_days,
});

const toView = (r: CampaignRow): CampaignView => ({
  id: r.id,
  merchantId: r.merchant_id,
  name: r.name,
  status: r.status,
  version: r.version,
  definition: r.definition,
  offer: offerView(r),
  createdAt: r.created_at.toISOString(),
  updatedAt: r.updated_at.toISOString(),
});

async function saveVersion(tx: Sql, id: string, version: number, n: Normalized) {
  await tx.query('INSERT INTO campaign_versions (campaign_id, version, name, definition) VALUES ($1, $2, $3, $4)', [id, version, n.name, n.definition]);
  await tx.query(`INSERT INTO offers (campaign_id, version, kind, title, message, valid_days) VALUES ($1, $2, 'coupon', $3, $4, $5)`, [
    id, version, n.offer.title, n.offer.message, n.offer.validDays,
  ]);
}

export async function createCampaign(db: Database, input: CampaignInput, defaultValidDays: number, brandId: string | null = null): Promise<CampaignView> {
  return db.transaction(async (tx) => {
    const n = await normalizeCampaign(tx, input, defaultValidDays, brandId);
    const [c] = await tx.query<{ id: string }>(
      `INSERT INTO campaigns (name, status, definition, merchant_id) VALUES ($1, 'active', $2, $3) RETURNING id`, [n.name, n.definition, n.merchantId],
    );
    await saveVersion(tx, c!.id, 1, n);
    return getCampaign(tx, c!.id);
  });
}

/** An edit: a new version with its own definition and offer; decisions made before keep naming the old one. */
export async function updateCampaign(db: Database, id: string, input: CampaignInput, defaultValidDays: number): Promise<CampaignView> {
  return db.transaction(async (tx) => {
    const [cur] = await tx.query<{ status: CampaignStatus; version: number; merchant_id: string }>(
      'SELECT status, version, merchant_id FROM campaigns WHERE id = $1 FOR UPDATE', [id],
    );
    if (!cur) throw new AppError('CAMPAIGN_NOT_FOUND', `campaign ${id} does not exist`);
    if (cur.status === 'archived') throw new AppError('CAMPAIGN_STATE_CONFLICT', `campaign ${id} is archived and cannot be edited`);
    // A campaign stays with its brand.
    const n = await normalizeCampaign(tx, input, defaultValidDays, cur.merchant_id);
    const version = cur.version + 1;
    await saveVersion(tx, id, version, n);
    await tx.query('UPDATE campaigns SET name = $2, definition = $3, version = $4, updated_at = now() WHERE id = $1', [id, n.name, n.definition, version]);
    return getCampaign(tx, id);
  });
}

const TRANSITIONS: Record<'pause' | 'resume' | 'archive', { from: CampaignStatus[]; to: CampaignStatus }> = {
  pause: { from: ['active'], to: 'paused' },
  resume: { from: ['paused'], to: 'active' },
  archive: { from: ['active', 'paused'], to: 'archived' },
};

export async function changeStatus(db: Database, id: string, action: keyof typeof TRANSITIONS): Promise<CampaignView> {
  return db.transaction(async (tx) => {
    const [cur] = await tx.query<{ status: CampaignStatus }>('SELECT status FROM campaigns WHERE id = $1 FOR UPDATE', [id]);
    if (!cur) throw new AppError('CAMPAIGN_NOT_FOUND', `campaign ${id} does not exist`);
    const t = TRANSITIONS[action];
    if (!t.from.includes(cur.status)) {
      throw new AppError('CAMPAIGN_STATE_CONFLICT', `cannot ${action} a campaign that is ${cur.status}`, { status: cur.status });
    }
    await tx.query('UPDATE campaigns SET status = $2, updated_at = now() WHERE id = $1', [id, t.to]);
    return getCampaign(tx, id);
  });
}

export async function getCampaign(db: Sql, id: string): Promise<CampaignView> {
  const [row] = await db.query<CampaignRow>(`${SELECT} WHERE c.id = $1`, [id]);
  if (!row) throw new AppError('CAMPAIGN_NOT_FOUND', `campaign ${id} does not exist`);
  return toView(row);
}

export async function listCampaigns(db: Sql, filter: { status?: CampaignStatus; storeId?: string; merchantId?: string | null }): Promise<CampaignView[]> {
  const rows = await db.query<CampaignRow>(
    `${SELECT} WHERE ($1::text IS NULL OR c.status = $1) AND ($2::text IS NULL OR c.definition->>'storeId' = $2)
       AND ($3::uuid IS NULL OR c.merchant_id = $3)
     ORDER BY c.created_at DESC, c.id LIMIT 1000`,
    [filter.status ?? null, filter.storeId ?? null, filter.merchantId ?? null],
  );
  return rows.map(toView);
}

export async function campaignVersions(db: Sql, id: string) {
  await getCampaign(db, id);
  const rows = await db.query<{ version: number; name: string; definition: CampaignDefinition; created_at: Date } & Parameters<typeof offerView>[0]>(
    `SELECT v.version, v.name, v.definition, v.created_at, o.id AS offer_id, o.title AS offer_title, o.message AS offer_message,
            o.valid_days AS offer_valid_days
       FROM campaign_versions v JOIN offers o ON o.campaign_id = v.campaign_id AND o.version = v.version
      WHERE v.campaign_id = $1 ORDER BY v.version`,
    [id],
  );
  return rows.map((r) => ({ version: r.version, name: r.name, definition: r.definition, offer: offerView(r), createdAt: r.created_at.toISOString() }));
}

/** The engine's shape of a stored campaign, given its geofences by id. */
export function toEngineCampaign(v: CampaignView, fences: ReadonlyMap<string, GeofenceRow>): Campaign {
  const d = v.definition;
  return {
    id: v.id,
    version: v.version,
    status: v.status,
    priority: d.priority,
    expectedValue: d.expectedValue,
    schedule: {
      timeZone: d.schedule.timeZone,
      startsAt: d.schedule.startsAt ? new Date(d.schedule.startsAt) : null,
      endsAt: d.schedule.endsAt ? new Date(d.schedule.endsAt) : null,
      ...(d.schedule.weekly ? { weekly: d.schedule.weekly } : {}),
    },
    trigger: d.trigger,
    geofences: d.geofenceIds.flatMap((id) => {
      const row = fences.get(id);
      return row ? [toEngineGeofence(row)] : [];
    }),
    sources: d.sources,
    minConfidence: d.minConfidence,
    maxAccuracyM: d.maxAccuracyM,
    audience: d.audience,
    channels: d.channels,
    caps: d.caps,
    budget: d.budget,
    holdoutPercent: d.holdoutPercent,
    offer: { id: v.offer.id, kind: 'coupon', title: v.offer.title, message: v.offer.message, validDays: v.offer.validDays },
    ...(d.alliance ? { alliance: { ...d.alliance, storeId: d.storeId } } : {}),
  };
}

/** Active campaigns with their geofences, in the engine's shape. */
export async function activeCampaigns(db: Sql): Promise<Campaign[]> {
  const rows = await db.query<CampaignRow>(`${SELECT} WHERE c.status = 'active' ORDER BY c.id`);
  const fenceIds = [...new Set(rows.flatMap((r) => r.definition.geofenceIds))];
  const fences = fenceIds.length
    ? await db.query<GeofenceRow>('SELECT * FROM geofences WHERE id = ANY($1::uuid[])', [fenceIds])
    : [];
  const byId = new Map(fences.map((f) => [f.id, f]));
  return rows.map((r) => toEngineCampaign(toView(r), byId));
}
