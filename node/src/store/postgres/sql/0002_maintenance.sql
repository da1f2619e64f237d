-- Schema 2: what maintenance needs: envelopes `synergia rebuild` set aside, and the
-- serve processes it must not run beside.
--
-- An envelope of the evidence log that no longer verifies against the roster (its key
-- was revoked, say) leaves the view and the feed, as on the embedded store, but is
-- kept verbatim as evidence: here, with why. Every rebuild checks these again, and
-- one that verifies once more goes back into the log at a new feed position, so that
-- peers whose cursors passed its old one see it. Distribution column: id.
CREATE TABLE envelopes_set_aside (
    id              bytea  NOT NULL PRIMARY KEY,
    ordinal         bigint NOT NULL,
    received_from   text   NOT NULL,
    received_at     bigint NOT NULL,
    date_added_base bigint NOT NULL,
    reason          text   NOT NULL,
    set_aside_at    bigint NOT NULL,
    body            bytea  NOT NULL
);

-- The member's `serve` processes, each seen every two seconds while it runs and gone
-- when it stops: maintenance that must not run beside them (`synergia rebuild`) asks
-- here. Reference table.
CREATE TABLE serve_processes (
    holder     text        PRIMARY KEY,
    listen     text        NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL
);
