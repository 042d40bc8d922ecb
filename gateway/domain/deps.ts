import type { Config } from '../config.js';
import type { Database } from '../db/database.js';
import type { JobQueue } from '../queue/port.js';
import type { SmsSender } from '../sms/sender.js';

/** What the gateway's services are built from; tests pass their own clock. */
export interface Deps {
  config: Config;
  db: Database;
  queue: JobQueue;
  sms: SmsSender;
  now: () => Date;
}
