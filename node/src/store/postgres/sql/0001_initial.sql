-- Schema 1: everything a node stores, in PostgreSQL.
--
-- Times are microseconds since the Unix epoch (bigint), as in the embedded store, so
-- that both backends order and compare them alike. Hashes and ids are bytea. No
-- foreign keys and no advisory locks: every table can be distributed on Citus as
-- docs/scaling.md says (the distribution column of each is named below).

-- Node-wide values: the log epoch, the recovery flag, and the row a publish locks
-- while it signs this member's next sequence numbers (`publish-turn`). Reference
-- table.
CREATE TABLE node_meta (
    key   text PRIMARY KEY,
    value bytea NOT NULL
);
INSERT INTO node_meta (key, value) VALUES ('publish-turn', '\x');

-- The feed head, one row. Every transaction that adds envelopes locks it first and
-- takes its ordinals and `date_added` values from it, so transactions that add to the
-- feed commit in the order of their positions and no reader ever sees a position
-- before a lower one has committed (protocol.md, "Feed positions"). Reference table.
CREATE TABLE feed_head (
    one             boolean PRIMARY KEY DEFAULT true CHECK (one),
    next_ordinal    bigint NOT NULL,
    last_date_added bigint NOT NULL
);
INSERT INTO feed_head (one, next_ordinal, last_date_added) VALUES (true, 0, 0);

-- The evidence log: every accepted envelope, verbatim (RFC 8785 bytes). Rows are
-- inserted and never updated. Distribution column: id.
CREATE TABLE envelopes (
    id              bytea   NOT NULL PRIMARY KEY,
    ordinal         bigint  NOT NULL,
    origin          text    NOT NULL,
    key_id          text    NOT NULL,
    seq             bigint  NOT NULL,
    signed_at       bigint  NOT NULL,
    tlp             smallint NOT NULL,
    recipients      text[]  NOT NULL,
    received_from   text    NOT NULL,
    received_at     bigint  NOT NULL,
    date_added_base bigint  NOT NULL,
    retraction      boolean NOT NULL,
    object_count    integer NOT NULL,
    body            bytea   NOT NULL
);
-- Positions are unique by construction (taken under the feed_head lock); the index is
-- not UNIQUE so that the table can be distributed on id.
CREATE INDEX envelopes_ordinal ON envelopes (ordinal);
CREATE INDEX envelopes_origin_seq ON envelopes (origin, seq);
-- Bodies are read whole; stored uncompressed, out of line.
ALTER TABLE envelopes ALTER COLUMN body SET STORAGE EXTERNAL;

-- The greatest sequence number held of each origin, and this member's next own one.
-- Distribution column: origin.
CREATE TABLE origin_seqs (
    origin  text   PRIMARY KEY,
    max_seq bigint NOT NULL
);

-- Every object version held: one row per (object, modified, content), and the
-- object's tombstones (flag 16). The body is the object's canonical form, as in the
-- envelope that first delivered it. `latest` has bit L set when the version is what
-- a reader at level L (0 clear .. 4 red) sees as the object's latest.
-- Distribution column: uuid.
CREATE TABLE versions (
    uuid        uuid     NOT NULL,
    type        text     NOT NULL,
    modified    bigint   NOT NULL,
    hash        bytea    NOT NULL,
    date_added  bigint   NOT NULL,
    tlp         smallint NOT NULL,
    flags       smallint NOT NULL,
    latest      smallint NOT NULL,
    origin      text     NOT NULL,
    envelope    bytea    NOT NULL,
    body        bytea    NOT NULL,
    PRIMARY KEY (uuid, type, modified, hash)
);
CREATE INDEX versions_date_added ON versions (date_added);
-- A type's versions in `date_added` order (TAXII `match[type]`).
CREATE INDEX versions_type ON versions (type, date_added);
-- Tombstones in a member's collection: those of the versions it delivered first.
CREATE INDEX versions_origin_tombstones ON versions (origin, date_added) WHERE flags & 16 <> 0;

