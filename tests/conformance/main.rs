//! Conformance: our validator, pattern grammar, generator, envelope test vectors and
//! JSON Schemas, each compared with the OASIS reference tools or a published
//! reference. One test binary (its modules were five) so that CI links it once.

#[path = "../common/mod.rs"]
mod common;

mod gen_valid;
mod membership_vectors;
mod pattern_reference;
mod schemas;
mod test_vectors;
mod validator_reference;
