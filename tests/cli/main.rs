//! The command line against real nodes and files: every command, key management, and
//! offline validation. One test binary (its modules were three) so that CI links it
//! once.

#[path = "../common/mod.rs"]
mod common;

mod commands;
mod keys;
mod roster;
mod validate;
