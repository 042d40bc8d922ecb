// The agent's configuration: a JSON file (AGENT_CONFIG) with a few settings overridable from the environment.
// Validated whole at start; the first problem is named by its path and the agent refuses to run.
import fs from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import { Type, type Static } from 'typebox';

const Zone = Type.Object({
  id: Type.String({ format: 'uuid', description: 'The zone id the gateway gave (POST /stores/:id/zones)' }),
  enterRssi: Type.Number({ minimum: -120, maximum: 0 }),
  exitRssi: Type.Number({ minimum: -120, maximum: 0 }),
  minDwellMs: Type.Integer({ minimum: 0, maximum: 600_000 }),
  exitGraceMs: Type.Integer({ minimum: 1000, maximum: 3_600_000 }),
  /** The gateway ends a zone stay it has heard nothing of for an hour: a box reports at least every 30 min. */
  dwellEveryMs: Type.Integer({ minimum: 10_000, maximum: 1_800_000 }),
}, { additionalProperties: false });

const Schema = Type.Object({
  agentId: Type.String({ format: 'uuid' }),
  gatewayUrl: Type.String({ format: 'uri', pattern: '^https?://' }),
  /** PEM file holding the private key POST /agents returned. */
  privateKeyFile: Type.String({ minLength: 1 }),
  /** The outbox and its dead letters live here. */
  dataDir: Type.String({ minLength: 1 }),
  zones: Type.Array(Zone, { minItems: 1 }),
  rssiOffset: Type.Number({ minimum: -30, maximum: 30, default: 0 }),
  /** Where advertisements come from: the Bluetooth radio, or a recording (JSON lines, see sources.ts). */
  source: Type.Union([Type.Literal('radio'), Type.Literal('replay')], { default: 'radio' }),
  replayFile: Type.Optional(Type.String({ minLength: 1 })),
  /** Replay pace: 1 is as recorded; 'max' as fast as possible. */
  replaySpeed: Type.Union([Type.Number({ exclusiveMinimum: 0 }), Type.Literal('max')], { default: 1 }),
  /** Advertise this iBeacon and serve the hand-over GATT service (radio only). */
  advertise: Type.Optional(Type.Object({
    uuid: Type.String({ pattern: '^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$' }),
    major: Type.Integer({ minimum: 0, maximum: 65535 }),
    minor: Type.Integer({ minimum: 0, maximum: 65535 }),
    txPower: Type.Integer({ minimum: -128, maximum: 127 }),
  }, { additionalProperties: false })),
  batchSize: Type.Integer({ minimum: 1, maximum: 500, default: 100 }),
  flushMs: Type.Integer({ minimum: 100, maximum: 600_000, default: 1000 }),
  offersPollMs: Type.Integer({ minimum: 1000, maximum: 3_600_000, default: 30_000 }),
  /** Restart the scan when nothing was heard for this long. */
  watchdogQuietMs: Type.Integer({ minimum: 1000, maximum: 3_600_000, default: 60_000 }),
}, { additionalProperties: false });

export type AgentConfig = Static<typeof Schema>;

export class AgentConfigError extends Error {
  constructor(readonly field: string, problem: string) {
    super(`Invalid agent configuration: ${field} ${problem}`);
    this.name = 'AgentConfigError';
  }
}

const ajv = new Ajv({ useDefaults: true, allErrors: false, strict: false });
addFormats.default(ajv);
const check = ajv.compile<AgentConfig>(Schema);

/** Validates a parsed configuration (defaults filled in); throws AgentConfigError naming the first bad field. */
export function parseAgentConfig(raw: unknown): AgentConfig {
  const value = structuredClone(raw);
  if (!check(value)) {
    const e = check.errors![0]!;
    const where = `${e.instancePath || ''}${e.keyword === 'additionalProperties' ? `/${String(e.params.additionalProperty)}` : ''}${e.keyword === 'required' ? `/${String(e.params.missingProperty)}` : ''}`;
    const problem = e.keyword === 'additionalProperties' ? 'is not a known setting' : e.keyword === 'required' ? 'is required' : (e.message ?? 'is invalid');
    throw new AgentConfigError(where.replace(/^\//, '') || '(config)', problem);
  }
  for (const [i, z] of value.zones.entries()) {
    if (z.exitRssi >= z.enterRssi) throw new AgentConfigError(`zones/${i}/exitRssi`, `must be below enterRssi (${z.enterRssi}): hysteresis`);
  }
  if (value.source === 'replay' && !value.replayFile) throw new AgentConfigError('replayFile', 'is required when source is "replay"');
  return value;
}

/** The file AGENT_CONFIG names, with AGENT_GATEWAY_URL and AGENT_SOURCE overriding its values. */
export function loadAgentConfig(env: Record<string, string | undefined> = process.env): AgentConfig {
  const file = env.AGENT_CONFIG;
  if (!file) throw new AgentConfigError('AGENT_CONFIG', 'must name the agent\'s JSON configuration file');
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new AgentConfigError('AGENT_CONFIG', `could not be read as JSON (${(err as Error).message})`);
  }
  if (env.AGENT_GATEWAY_URL) raw.gatewayUrl = env.AGENT_GATEWAY_URL;
  if (env.AGENT_SOURCE) raw.source = env.AGENT_SOURCE;
  // Relative paths in the file are relative to the file.
  const base = path.dirname(path.resolve(file));
  const config = parseAgentConfig(raw);
  const resolve = (p: string) => path.resolve(base, p);
  return { ...config, privateKeyFile: resolve(config.privateKeyFile), dataDir: resolve(config.dataDir), ...(config.replayFile ? { replayFile: resolve(config.replayFile) } : {}) };
}
