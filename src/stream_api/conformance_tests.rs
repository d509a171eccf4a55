//! Unit tests of the conformance checker, fed events directly (no gRPC).
use super::*;
