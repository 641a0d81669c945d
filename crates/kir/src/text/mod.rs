//! The KIR text format (being written).
