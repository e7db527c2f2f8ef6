//! Bringing the APs up: the host interface, per-CPU data, the trampoline page and the
//! INIT/SIPI sequence.

pub mod ap_entry;
pub mod cpu_data;
pub mod delays;
pub mod floor;
pub mod host;
pub mod live_pages;
pub mod low_pages;
pub mod lowmem;
pub mod start;

pub use ap_entry::park_this_cpu;
pub use cpu_data::{ApEntry, CpuData, CpuState};
pub use host::{Host, LowMemory};
pub use start::{memory_needed, start_aps, BringupError, BringupReport, Budget, StartConfig};
