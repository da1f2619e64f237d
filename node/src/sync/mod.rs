//! Federation sync, the client side: every member's envelopes reach every member
//! allowed to have them.
//!
//! Per configured peer, a task pulls `GET /federation/v1/feed` from a persisted cursor
//! until caught up, then waits; new envelopes are pushed to peers as soon as they are
//! accepted (`POST /federation/v1/envelopes`), and pull repairs whatever a push missed.
//! Failures back off exponentially with jitter, per peer: a peer that is down does not
//! slow the others. Cursors advance only after what was pulled is durable. What both
//! sides share (peer state, policy, the accept path) is in `node::peers` and
//! `node::receive`.
//!
//! Loops cannot happen: envelopes are deduplicated by id, a node never sends an
//! envelope to its origin or back to the peer it came from, and only clear/green
//! travel beyond their origin.

pub mod client;
mod run;

pub use run::spawn;