-- Every delivery of a version: which envelope carried it, with what the choice of an
-- object's owner and latest version needs of that envelope, and the retraction that
-- took it back, if any. Distribution column: uuid.
CREATE TABLE deliveries (
    uuid         uuid     NOT NULL,
    type         text     NOT NULL,
    modified     bigint   NOT NULL,
    hash         bytea    NOT NULL,
    envelope     bytea    NOT NULL,
    origin       text     NOT NULL,
    signed_at    bigint   NOT NULL,
    tlp          smallint NOT NULL,
    retracted_by bytea,
    -- The version's `date_added`: a member's collection is paged by it.
    date_added   bigint   NOT NULL,
    PRIMARY KEY (uuid, type, modified, hash, envelope)
);
CREATE INDEX deliveries_envelope ON deliveries (envelope);
CREATE INDEX deliveries_origin ON deliveries (origin, date_added);

-- The tombstones in force (protocol §11): per object, one for each version some
-- reader level must be shown as gone, with that version. Distribution column: uuid.
CREATE TABLE tombstones (
    uuid          uuid   NOT NULL,
    type          text   NOT NULL,
    modified      bigint NOT NULL,
    hash          bytea  NOT NULL,
    base_modified bigint NOT NULL,
    base_hash     bytea  NOT NULL,
    PRIMARY KEY (uuid, type, modified, hash)
);

-- Observable key (normalised, as `stix::observable` makes them) → versions naming it.
-- Distribution column: key.
CREATE TABLE observables (
    key      text   NOT NULL,
    uuid     uuid   NOT NULL,
    type     text   NOT NULL,
    modified bigint NOT NULL,
    hash     bytea  NOT NULL,
    -- For IP addresses and networks: the block, for range lookups.
    net      inet,
    PRIMARY KEY (key, uuid, type, modified, hash)
);
-- A B-tree: `net <<= block` (the blocks inside a range) is planned as a range scan on
-- it, and the networks containing an address are looked up by key.
CREATE INDEX observables_net ON observables (net) WHERE net IS NOT NULL;

-- Retractions held (protocol §11). Distribution column: envelope.
CREATE TABLE retractions (
    envelope bytea    PRIMARY KEY,
    origin   text     NOT NULL,
    reason   smallint NOT NULL,
    note     text     NOT NULL,
    targets  integer  NOT NULL
);
-- What each retraction names, held or not yet. Distribution column: target id / uuid.
CREATE TABLE retracted_envelopes (
    target     bytea NOT NULL,
    retraction bytea NOT NULL,
    origin     text  NOT NULL,
    PRIMARY KEY (target, retraction)
);
CREATE TABLE retracted_objects (
    uuid       uuid   NOT NULL,
    type       text   NOT NULL,
    retraction bytea  NOT NULL,
    origin     text   NOT NULL,
    -- The version named, or every version when NULL.
    modified   bigint
);
CREATE INDEX retracted_objects_object ON retracted_objects (uuid, type);

-- The per-level view digests (sum of contributions mod 2^256, four 64-bit limbs) and
-- the two shared ones peers compare. Level 0..4 = clear..red; 10, 11 = shared clear,
-- green. Updated under the feed_head lock. Reference table.
CREATE TABLE digests (
    level smallint PRIMARY KEY,
    l0    bigint NOT NULL,
    l1    bigint NOT NULL,
    l2    bigint NOT NULL,
    l3    bigint NOT NULL,
    count bigint NOT NULL
);
INSERT INTO digests (level, l0, l1, l2, l3, count)
SELECT l, 0, 0, 0, 0, 0 FROM unnest(ARRAY[0, 1, 2, 3, 4, 10, 11]) AS l;

-- Small keyed values, as the embedded engine's spaces: peer cursors and counters,
-- TAXII status resources, deferred envelopes. Distribution column: key.
CREATE TABLE kv (
    space text  NOT NULL,
    key   bytea NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (key, space)
);

-- Which process runs each peer's pull, until when (docs/scaling.md, "Several
-- processes of one member").
-- Reference table.
CREATE TABLE pull_leases (
    peer       text        PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);
