//! CPU interpreter for KIR (being written).
