// `npm run keys -- <command>`: API keys from the command line, for when no administrator key is at hand.
//   issue <role> <name> [--merchant <id>] [--member <id>]   prints the new key (shown once)
//   list                                                     keys, never their secrets
//   revoke <id>
// On the embedded default, stop the gateway first: the data directory has one user at a time.
import { ConfigError, loadConfig } from './config.js';
import { migrate } from './db/migrate.js';
import { openDatabase } from './db/open.js';
import { issueApiKey, listApiKeys, revokeApiKey, type KeyRole } from './domain/api-keys.js';

const ROLES: KeyRole[] = ['administrator', 'marketer', 'merchant', 'member'];
const USAGE = 'usage: npm run keys -- issue <administrator|marketer|merchant|member> <name> [--merchant <id>] [--member <id>] | list | revoke <id>';

const [command, ...rest] = process.argv.slice(2);
const option = (name: string) => {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 ? rest[i + 1] : undefined;
};

try {
  const config = loadConfig();
  const db = await openDatabase(config);
  try {
    await migrate(db);
    if (command === 'issue' && ROLES.includes(rest[0] as KeyRole) && rest[1]) {
      const { key, apiKey } = await issueApiKey(db, {
        role: rest[0] as KeyRole, name: rest[1], merchantId: option('merchant') ?? null, memberId: option('member') ?? null,
      });
      console.log(`key ${apiKey.id} (${apiKey.role}); shown once:\n${key}`);
    } else if (command === 'list') {
      for (const k of await listApiKeys(db, {})) {
        console.log([k.id, k.role, k.name, k.merchantId ?? k.memberId ?? '-', k.revokedAt ? `revoked ${k.revokedAt}` : k.expiresAt ? `expires ${k.expiresAt}` : 'live'].join('\t'));
      }
    } else if (command === 'revoke' && rest[0]) {
      const { apiKey, revokedIds } = await revokeApiKey(db, rest[0], new Date());
      console.log(`key ${apiKey.id} revoked at ${apiKey.revokedAt}${revokedIds.length > 1 ? `, with ${revokedIds.length - 1} key(s) that replaced it` : ''}`);
    } else {
      console.error(USAGE);
      process.exitCode = 2;
    }
  } finally {
    await db.close();
  }
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : `keys: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(err instanceof ConfigError ? 2 : 1);
}
