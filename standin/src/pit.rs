//! The 8254 programmable interval timer, channel 0: the 1 kHz tick (through IRQ 0) and the
//! reference the TSC is calibrated against (8254 datasheet; the control word of §"Write
//! Operations", mode 2 "rate generator").

use x86_64::instructions::port::Port;

/// The PIT's input clock, Hz.
pub const INPUT_HZ: u64 = 1_193_182;
/// Input clocks per tick: 1193182 / 1193 = 1000.15 Hz.
pub const DIVISOR: u16 = 1193;
/// Ticks per second, nominally.
pub const TICK_HZ: u64 = 1000;

const CHANNEL0: u16 = 0x40;
const CONTROL: u16 = 0x43;
/// Channel 0, low then high byte, mode 2 (rate generator), binary.
const CH0_LOHI_MODE2: u8 = 0x34;
/// Channel 0 counter latch command.
const CH0_LATCH: u8 = 0x00;

/// Starts channel 0 counting down from DIVISOR, again and again, raising IRQ 0 at each end.
pub fn start_periodic() {
    // SAFETY: the 8254 ports; only this module drives them.
    unsafe {
        Port::<u8>::new(CONTROL).write(CH0_LOHI_MODE2);
        Port::<u8>::new(CHANNEL0).write(DIVISOR as u8);
        Port::<u8>::new(CHANNEL0).write((DIVISOR >> 8) as u8);
    }
}

/// Channel 0's current count (DIVISOR down to 1, then DIVISOR again).
pub fn count() -> u16 {
    // SAFETY: as in start_periodic; the latch makes the two reads one consistent value.
    unsafe {
        Port::<u8>::new(CONTROL).write(CH0_LATCH);
        let low = Port::<u8>::new(CHANNEL0).read() as u16;
        let high = Port::<u8>::new(CHANNEL0).read() as u16;
        high << 8 | low
    }
}
