//! How a CPU polls for other CPUs: with PAUSE in the loop, except under QEMU's TCG.
//!
//! PAUSE is the spin-wait hint (SDM Vol. 2B, PAUSE): on hardware it saves the memory-order
//! flush on loop exit and power, and under KVM a run of PAUSEs is what pause-loop exiting
//! (SDM Vol. 3C §26.2, "PAUSE-loop exiting") turns into a chance for the host to run another
//! vCPU. TCG implements it by leaving the translated code for QEMU's vCPU loop, which takes
//! QEMU's global lock on the way back in: the lock a halted vCPU takes to wake up on its SIPI
//! and under which INIT and SIPI are delivered. A BSP that polls with PAUSE while dozens of APs
//! wake competes with each of them for that lock. Polling without it (`bench --compare`, QEMU
//! 10, 128 vCPUs on 2 host cores, 31 boots): bring-up 22.0 → 14.4 ms, SIPI → first
//! instruction 2.8 ms → 0.49 ms per AP.

use super::hypervisor::Hypervisor;

/// The spin-wait step of one machine: [`SpinWait::relax`] once per poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpinWait {
    pause: bool,
}

impl SpinWait {
    /// The step for code under `hypervisor`: PAUSE everywhere but under TCG.
    pub fn for_hypervisor(hypervisor: Hypervisor) -> SpinWait {
        SpinWait {
            pause: hypervisor != Hypervisor::Tcg,
        }
    }

    /// The step for the running machine (one CPUID, a VM exit under KVM: keep the result).
    pub fn detect() -> SpinWait {
        Self::for_hypervisor(Hypervisor::detect())
    }

    /// One poll's pause.
    #[inline(always)]
    pub fn relax(self) {
        if self.pause {
            core::hint::spin_loop();
        }
    }

    /// Whether [`SpinWait::relax`] executes PAUSE.
    pub fn pauses(self) -> bool {
        self.pause
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_everywhere_but_under_tcg() {
        assert!(!SpinWait::for_hypervisor(Hypervisor::Tcg).pauses());
        assert!(SpinWait::for_hypervisor(Hypervisor::Kvm).pauses());
        assert!(SpinWait::for_hypervisor(Hypervisor::None).pauses());
        assert!(SpinWait::for_hypervisor(Hypervisor::Other(*b"Microsoft Hv")).pauses());
    }
}
