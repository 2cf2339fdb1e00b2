-- A subscriber's pending deliveries, found by subscriber: leaving (one-click
-- unsubscribe above all) and changing mode drop the subscriber's queued and
-- deferred digests and posts. Without these, each such change looked
-- through every pending delivery of every subscriber: while one digest to
-- 100,000 readers is deferred, that is 100,000 rows for each one-click, on
-- the writer thread that every post also waits for. Partial, so an index
-- entry lives only as long as its delivery is pending.
CREATE INDEX deliveries_pending_by_subscriber ON deliveries (subscriber_id)
    WHERE state IN ('queued', 'deferred');
CREATE INDEX post_deliveries_pending_by_subscriber ON post_deliveries (subscriber_id)
    WHERE state IN ('queued', 'deferred');
