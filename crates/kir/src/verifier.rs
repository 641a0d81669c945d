//! The KIR verifier (placeholder signature; the real checks are being written).

use crate::kernel::KernelDef;

/// One verifier finding, naming the entity it concerns (`v3`, `p0`, `i7`, `s1`, `x2`, or `kernel`).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct VerifyError {
    pub entity: String,
    pub message: String,
}

impl std::fmt::Display for VerifyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.entity, self.message)
    }
}

/// Every finding for one kernel.
#[derive(Clone, PartialEq, Eq, Debug, thiserror::Error)]
#[error("kernel `{kernel}` failed verification with {} error(s):\n{}", errors.len(), errors.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
pub struct VerifyErrors {
    pub kernel: String,
    pub errors: Vec<VerifyError>,
}

/// Verifies `kernel`, returning every error found.
pub fn verify(kernel: &KernelDef) -> Result<(), VerifyErrors> {
    let _ = kernel;
    Ok(())
}
