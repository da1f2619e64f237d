//! What each STIX 2.1 object type must contain, and the checks that walk a document.
//!
//! Properties are described by small static tables (name, required, kind) so the
//! common path is one loop per object; rules that relate several properties live in
//! per-type functions.
//!
//! The job is split four ways, each module using only those before it:
//! - `kinds`: what a property's value may be ([`kinds::Kind`]), property tables
//!   ([`kinds::Prop`]), object classes and the type lists;
//! - `values`: the checks of one value (strings, lists, references, vocabularies,
//!   timestamps, external references, granular markings, extensions);
//! - `types`: the rules of one type that relate several of its properties;
//! - `table`: the table of every type's properties and its extra rule;
//! - `walk`: the walk over a bundle and its objects that applies them.

mod kinds;
mod table;
mod types;
mod values;
mod walk;

pub(crate) use kinds::SCO_TYPES;
#[cfg(test)]
pub(crate) use kinds::SDO_TYPES;
pub(crate) use walk::{bundle, object};
