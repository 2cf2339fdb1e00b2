-- One digest across several lists (digest::combined). A person who chose
-- it has a row here: the schedule they chose (a name of [site]
-- combined_schedules), the format, and the lists it covers in their order
-- (a JSON array of codes). When a covered list issues its digest, each of
-- the person's subscriptions to it that would get the digest is owed it
-- instead (combined_owed), in the same transaction, and gets no delivery of
-- its own. The person's next digest across lists takes every digest owed
-- and deletes those rows in the transaction that queues it: a post reaches
-- the person once, in one digest across lists, never also in a list's.

CREATE TABLE combined (
    person_id INTEGER PRIMARY KEY REFERENCES people (id),
    schedule TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('mime', 'plain', 'html', 'summary')),
    lists TEXT NOT NULL,
    -- The schedule slot (Unix seconds) last decided.
    last_slot INTEGER NOT NULL
);

CREATE TABLE combined_owed (
    person_id INTEGER NOT NULL,
    digest_id INTEGER NOT NULL REFERENCES digests (id),
    subscriber_id INTEGER NOT NULL REFERENCES subscribers (id),
    PRIMARY KEY (person_id, digest_id)
) WITHOUT ROWID;

-- What a subscription is owed, dropped when it ends or is disabled.
CREATE INDEX combined_owed_by_subscriber ON combined_owed (subscriber_id);

-- The digests across lists sent or failed whose bytes are still kept
-- (outgoing::prune_combined empties them).
CREATE INDEX outgoing_combined_to_prune ON outgoing (id)
    WHERE kind = 'combined' AND state IN ('sent', 'failed') AND length(message) > 0;
