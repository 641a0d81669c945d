//! The KIR verifier (being written).
