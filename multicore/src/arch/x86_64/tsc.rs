//! The time-stamp counter as the bring-up's clock: read, calibrated once, turned into
//! microsecond deadlines.
//!
//! Calibration takes the first source that the machine offers, most exact first:
//! 1. CPUID leaf 0x15 (TSC/crystal ratio with a crystal frequency; SDM Vol. 3B §18.7.3),
//! 2. the hypervisor timing leaf 0x4000_0010 (EAX = TSC kHz; offered by QEMU with invtsc),
//! 3. kvmclock: KVM publishes the TSC → nanosecond scale it uses for the guest,
//! 4. PIT channel 0 (1.193182 MHz; channel 0 because microvm has no port 0x61 to gate
//!    channel 2), counted against the TSC for 10 ms.

use super::msr::MSR_KVM_SYSTEM_TIME_NEW;
use super::pit;

/// Reads the TSC.
#[inline]
pub fn now() -> u64 {
    // SAFETY: RDTSC is available on every x86_64 CPU and only reads the counter.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Where the TSC frequency came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TscSource {
    /// CPUID leaf 0x15.
    CpuidCrystal,
    /// Hypervisor leaf 0x4000_0010.
    HypervisorLeaf,
    /// KVM's paravirtual clock scale.
    KvmClock,
    /// Counted against PIT channel 0.
    Pit,
    /// Given by the host.
    Host,
}

impl TscSource {
    /// Short name for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            TscSource::CpuidCrystal => "CPUID 0x15",
            TscSource::HypervisorLeaf => "CPUID 0x40000010",
            TscSource::KvmClock => "kvmclock",
            TscSource::Pit => "PIT channel 0",
            TscSource::Host => "host",
        }
    }
}

/// A calibrated TSC: converts between ticks and microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tsc {
    hz: u64,
}

impl Tsc {
    /// A TSC running at `hz` ticks per second (must be non-zero).
    pub const fn from_hz(hz: u64) -> Tsc {
        assert!(hz > 0, "TSC frequency must be non-zero");
        Tsc { hz }
    }

    /// Ticks per second.
    pub fn hz(&self) -> u64 {
        self.hz
    }

    /// Ticks in `us` microseconds.
    pub fn us_to_ticks(&self, us: u64) -> u64 {
        (us as u128 * self.hz as u128 / 1_000_000) as u64
    }

    /// Microseconds in `ticks` ticks.
    pub fn ticks_to_us(&self, ticks: u64) -> u64 {
        (ticks as u128 * 1_000_000 / self.hz as u128) as u64
    }

    /// The TSC value `us` microseconds from now.
    pub fn deadline_us(&self, us: u64) -> u64 {
        now().saturating_add(self.us_to_ticks(us))
    }

    /// Whether the TSC has reached `deadline`.
    pub fn passed(&self, deadline: u64) -> bool {
        now() >= deadline
    }

    /// Spins for `us` microseconds.
    pub fn delay_us(&self, us: u64) {
        let deadline = self.deadline_us(us);
        while !self.passed(deadline) {
            core::hint::spin_loop();
        }
    }
}

/// No source of the TSC frequency answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalibrationError;

impl core::fmt::Display for CalibrationError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "cannot calibrate the TSC: no CPUID 0x15/0x40000010 frequency, no kvmclock, and PIT channel 0 does not count"
        )
    }
}

/// The TSC frequency from CPUID alone (leaf 0x15, then 0x4000_0010): no MSR written, no timer
/// touched, for a library running inside a host kernel that owns those.
pub fn calibrate_from_cpuid() -> Result<(Tsc, TscSource), CalibrationError> {
    if let Some(hz) = from_cpuid_crystal() {
        return Ok((Tsc::from_hz(hz), TscSource::CpuidCrystal));
    }
    from_hypervisor_leaf()
        .map(|hz| (Tsc::from_hz(hz), TscSource::HypervisorLeaf))
        .ok_or(CalibrationError)
}

