//! How a bring-up starts the APs: the choices a caller makes (both have a default that suits a
//! virtual machine), apart from any way of spelling them (the demo kernel reads them from its
//! command line, a hosted program from its arguments).

/// How the application processors are started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Strategy {
    /// One AP at a time: each is started and waited for before the next.
    Sequential,
    /// All APs together: they are all started before waiting for any of them.
    #[default]
    Parallel,
}

impl Strategy {
    /// The command line spelling: `"sequential"` or `"parallel"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sequential => "sequential",
            Self::Parallel => "parallel",
        }
    }
}

/// Which waits the INIT-SIPI-SIPI sequence uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DelayPolicy {
    /// The delays the Intel SDM and MP specification prescribe for physical hardware.
    Spec,
    /// Shorter delays, enough for a virtual machine.
    #[default]
    Fast,
}

impl DelayPolicy {
    /// The command line spelling: `"spec"` or `"fast"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Spec => "spec",
            Self::Fast => "fast",
        }
    }
}

/// How to start the APs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StartConfig {
    /// One at a time, or all together.
    pub strategy: Strategy,
    /// Which waits to keep.
    pub delays: DelayPolicy,
    /// Bytes of stack per AP (a multiple of 4 KiB; a guard page is added below).
    pub ap_stack_size: usize,
}

/// AP stack size when the caller has no reason to choose: room for the library's AP entry and
/// a runtime's work, with a guard page below (added by the bring-up).
pub const DEFAULT_AP_STACK_SIZE: usize = 16 * 1024;

impl Default for StartConfig {
    fn default() -> Self {
        Self {
            strategy: Strategy::default(),
            delays: DelayPolicy::default(),
            ap_stack_size: DEFAULT_AP_STACK_SIZE,
        }
    }
}
