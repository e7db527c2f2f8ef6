//! The waits of the INIT/SIPI sequence, per delay policy.
//!
//! `spec` is the sequence of SDM Vol. 3A §9.4.4.1 and the MP spec (B.4) as the seed runs it:
//! 10 ms after INIT, 200 µs after each SIPI. `fast` keeps only what the machine needs:
//!
//! - No wait after INIT. The 10 ms let old external APICs (82489DX) and early processors finish
//!   their reset before the SIPI. On KVM and QEMU the INIT and the SIPI are events queued on the
//!   target vCPU and handled in order (INIT first: the vCPU enters wait-for-SIPI, then takes the
//!   SIPI), so a SIPI cannot overtake its INIT. Should a SIPI still arrive too early, the CPU
//!   ignores it, our check-in poll sees nothing, and the second SIPI / the retry below cover it.
//! - No fixed wait after a SIPI: instead the BSP polls the AP's state. The wait before a second
//!   SIPI only decides when a lost SIPI is repeated; a repeated SIPI is harmless because a CPU
//!   that already left wait-for-SIPI ignores it (SDM Vol. 3A §9.4.4.1 notes APs ignore SIPIs
//!   once started).
//! - xAPIC still waits for the ICR's delivery-status bit before each new IPI (a hardware rule,
//!   kept by [`LocalApic::send`](crate::arch::x86_64::apic::LocalApic::send) in both policies).
//!
//! Both policies then give an AP the same generous time to reach Rust before one full retry
//! (INIT, SIPI, SIPI) and, failing that, an error naming the CPU.

use crate::boot::DelayPolicy;

/// Wait lengths in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delays {
    /// After INIT, before the first SIPI.
    pub after_init_us: u64,
    /// After each SIPI, unconditionally.
    pub after_sipi_us: u64,
    /// How long to poll for the AP before sending the second SIPI.
    pub second_sipi_after_us: u64,
    /// How long an attempt may go without any AP arriving before the retry (and after the
    /// retry, before failing).
    pub attempt_timeout_us: u64,
    /// How long the APs that reached Rust may go without any of them being marked online.
    pub online_timeout_us: u64,
}

impl Delays {
    /// The waits of `policy`.
    pub fn of(policy: DelayPolicy) -> Delays {
        match policy {
            DelayPolicy::Spec => Delays {
                after_init_us: 10_000,
                after_sipi_us: 200,
                second_sipi_after_us: 0,
                attempt_timeout_us: ATTEMPT_TIMEOUT_US,
                online_timeout_us: ONLINE_TIMEOUT_US,
            },
            DelayPolicy::Fast => Delays {
                after_init_us: 0,
                after_sipi_us: 0,
                second_sipi_after_us: 1_000,
                attempt_timeout_us: ATTEMPT_TIMEOUT_US,
                online_timeout_us: ONLINE_TIMEOUT_US,
            },
        }
    }
}

/// Time an attempt may take. Generous because under TCG with many vCPUs on two host cores an
/// AP thread may wait long for a host core; on KVM an AP arrives in well under a millisecond.
const ATTEMPT_TIMEOUT_US: u64 = 3_000_000;
/// Time between "reached Rust" and "online" (the host's entry prints one line first).
const ONLINE_TIMEOUT_US: u64 = 5_000_000;
