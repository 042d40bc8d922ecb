/**
 * The agent's durable outbox: presence events wait here, on disk, until the gateway has taken them. A crash,
 * a power cut or a week without network loses nothing that append() had returned for.
 *
 * Words
 * - segment: an append-only JSON-lines file `seg-000001.jsonl`, one event per line. A new one starts when the
 *   current one would pass `segmentBytes`; the numbers only grow.
 * - head: the position (segment, byte offset) of the oldest unacknowledged event. It lives in `ack.json`,
 *   replaced atomically (write a temporary file, fsync, rename, fsync the directory), so after a crash it is
 *   the old or the new position, never half of one. A segment wholly before the head is deleted.
 * - torn line: the end of a segment without its newline, left by a crash in the middle of a write. It was never
 *   acknowledged to the caller (append() had not returned), so reopening cuts it off and counts it.
 *
 * Memory stays bounded whatever the backlog: the outbox keeps counts, segment sizes and the positions of the
 * events the last peek() returned, never the pending events themselves. peek() reads from the head in 64 KiB
 * chunks. Nothing is deduplicated here: delivery is at least once, and the gateway dedupes by event id.
 */
import { mkdir, open, readFile, readdir, rename, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { PresenceEvent } from './types.js';

const SEGMENT_NAME = /^seg-(\d+)\.jsonl$/;
const ACK_FILE = 'ack.json';
const CHUNK_BYTES = 64 * 1024;
const NEWLINE = 0x0a;

export interface OutboxOptions {
  /** A segment is closed and a new one started once it would grow past this (default 1 MiB). */
  segmentBytes?: number;
}

/** What reopening found and repaired. */
export interface Recovery {
  /** Lines cut off the end of a segment (torn by a crash mid-write). */
  tornLines: number;
  /** Complete lines that are not an event (a disk fault); skipped. */
  corruptLines: number;
  /** The ack pointer was unreadable: every event on disk is pending again (the gateway dedupes). */
  pointerLost: boolean;
}

interface Position {
  segment: number;
  offset: number;
}

const segmentName = (n: number) => `seg-${String(n).padStart(6, '0')}.jsonl`;

export class Outbox {
  readonly dir: string;
  readonly recovery: Recovery;
  readonly #segmentBytes: number;
  /** Existing segments, oldest first, with their sizes in bytes. The last one is being written. */
  readonly #sizes: Map<number, number>;
  #head: Position;
  #writer: FileHandle;
  #pending: number;
  /** Where each event that the last peek() returned ends, so that ack() need not read them again. */
  #window: Position[] = [];
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(dir: string, segmentBytes: number, sizes: Map<number, number>, head: Position, writer: FileHandle, pending: number, recovery: Recovery) {
    this.dir = dir;
    this.#segmentBytes = segmentBytes;
    this.#sizes = sizes;
    this.#head = head;
    this.#writer = writer;
    this.#pending = pending;
    this.recovery = recovery;
  }

  /** Opens (or creates) the outbox in `dir`, repairing what a crash left behind. */
  static async open(dir: string, options: OutboxOptions = {}): Promise<Outbox> {
    const segmentBytes = options.segmentBytes ?? 1024 * 1024;
    if (!(segmentBytes > 0)) throw new RangeError(`outbox: segmentBytes must be > 0, got ${segmentBytes}`);
    await mkdir(dir, { recursive: true });
    const recovery: Recovery = { tornLines: 0, corruptLines: 0, pointerLost: false };
    const pointer = await readPointer(dir, recovery);
    let segments = (await readdir(dir)).flatMap((name) => {
      const m = SEGMENT_NAME.exec(name);
      return m ? [Number(m[1])] : [];
    }).sort((a, b) => a - b);
    // Segments before the pointer's were fully acknowledged; a crash came before their deletion.
    for (const n of segments.filter((s) => pointer && s < pointer.segment)) await rm(path.join(dir, segmentName(n)), { force: true });
    segments = segments.filter((s) => !pointer || s >= pointer.segment);
    if (segments.length === 0) {
      segments = [(pointer?.segment ?? 0) + 1];
      await (await open(path.join(dir, segmentName(segments[0]!)), 'a')).close();
      await syncDir(dir);
    }
    // The pointer's own segment may be gone too (deleted once acknowledged): start at the next one.
    const head: Position = pointer && pointer.segment === segments[0] ? pointer : { segment: segments[0]!, offset: 0 };

    const sizes = new Map<number, number>();
    let pending = 0;
    for (const n of segments) {
      const from = n === head.segment ? head.offset : 0;
      const { size, events } = await repairSegment(path.join(dir, segmentName(n)), from, recovery);
      sizes.set(n, size);
      pending += events;
    }
    if (head.offset > sizes.get(head.segment)!) head.offset = sizes.get(head.segment)!;
    const writer = await open(path.join(dir, segmentName(segments.at(-1)!)), 'a');
    const outbox = new Outbox(dir, segmentBytes, sizes, head, writer, pending, recovery);
    await outbox.#dropAcknowledgedSegments();
    return outbox;
  }

  /** Events appended and not yet acknowledged. */
  get pending(): number {
    return this.#pending;
  }

  /** Bytes the segments take on disk (acknowledged lines of the oldest segment included). */
  get bytesOnDisk(): number {
    let total = 0;
    for (const size of this.#sizes.values()) total += size;
    return total;
  }

  /** Appends events in order; they are on disk (fsync) when this resolves. */
  append(events: readonly PresenceEvent[]): Promise<void> {
    if (events.length === 0) return Promise.resolve();
    const data = Buffer.from(events.map((e) => `${JSON.stringify(e)}\n`).join(''));
    return this.#exclusive(async () => {
      let tail = this.#tailSegment();
      if (this.#sizes.get(tail)! > 0 && this.#sizes.get(tail)! + data.length > this.#segmentBytes) tail = await this.#rotate();
      const size = this.#sizes.get(tail)!;
      try {
        await this.#writer.writeFile(data);
        await this.#writer.sync();
      } catch (err) {
        // A partial line would glue itself to the next append: cut it off before reporting the failure.
        await this.#writer.truncate(size).catch(() => {});
        throw err;
      }
      this.#sizes.set(tail, size + data.length);
      this.#pending += events.length;
    });
  }

  /** The oldest `max` unacknowledged events, oldest first (fewer if fewer are pending). */
  peek(max: number): Promise<PresenceEvent[]> {
    return this.#exclusive(() => this.#read(max));
  }

  /** Acknowledges the `n` oldest pending events: they will never be returned again, even after a crash. */
  ack(n: number): Promise<void> {
    if (!Number.isInteger(n) || n < 0) return Promise.reject(new RangeError(`outbox: ack count must be a whole number, got ${n}`));
    return this.#exclusive(async () => {
      if (n === 0) return;
      if (n > this.#pending) throw new RangeError(`outbox: cannot acknowledge ${n} events, ${this.#pending} pending`);
      if (this.#window.length < n) await this.#read(n);
      const head = this.#window[n - 1]!;
      await writePointer(this.dir, head);
      this.#head = head;
      this.#window = this.#window.slice(n);
      this.#pending -= n;
      await this.#dropAcknowledgedSegments();
    });
  }

  /** Waits for the operations under way, then closes the file being written. */
  close(): Promise<void> {
    return this.#exclusive(() => this.#writer.close());
  }

  // One operation at a time: appends must not interleave, and peek must never see half a line.
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  #tailSegment(): number {
    return [...this.#sizes.keys()].at(-1)!;
  }

  async #read(max: number): Promise<PresenceEvent[]> {
    const events: PresenceEvent[] = [];
    const window: Position[] = [];
    for (const segment of this.#sizes.keys()) {
      if (events.length >= max) break;
      if (segment < this.#head.segment) continue;
      const from = segment === this.#head.segment ? this.#head.offset : 0;
      const handle = await open(path.join(this.dir, segmentName(segment)), 'r');
      try {
        await scanLines(handle, from, (text, end) => {
          const event = parseEvent(text);
          if (event) {
            events.push(event);
            window.push({ segment, offset: end });
          }
          return events.length < max;
        });
      } finally {
        await handle.close();
      }
    }
    this.#window = window;
    return events;
  }

  async #rotate(): Promise<number> {
    const next = this.#tailSegment() + 1;
    const writer = await open(path.join(this.dir, segmentName(next)), 'a');
    await syncDir(this.dir);
    await this.#writer.close();
    this.#writer = writer;
    this.#sizes.set(next, 0);
    await this.#dropAcknowledgedSegments();
    return next;
  }

  /**
   * Deletes segments the head has passed. The pointer on disk may still name a deleted segment: reopening
   * then starts at the next one, which is the same place.
   */
  async #dropAcknowledgedSegments(): Promise<void> {
    const tail = this.#tailSegment();
    while (this.#head.segment !== tail && this.#head.offset >= this.#sizes.get(this.#head.segment)!) {
      const next = [...this.#sizes.keys()].find((s) => s > this.#head.segment)!;
      this.#head = { segment: next, offset: 0 };
    }
    for (const segment of [...this.#sizes.keys()].filter((s) => s < this.#head.segment)) {
      await rm(path.join(this.dir, segmentName(segment)), { force: true });
      this.#sizes.delete(segment);
    }
  }
}

/** Appends one JSON line to a file, durably (file and directory fsynced): for the dead-letter file. */
export async function appendJsonLine(file: string, value: unknown): Promise<void> {
  const handle = await open(file, 'a');
  try {
    await handle.writeFile(`${JSON.stringify(value)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  // The file may be new: its directory entry must survive a crash as well as its bytes.
  await syncDir(path.dirname(file));
}

function parseEvent(text: string): PresenceEvent | null {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'object' && value !== null && typeof (value as { id?: unknown }).id === 'string' ? (value as PresenceEvent) : null;
  } catch {
    return null;
  }
}

/**
 * Calls onLine with each complete line from `from` on (its text and the offset just past its newline) until
 * onLine returns false or the file ends. Returns the offset just past the last complete line read.
 */
async function scanLines(handle: FileHandle, from: number, onLine: (text: string, end: number) => boolean): Promise<number> {
  const chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  let rest = Buffer.alloc(0);
  let lineStart = from;
  for (;;) {
    const { bytesRead } = await handle.read(chunk, 0, CHUNK_BYTES, lineStart + rest.length);
    if (bytesRead === 0) return lineStart;
    const buf = rest.length > 0 ? Buffer.concat([rest, chunk.subarray(0, bytesRead)]) : chunk.subarray(0, bytesRead);
    let start = 0;
    // 0x0a never occurs inside a multi-byte UTF-8 sequence, so every line decodes on its own.
    for (let nl = buf.indexOf(NEWLINE); nl !== -1; nl = buf.indexOf(NEWLINE, start)) {
      const text = buf.toString('utf8', start, nl);
      start = nl + 1;
      if (!onLine(text, lineStart + start)) return lineStart + start;
    }
    lineStart += start;
    rest = Buffer.from(buf.subarray(start)); // a copy: `chunk` is overwritten by the next read
  }
}

/** Counts the events of a segment from `from` on, cutting off a torn last line. Returns the size kept. */
async function repairSegment(file: string, from: number, recovery: Recovery): Promise<{ size: number; events: number }> {
  const handle = await open(file, 'r+');
  try {
    const { size } = await handle.stat();
    let events = 0;
    const end = await scanLines(handle, Math.min(from, size), (text) => {
      if (parseEvent(text)) events++;
      else recovery.corruptLines++;
      return true;
    });
    if (end < size && end >= from) {
      await handle.truncate(end);
      await handle.sync();
      recovery.tornLines++;
      return { size: end, events };
    }
    return { size, events };
  } finally {
    await handle.close();
  }
}

async function readPointer(dir: string, recovery: Recovery): Promise<Position | null> {
  let text: string;
  try {
    text = await readFile(path.join(dir, ACK_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  try {
    const p = JSON.parse(text) as Partial<Position>;
    if (Number.isSafeInteger(p.segment) && Number.isSafeInteger(p.offset) && p.offset! >= 0) return { segment: p.segment!, offset: p.offset! };
  } catch {
    // fall through
  }
  recovery.pointerLost = true;
  return null;
}

async function writePointer(dir: string, head: Position): Promise<void> {
  const temp = path.join(dir, `${ACK_FILE}.tmp`);
  const handle = await open(temp, 'w');
  try {
    await handle.writeFile(JSON.stringify(head));
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temp, path.join(dir, ACK_FILE));
  await syncDir(dir);
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
