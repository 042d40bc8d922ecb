import { parsePhoneNumberFromString } from 'libphonenumber-js/max';
import { AppError } from '../errors.js';
import type { Sql } from '../db/database.js';

export interface Member {
  id: string;
  externalRef: string | null;
  phone: string | null;
  timeZone: string;
  createdAt: string;
}

interface MemberRow {
  id: string;
  external_ref: string | null;
  phone_e164: string | null;
  time_zone: string;
  created_at: Date;
}

const toMember = (r: MemberRow): Member => ({
  id: r.id,
  externalRef: r.external_ref,
  phone: r.phone_e164,
  timeZone: r.time_zone,
  createdAt: r.created_at.toISOString(),
});

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
  input: { phone?: string; timeZone?: string; externalRef?: string },
): Promise<Member> {
  const phone = input.phone === undefined ? null : normalizePhone(input.phone);
  const timeZone = input.timeZone ?? 'UTC';
  if (!isTimeZone(timeZone)) throw new AppError('VALIDATION_FAILED', `body/timeZone "${timeZone}" is not an IANA time zone`);
  const rows = await db.query<MemberRow>(
    `INSERT INTO members (phone_e164, time_zone, external_ref) VALUES ($1, $2, $3)
     ON CONFLICT DO NOTHING RETURNING *`,
    [phone, timeZone, input.externalRef ?? null],
  );
  if (!rows[0]) {
    const taken = phone && (await db.query('SELECT 1 FROM members WHERE phone_e164 = $1', [phone])).length > 0;
    throw taken
      ? new AppError('PHONE_TAKEN', `phone ${phone} already belongs to a member`)
      : new AppError('VALIDATION_FAILED', `externalRef "${input.externalRef}" already belongs to a member`);
  }
  return toMember(rows[0]);
}

export async function getMember(db: Sql, id: string): Promise<Member> {
  const [row] = await db.query<MemberRow>('SELECT * FROM members WHERE id = $1', [id]);
  if (!row) throw new AppError('MEMBER_NOT_FOUND', `member ${id} does not exist`);
  return toMember(row);
}
