//! Unit tests for the pattern parser.
