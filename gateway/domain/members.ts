import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { AppError, invalid } from '../errors.js';
import type { Sql } from '../db/database.js';

export interface Member {
  id: string;
  externalRef: string | null;
  phone: string | null;
  timeZone: string;
  tier: string | null;
  tags: string[];
  homeStoreId: string | null;
  createdAt: string;
}

interface MemberRow {
  id: string;
  external_ref: string | null;
  phone_e164: string | null;
  time_zone: string;
  tier: string | null;
  tags: string[];
  home_store_id: string | null;
  created_at: Date;
}

const toMember = (r: MemberRow): Member => ({
  id: r.id,
  externalRef: r.external_ref,
  phone: r.phone_e164,
  timeZone: r.time_zone,
  tier: r.tier,
  tags: r.tags,
  homeStoreId: r.home_store_id,
  createdAt: r.created_at.toISOString(),
});

export interface MemberFacts {
  tier?: string | null;
  tags?: string[];
  homeStoreId?: string | null;
}

async function checkHomeStore(db: Sql, facts: MemberFacts) {
  if (!facts.homeStoreId) return;
  const [store] = await db.query('SELECT 1 FROM stores WHERE id = $1', [facts.homeStoreId]);
  if (!store) throw new AppError('STORE_NOT_FOUND', `store ${facts.homeStoreId} does not exist`);
}

/** The facts audiences are built on: tier, segment tags, home store. Fields left out stay as they are. */
export async function updateMemberFacts(db: Sql, id: string, facts: MemberFacts): Promise<Member> {
  await checkHomeStore(db, facts);
  const [row] = await db.query<MemberRow>(
    `UPDATE members SET
        tier = CASE WHEN $2 THEN $3 ELSE tier END,
        tags = CASE WHEN $4 THEN $5::text[] ELSE tags END,
        home_store_id = CASE WHEN $6 THEN $7::uuid ELSE home_store_id END
      WHERE id = $1 RETURNING *`,
    [id, facts.tier !== undefined, facts.tier ?? null, facts.tags !== undefined, facts.tags ?? [], facts.homeStoreId !== undefined, facts.homeStoreId ?? null],
  );
  if (!row) throw new AppError('MEMBER_NOT_FOUND', `member ${id} does not exist`);
  return toMember(row);
}

/** Accepts only a number already in E.164 form that is a valid number for its country. */
export function normalizePhone(input: string): string {
  const parsed = /^\+[1-9]\d{6,14}$/.test(input) ? parsePhoneNumberFromString(input) : undefined;
  if (!parsed?.isValid()) {
    throw new AppError('PHONE_INVALID', `phone "${input}" is not a valid E.164 number such as +14155550123`);
  }
  return parsed.number;
}

export function isTimeZone(name: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: name });
    return true;
  } catch {
    return false;
  }
}

export async function createMember(
  db: Sql,
  input: { phone?: string; timeZone?: string; externalRef?: string; joinedVia?: 'operator' | 'app' } & MemberFacts,
): Promise<Member> {
  const phone = input.phone === undefined ? null : normalizePhone(input.phone);
  const timeZone = input.timeZone ?? 'UTC';
  if (!isTimeZone(timeZone)) throw invalid({ field: 'body/timeZone', problem: `"${timeZone}" is not an IANA time zone` });
  await checkHomeStore(db, input);
  const rows = await db.query<MemberRow>(
    `INSERT INTO members (phone_e164, time_zone, external_ref, tier, tags, home_store_id, joined_via) VALUES ($1, $2, $3, $4, $5::text[], $6, $7)
     ON CONFLICT DO NOTHING RETURNING *`,
    [phone, timeZone, input.externalRef ?? null, input.tier ?? null, input.tags ?? [], input.homeStoreId ?? null, input.joinedVia ?? 'operator'],
  );
  if (!rows[0]) {
    const taken = phone && (await db.query('SELECT 1 FROM members WHERE phone_e164 = $1', [phone])).length > 0;
    throw taken
      ? new AppError('PHONE_TAKEN', `phone ${phone} already belongs to a member`)
      : new AppError('EXTERNAL_REF_TAKEN', `externalRef "${input.externalRef}" already belongs to a member`);
  }
  return toMember(rows[0]);
}

export async function getMember(db: Sql, id: string): Promise<Member> {
  const [row] = await db.query<MemberRow>('SELECT * FROM members WHERE id = $1', [id]);
  if (!row) throw new AppError('MEMBER_NOT_FOUND', `member ${id} does not exist`);
  return toMember(row);
}
