// /debug/sessions (issue: live introspection): what an operator asks a running
// relay. Pure: the sessions and the time come in. Bounded: at most `limit`
// sessions are looked at (the oldest, in creation order), whatever the table
// holds, so a scrape of a relay with 100k sessions costs what `limit` costs.
// A session id may be a secret (or a ticket): only its first characters show.

import type { Session } from './session-table';

export interface SessionView {
  /** The id's first 6 characters and its length: enough to find it in a log, not to use it. */
  id: string;
  ageSecs: number;
  idleSecs: number;
  paired: boolean;
  datagrams: number;
  bytes: number;
  transport: 'udp';
}

export interface SessionsView {
  sessions: number;
  paired: number;
  /** Age of the oldest session, in seconds (0 with none). */
  oldestAgeSecs: number;
  shown: number;
  /** More sessions than `limit`: the list holds the oldest ones. */
  truncated: boolean;
  list: SessionView[];
}

const secs = (ms: number): number => Math.round(ms / 100) / 10;

/** The id as logs may show it: a prefix and the length, never the whole. */
export function redactId(id: string): string {
  return `${id.slice(0, 6)}...(${id.length})`;
}

export function describeSessions(all: Iterable<Session>, total: number, paired: number, now: number, limit: number): SessionsView {
  const list: SessionView[] = [];
  for (const s of all) {
    if (list.length >= limit) break;
    list.push({
      id: redactId(s.id),
      ageSecs: secs(now - s.createdAt),
      idleSecs: secs(now - s.lastActive),
      paired: s.paired,
      datagrams: s.forwardedDatagrams,
      bytes: s.forwardedBytes,
      transport: 'udp',
    });
  }
  return { sessions: total, paired, oldestAgeSecs: list[0]?.ageSecs ?? 0, shown: list.length, truncated: total > list.length, list };
}
