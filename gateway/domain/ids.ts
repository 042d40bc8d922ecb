// Ids that arrive outside a validated body (headers, callback URLs, key strings) are checked here before they
// reach a uuid column: a malformed one is "not found", never a database error.
export const UUID_SOURCE = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const UUID = new RegExp(`^${UUID_SOURCE}$`, 'i');

export const isUuid = (s: string): boolean => UUID.test(s);
