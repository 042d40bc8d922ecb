// The prepared active campaigns (with their spatial index), rebuilt only when a campaign or geofence changed.
// Each check-in pays one small stamp query instead of loading every campaign and rebuilding the index; any
// number of gateways stay consistent because the stamp is read from the shared database.
import { prepareCampaigns, type PreparedCampaigns } from '../../campaign-rules/index.js';
import type { Database, Sql } from '../db/database.js';
import { activeCampaigns } from './campaigns.js';

interface Entry {
  stamp: string;
  prepared: PreparedCampaigns;
}

const cache = new WeakMap<Database, Entry>();

/** The change stamp of campaigns and geofences, as a SQL expression, for callers that read it inside a statement of their own. */
export const CAMPAIGN_STAMP_SQL = `concat_ws('|', (SELECT count(*) FROM campaigns), (SELECT max(updated_at) FROM campaigns),
  (SELECT count(*) FROM geofences), (SELECT max(updated_at) FROM geofences))`;

export async function preparedCampaigns(db: Database, tx: Sql = db): Promise<PreparedCampaigns> {
  const [row] = await tx.query<{ stamp: string }>(`SELECT ${CAMPAIGN_STAMP_SQL} AS stamp`);
  return preparedForStamp(db, tx, row!.stamp);
}

/** The prepared campaigns for a stamp already read (with CAMPAIGN_STAMP_SQL) in the same transaction. */
export async function preparedForStamp(db: Database, tx: Sql, stamp: string): Promise<PreparedCampaigns> {
  const hit = cache.get(db);
  if (hit && hit.stamp === stamp) return hit.prepared;
  const prepared = prepareCampaigns(await activeCampaigns(tx));
  cache.set(db, { stamp, prepared });
  return prepared;
}
