-- Schema 3: which process pushes this member's envelopes to each peer.
--
-- Every process accepts publishes, but one push per peer is enough: the holder of a
-- peer's push lease reads the shared feed and pushes what this member published, by
-- whichever process, as the embedded node does; the others leave that peer alone. The
-- lease works as a pull lease does (taken or renewed by one statement against the
-- database's clock). Reference table.
CREATE TABLE push_leases (
    peer       text        PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);
