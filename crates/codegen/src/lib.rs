//! CUDA C emission and NVRTC compilation (being written).
