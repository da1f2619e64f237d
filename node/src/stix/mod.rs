//! STIX 2.1: object models, validation, patterning, observables and TLP markings.

pub mod model;
pub mod timestamp;
pub mod validate;
