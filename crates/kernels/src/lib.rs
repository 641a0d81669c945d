//! Reference kernels (being written).
