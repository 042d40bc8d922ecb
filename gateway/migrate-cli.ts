// `npm run migrate`: applies pending migrations to the configured database and exits.
import { ConfigError, loadConfig } from './config.js';
import { migrate } from './db/migrate.js';
import { openDatabase } from './db/open.js';

try {
  const config = loadConfig();
  const db = await openDatabase(config);
  try {
    const applied = await migrate(db);
    console.log(applied.length ? `applied migrations ${applied.join(', ')}` : 'database is up to date');
  } finally {
    await db.close();
  }
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : `migration failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(err instanceof ConfigError ? 2 : 1);
}
