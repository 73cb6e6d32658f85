"""The claim as one statement: pick group heads, lock them with SKIP LOCKED and lease them.

It does in the database what ``store.select_claimable`` + ``store.keep_locked_prefix`` do in
Python for the stepwise claim (kept for reference and unit tests), in a single round trip
(autocommit: no BEGIN/COMMIT trips either). Profiling the stepwise claim showed five statements
and two transaction trips per pass, each waiting on the server; one statement removes the waits
and the Python work on candidate rows.

- ``cand0``: the first ``scan`` pending rows in id order. A group present has its true head here.
- ``cand1``: only when that window is full and yields fewer than ``claim`` rows (a few busy
  groups crowd it), the next rows of *other* groups, so one aggregate's backlog cannot hide the
  rest. Its conditions are uncorrelated, so PostgreSQL skips the scan when they are false.
- ``ranked``: per group, whether any row is leased (a stale lease of a stalled relay: the group
  waits), and how many not-due rows precede a row (a row scheduled for later holds back the
  rows behind it). The head must be due.
- ``chosen``: up to ``rpg`` rows per group, groups by head id, at most ``claim`` rows. cand1's
  groups are disjoint from cand0's and all its ids larger, so its rows simply come after
  chosen0's: each window is ranked once, and the empty cand1 costs nothing.
- Groups are partitioned with COLLATE "C": the same equality as any deterministic collation,
  without the locale-aware comparisons that dominated the sort.
- ``locked``: FOR UPDATE SKIP LOCKED on the chosen set only, re-checking the lease and due time
  under the lock; it returns the row's first_sent_at *before* the lease (the UPDATE's RETURNING
  sees only the new value).
- ``kept``: of each group, the rows before the first one someone else holds: a gap-free prefix,
  so SKIP LOCKED never slides past a locked head.
The lease starts at clock_timestamp(), when the rows are leased (see store.py).
Each claim reads one destination's rows (``destination``): a group is (destination, aggregate),
so a destination that fails holds back only its own rows (docs/destinations.md).
"""

from __future__ import annotations

_RANK = """
  SELECT id, aggregate_type AS t, aggregate_key AS k,
         min(id) OVER g AS head_id,
         row_number() OVER w AS rn,
         bool_or(leased) OVER g AS group_leased,
         count(*) FILTER (WHERE NOT due) OVER w AS not_due
  FROM {src}
  WINDOW g AS (PARTITION BY aggregate_type COLLATE "C", aggregate_key COLLATE "C"),
         w AS (PARTITION BY aggregate_type COLLATE "C", aggregate_key COLLATE "C" ORDER BY id)
"""
_PICK = """
  SELECT id, t, k, head_id FROM {src}
  WHERE NOT group_leased AND not_due = 0 AND rn <= %(rpg)s
  ORDER BY head_id, id LIMIT {limit}
"""
_CANDIDATE_COLUMNS = """id, aggregate_type, aggregate_key,
         available_at <= now() AS due,
         coalesce(lease_expires_at > now(), false) AS leased"""

CLAIM = (
    """
WITH cand0 AS MATERIALIZED (
  SELECT """
    + _CANDIDATE_COLUMNS
    + """
  FROM "{s}".outbox WHERE state = 'pending' AND destination = %(destination)s
  ORDER BY id LIMIT %(scan)s
),
ranked0 AS ("""
    + _RANK.format(src="cand0")
    + """),
chosen0 AS ("""
    + _PICK.format(src="ranked0", limit="%(claim)s")
    + """),
cand1 AS MATERIALIZED (
  SELECT """
    + _CANDIDATE_COLUMNS
    + """
  FROM "{s}".outbox
  WHERE state = 'pending' AND destination = %(destination)s
    AND (SELECT count(*) FROM cand0) = %(scan)s
    AND (SELECT count(*) FROM chosen0) < %(claim)s
    AND id > (SELECT max(id) FROM cand0)
    AND (aggregate_type, aggregate_key) NOT IN (SELECT aggregate_type, aggregate_key FROM cand0)
  ORDER BY id LIMIT %(scan)s
),
ranked1 AS ("""
    + _RANK.format(src="cand1")
    + """),
chosen1 AS ("""
    + _PICK.format(src="ranked1", limit="%(claim)s - (SELECT count(*) FROM chosen0)")
    + """),
chosen AS (SELECT * FROM chosen0 UNION ALL SELECT * FROM chosen1),
locked AS (
  SELECT o.id, o.first_sent_at FROM "{s}".outbox AS o
  WHERE o.id IN (SELECT id FROM chosen) AND o.state = 'pending'
    AND (o.lease_expires_at IS NULL OR o.lease_expires_at <= now()) AND o.available_at <= now()
  FOR UPDATE SKIP LOCKED
),
kept AS (
  SELECT id, first_sent_at FROM (
    SELECT c.id, l.first_sent_at,
           bool_and(l.id IS NOT NULL)
             OVER (PARTITION BY c.t COLLATE "C", c.k COLLATE "C" ORDER BY c.id) AS prefix
    FROM chosen AS c LEFT JOIN locked AS l ON l.id = c.id
  ) AS p WHERE prefix
),
token AS (SELECT nextval('"{s}".outbox_lease_seq') AS token WHERE EXISTS (SELECT 1 FROM kept))
UPDATE "{s}".outbox AS o
SET lease_owner = %(owner)s, lease_token = token.token,
    lease_expires_at = clock_timestamp() + make_interval(secs => %(lease)s),
    send_count = o.send_count + 1,
    first_sent_at = coalesce(o.first_sent_at, now())
FROM kept, token
WHERE o.id = kept.id
RETURNING o.id, o.event_id, o.aggregate_type, o.aggregate_key, o.event_type, o.payload::text,
          o.headers::text, o.created_at, o.attempts, kept.first_sent_at, clock_timestamp() AS claimed_at,
          o.lease_token
"""
)
