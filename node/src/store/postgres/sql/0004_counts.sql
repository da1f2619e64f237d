-- Schema 4: what the store holds, counted as it is stored.
--
-- `stats` and `/metrics` read these instead of counting the tables: a count of
-- 10M versions (and of their distinct objects) takes seconds and would run at every
-- metrics scrape. They sit on the feed head's row, which every transaction that adds
-- to the store locks and updates already, so they move in the same transaction as
-- what they count and are exact. Applied to a database that holds data, this
-- migration counts it once.
ALTER TABLE feed_head
    ADD COLUMN envelopes   bigint NOT NULL DEFAULT 0,
    ADD COLUMN versions    bigint NOT NULL DEFAULT 0,
    ADD COLUMN objects     bigint NOT NULL DEFAULT 0,
    ADD COLUMN retractions bigint NOT NULL DEFAULT 0;
UPDATE feed_head SET
    envelopes   = (SELECT count(*) FROM envelopes),
    versions    = (SELECT count(*) FROM versions),
    objects     = (SELECT count(*) FROM (SELECT DISTINCT uuid, type FROM versions) o),
    retractions = (SELECT count(*) FROM retractions);