/// Finds the TSC frequency. `virt_to_phys` translates a stack address for kvmclock (which
/// is told a physical address); pass `None` to skip kvmclock.
pub fn calibrate(
    virt_to_phys: Option<&dyn Fn(u64) -> Option<u64>>,
) -> Result<(Tsc, TscSource), CalibrationError> {
    if let Some(hz) = from_cpuid_crystal() {
        return Ok((Tsc::from_hz(hz), TscSource::CpuidCrystal));
    }
    if let Some(hz) = from_hypervisor_leaf() {
        return Ok((Tsc::from_hz(hz), TscSource::HypervisorLeaf));
    }
    if let Some(hz) = virt_to_phys.and_then(from_kvmclock) {
        return Ok((Tsc::from_hz(hz), TscSource::KvmClock));
    }
    pit::measure_tsc_hz(10_000)
        .map(|hz| (Tsc::from_hz(hz), TscSource::Pit))
        .ok_or(CalibrationError)
}

/// CPUID 0x15: TSC = crystal × EBX / EAX, crystal in ECX (0 = not enumerated).
fn from_cpuid_crystal() -> Option<u64> {
    let info = raw_cpuid::CpuId::new().get_tsc_info()?;
    info.tsc_frequency().filter(|&hz| hz > 0)
}

/// CPUID 0x4000_0010 (the "timing information" leaf hypervisors share): EAX = TSC kHz.
fn from_hypervisor_leaf() -> Option<u64> {
    let max = raw_cpuid::cpuid!(0x4000_0000).eax;
    if !(0x4000_0010..0x4000_0100).contains(&max) {
        return None;
    }
    let khz = raw_cpuid::cpuid!(0x4000_0010).eax as u64;
    (khz > 0).then_some(khz * 1000)
}

/// KVM's pvclock_vcpu_time_info (Linux `Documentation/virt/kvm/x86/msr.rst`).
#[repr(C, align(64))]
#[derive(Default)]
struct PvClockTimeInfo {
    version: u32,
    pad0: u32,
    tsc_timestamp: u64,
    system_time: u64,
    tsc_to_system_mul: u32,
    tsc_shift: i8,
    flags: u8,
    pad: [u8; 2],
}

/// Whether KVM's signature and KVM_FEATURE_CLOCKSOURCE2 (leaf 0x4000_0001 EAX bit 3) are there.
fn has_kvmclock() -> bool {
    super::hypervisor::Hypervisor::detect() == super::hypervisor::Hypervisor::Kvm
        && raw_cpuid::cpuid!(0x4000_0000).eax >= 0x4000_0001
        && raw_cpuid::cpuid!(0x4000_0001).eax & (1 << 3) != 0
}

/// Asks KVM for its scale: ns = (ticks << shift) * mul / 2^32 (shift may be negative), so
/// hz = 10^9 * 2^32 / (mul * 2^shift).
fn from_kvmclock(virt_to_phys: &dyn Fn(u64) -> Option<u64>) -> Option<u64> {
    if !has_kvmclock() {
        return None;
    }
    let info = PvClockTimeInfo::default();
    let phys = virt_to_phys(&info as *const _ as u64)?;
    let mut msr = MSR_KVM_SYSTEM_TIME_NEW;
    // SAFETY: KVM advertised the MSR (has_kvmclock); it makes KVM write the 32-byte `info`,
    // which lives on this stack frame until the MSR is written 0 (disabled) below.
    unsafe { msr.write(phys | 1) };
    let (mul, shift) = loop {
        // SAFETY: `info` is valid; volatile because KVM writes it behind the compiler's back.
        let v1 = unsafe { core::ptr::read_volatile(&info.version) };
        // SAFETY: as above.
        let mul = unsafe { core::ptr::read_volatile(&info.tsc_to_system_mul) };
        // SAFETY: as above.
        let shift = unsafe { core::ptr::read_volatile(&info.tsc_shift) };
        // SAFETY: as above.
        let v2 = unsafe { core::ptr::read_volatile(&info.version) };
        if v1 == v2 && v1 & 1 == 0 && v1 != 0 {
            break (mul, shift);
        }
        core::hint::spin_loop();
    };
    // SAFETY: writing 0 turns the clock updates off, so KVM stops writing `info`.
    unsafe { msr.write(0) };
    if mul == 0 {
        return None;
    }
    let num: u128 = 1_000_000_000u128 << 32;
    let hz = if shift >= 0 {
        num / ((mul as u128) << shift)
    } else {
        (num << (-shift) as u32) / mul as u128
    };
    Some(hz as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_round_trip() {
        let tsc = Tsc::from_hz(2_500_000_000);
        assert_eq!(tsc.us_to_ticks(1), 2500);
        assert_eq!(tsc.ticks_to_us(25_000_000), 10_000);
        assert_eq!(tsc.us_to_ticks(10_000_000_000), 25_000_000_000_000);
    }
}
