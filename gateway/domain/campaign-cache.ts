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

export async function preparedCampaigns(db: Database, tx: Sql = db): Promise<PreparedCampaigns> {
  const [row] = await tx.query<{ stamp: string }>(
    `SELECT concat_ws('|', (SELECT count(*) FROM campaigns), (SELECT max(updated_at) FROM campaigns),
                           (SELECT count(*) FROM geofences), (SELECT max(updated_at) FROM geofences)) AS stamp`,
  );
  const stamp = row!.stamp;
  const hit = cache.get(db);
  if (hit && hit.stamp === stamp) return hit.prepared;
  const prepared = prepareCampaigns(await activeCampaigns(tx));
  cache.set(db, { stamp, prepared });
  return prepared;
}
