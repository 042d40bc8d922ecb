import type { Config } from '../config.js';
import { openPostgres, type Database } from './database.js';
import { openEmbedded } from './embedded.js';

/** Real PostgreSQL when DATABASE_URL is set, otherwise the embedded PGlite under DATA_DIR. */
export function openDatabase(config: Config): Promise<Database> {
  return config.databaseUrl
    ? openPostgres(config.databaseUrl, config.databaseSchema, 10, config.database)
    : openEmbedded(config.dataDir, config.databaseSchema);
}
