//! CUDA runtime (being written).
