//! PIT channel 0 as a reference clock for TSC calibration (Intel 8254 datasheet; the PIT input
//! clock is 1.193182 MHz on PC-compatibles).
//!
//! Channel 0 is used, not the usual channel 2: channel 2's gate is port 0x61, which QEMU's
//! microvm does not have. Channel 0's output only raises IRQ 0, which is masked or ignored
//! while interrupts are off during bring-up.

use x86_64::instructions::port::Port;

/// PIT input clock in Hz.
pub const PIT_HZ: u64 = 1_193_182;
const CHANNEL0_DATA: u16 = 0x40;
const MODE_COMMAND: u16 = 0x43;
/// Mode/command byte fields (8254 datasheet, "Control Word Format"): select channel (bits 7:6),
/// access mode (5:4), operating mode (3:1), BCD (0).
const fn command(channel: u8, access: u8, mode: u8) -> u8 {
    channel << 6 | access << 4 | mode << 1
}
/// Channel 0, lobyte/hibyte access, mode 2 (rate generator), binary.
const CMD_CH0_RATE_GENERATOR: u8 = command(0, 0b11, 2);
/// Channel 0 counter latch command (access mode 0).
const CMD_CH0_LATCH: u8 = command(0, 0b00, 0);

fn read_count() -> u16 {
    let mut cmd: Port<u8> = Port::new(MODE_COMMAND);
    let mut data: Port<u8> = Port::new(CHANNEL0_DATA);
    // SAFETY: ports 0x40/0x43 are the PIT on PC-compatible machines (QEMU pc/q35/microvm);
    // latching and reading the count has no effect beyond the PIT's read sequence.
    unsafe {
        cmd.write(CMD_CH0_LATCH);
        let lo = data.read() as u16;
        let hi = data.read() as u16;
        hi << 8 | lo
    }
}

/// Counts TSC ticks over `us` microseconds of PIT time and returns the TSC frequency, or
/// `None` if the PIT does not count (absent).
pub fn measure_tsc_hz(us: u64) -> Option<u64> {
    let mut cmd: Port<u8> = Port::new(MODE_COMMAND);
    let mut data: Port<u8> = Port::new(CHANNEL0_DATA);
    // SAFETY: programs PIT channel 0 as a free-running rate generator with the full 65536
    // count (reload value 0). Nothing else uses channel 0 while the bring-up calibrates.
    unsafe {
        cmd.write(CMD_CH0_RATE_GENERATOR);
        data.write(0);
        data.write(0);
    }
    let target = us * PIT_HZ / 1_000_000;
    let mut last = read_count();
    // Wait for the first change so the start is on a tick edge; give up if the PIT is dead.
    let mut spins = 0u32;
    loop {
        let c = read_count();
        if c != last {
            last = c;
            break;
        }
        spins += 1;
        if spins > 1_000_000 {
            return None;
        }
    }
    let start_tsc = super::tsc::now();
    let mut elapsed: u64 = 0;
    while elapsed < target {
        let c = read_count();
        // Down-counter with 65536 states: the difference modulo 2^16 is the ticks passed, as
        // long as we read more often than every 55 ms (we read in a tight loop).
        elapsed += last.wrapping_sub(c) as u64;
        last = c;
    }
    let ticks = super::tsc::now() - start_tsc;
    Some((ticks as u128 * PIT_HZ as u128 / elapsed as u128) as u64)
}
