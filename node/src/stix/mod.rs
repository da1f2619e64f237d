//! STIX 2.1: object models, validation, patterning, observables and TLP markings.

pub mod observable;
pub mod pattern;
pub mod timestamp;
