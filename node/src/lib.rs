//! Synergia: a federation node for signed STIX 2.1 threat-intelligence sharing.
//!
//! The crate is a library with a thin binary (`src/main.rs`): every behaviour lives in
//! a module named after the domain thing it handles.
//!
//! No unsafe code, except the two calls into the allocator's C API in [`allocator`].
#![deny(unsafe_code)]

pub mod allocator;
pub mod config;
pub mod demo;
pub mod envelope;
pub mod json;
pub mod keys;
pub mod node;
pub mod parallel;
pub mod roster;
pub mod server;
pub mod stix;
pub mod store;
pub mod sync;
pub mod workload;
