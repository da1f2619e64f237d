//! Observable keys.
