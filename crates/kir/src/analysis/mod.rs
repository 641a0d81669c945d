//! KIR analyses (being written).
