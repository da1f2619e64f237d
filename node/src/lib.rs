//! Synergia: a federation node for signed STIX 2.1 threat-intelligence sharing.
//!
//! The crate is a library with a thin binary (`src/main.rs`): every behaviour lives in
//! a module named after the domain thing it handles.
//!
//! # Layers
//!
//! Modules refer only to modules below them (checked by `tests/layers.rs`, which also
//! refuses cycles between sibling modules; run `cargo test --test layers`):
//!
//! ```text
//! cli (src/main.rs, src/cli/)     the commands
//! demo                            a federation in one process
//! sync        server              client side of federation sync | HTTP: TAXII, node API, federation API
//!      \      /
//!       node                      publish, receive, retract, export; node::peers: peer state,
//!                                 retry set, TLP policy, feed/push lists, peer status
//! store                           evidence log, index engines, the merged view
//! tls                             TLS setups of both ends from config and key files
//! keys                            federation keys and certificates
//! config                          the node's config file
//! membership                      the membership log: the roster as approved changes
//! envelope                        signed envelopes and retractions, canonical JSON, the wire scanner
//! roster                          members and their signing keys
//! workload                        generated STIX content (gen, demo, benchmarks)
//! stix                            validation, patterns, observables, TLP
//! json                            strict JSON reading
//! parallel, allocator             a thread pool; memory given back to the system
//! ```
//!
//! No unsafe code, except the two calls into the allocator's C API in [`allocator`].
#![deny(unsafe_code)]

pub mod allocator;
pub mod config;
pub mod demo;
pub mod envelope;
pub mod json;
pub mod keys;
pub mod membership;
pub mod node;
pub mod parallel;
pub mod roster;
pub mod server;
pub mod stix;
pub mod store;
pub mod sync;
pub mod tls;
pub mod workload;
