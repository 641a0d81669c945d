//! The simulator as an [`Executor`]: timing only.
//!
//! The serving loop, the engine and the planner's runs take any executor;
//! the simulated GPU takes part by keeping each buffer's type and length
//! (so launches are checked and encoded exactly as on a device, and the
//! bytes that would cross are counted) but no data: a download returns
//! zeros. Its launch times are the simulation's ([`SimGpu::run_bundle`]).
//! Nothing is compiled, so every class is prepared.
//!
//! The watchdog ([`Executor::set_launch_limit`]) bounds simulated time: a
//! launch whose simulated time exceeds the bound is hung
//! ([`ExecError::Hung`]) and the simulator is faulted until recovered, as a
//! device would be.

use std::time::Duration;

use weft_kir::{HostBuffer, Type};
use weft_pack::{
    encode_launch, BufferShape, Bundle, ExecError, Executor, Handle, HandleMap, LaunchArg, Timing, Transfers,
};

use crate::gpu::SimGpu;

const NAME: &str = "simulator";

/// Buffers the simulator pretends to hold.
#[derive(Debug, Default)]
pub struct SimMemory {
    buffers: HandleMap<BufferShape>,
    transfers: Transfers,
    /// The watchdog's bound, in simulated time.
    limit: Option<Duration>,
    /// A launch ran past the bound; cleared by `recover`.
    hung: bool,
}

impl SimMemory {
    fn shape(&self, h: Handle) -> Result<BufferShape, ExecError> {
        self.buffers.get(h).copied().ok_or(ExecError::UnknownBuffer { executor: NAME.into(), handle: h })
    }

    /// Buffers held now.
    pub fn live_buffers(&self) -> usize {
        self.buffers.len()
    }
}

impl Executor for SimGpu {
    fn name(&self) -> &str {
        NAME
    }

    fn alloc(&mut self, elem: Type, len: usize) -> Result<Handle, ExecError> {
        let memory = self.memory_mut();
        Ok(memory.buffers.insert(BufferShape { elem, len }))
    }

    fn free(&mut self, buf: Handle) -> Result<(), ExecError> {
        let memory = self.memory_mut();
        memory.buffers.remove(buf).map(|_| ()).ok_or(ExecError::UnknownBuffer { executor: NAME.into(), handle: buf })
    }

    fn upload(&mut self, buf: Handle, data: &HostBuffer) -> Result<(), ExecError> {
        let memory = self.memory_mut();
        memory.shape(buf)?.check(NAME, buf, data)?;
        memory.transfers.uploads += 1;
        memory.transfers.upload_bytes += data.bytes().len() as u64;
        Ok(())
    }

    fn download(&mut self, buf: Handle) -> Result<HostBuffer, ExecError> {
        let memory = self.memory_mut();
        let shape = memory.shape(buf)?;
        let data = HostBuffer::zeros(shape.elem, shape.len);
        memory.transfers.downloads += 1;
        memory.transfers.download_bytes += data.bytes().len() as u64;
        Ok(data)
    }

    fn zero(&mut self, buf: Handle) -> Result<(), ExecError> {
        self.memory_mut().shape(buf).map(|_| ())
    }

    fn launch(&mut self, bundle: &Bundle, args: &[Vec<LaunchArg>]) -> Result<Timing, ExecError> {
        let memory = self.memory();
        let encoded = encode_launch(NAME, bundle, args, |h| memory.buffers.get(h).copied(), |h| h.0)?;
        let timing = self.run_bundle(bundle).map_err(|e| ExecError::backend(NAME, e))?;
        let memory = self.memory_mut();
        if let Some(limit) = memory.limit {
            let ran = Duration::try_from_secs_f64(timing.total_us.max(0.0) / 1e6).unwrap_or(Duration::MAX);
            if ran > limit {
                memory.hung = true;
                return Err(ExecError::hung(NAME, limit, ran));
            }
        }
        memory.transfers.launches += 1;
        memory.transfers.launch_bytes += encoded.bytes();
        Ok(timing)
    }

    /// Drops every buffer, as a rebuilt device context would hold none.
    fn recover(&mut self) -> Result<(), ExecError> {
        let memory = self.memory_mut();
        memory.buffers.clear();
        memory.hung = false;
        Ok(())
    }

    fn is_faulted(&self) -> bool {
        self.memory().hung
    }

    fn set_launch_limit(&mut self, limit: Option<Duration>) {
        self.memory_mut().limit = limit;
    }

    fn transfers(&self) -> Transfers {
        self.memory().transfers
    }
}
