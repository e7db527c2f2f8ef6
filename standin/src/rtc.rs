//! The CMOS real-time clock (MC146818 registers as on PC-compatibles: 0x00 seconds, 0x02
//! minutes, 0x04 hours, 0x07 day, 0x08 month, 0x09 year, 0x32 century; status A bit 7 = update
//! in progress; status B bit 2 = binary, bit 1 = 24-hour), read once for the wall clock.

use x86_64::instructions::port::Port;

const INDEX: u16 = 0x70;
const DATA: u16 = 0x71;

fn register(index: u8) -> u8 {
    // SAFETY: the CMOS index/data ports; only this module uses them, with interrupts off.
    unsafe {
        Port::<u8>::new(INDEX).write(index);
        Port::<u8>::new(DATA).read()
    }
}

fn snapshot() -> [u8; 7] {
    [0x00, 0x02, 0x04, 0x07, 0x08, 0x09, 0x32].map(register)
}

/// The clock as Unix seconds, `None` when it is absent or reads as nonsense.
pub fn unix_seconds() -> Option<u64> {
    // Wait out an update in progress (at most ~2 ms on real hardware), then read until two
    // snapshots agree.
    let mut settled = false;
    for _ in 0..100_000 {
        if register(0x0A) & 0x80 == 0 {
            settled = true;
            break;
        }
    }
    if !settled {
        return None;
    }
    let mut now = snapshot();
    for _ in 0..3 {
        let again = snapshot();
        if again == now {
            break;
        }
        now = again;
    }
    let status_b = register(0x0B);
    let binary = status_b & 0x04 != 0;
    let decode = |v: u8| -> u64 {
        if binary {
            v as u64
        } else {
            (v >> 4) as u64 * 10 + (v & 0x0F) as u64
        }
    };
    let [second, minute, hour_raw, day, month, year, century] = now;
    let pm = status_b & 0x02 == 0 && hour_raw & 0x80 != 0;
    let mut hour = decode(hour_raw & 0x7F);
    if status_b & 0x02 == 0 {
        hour = hour % 12 + if pm { 12 } else { 0 };
    }
    let century = match decode(century) {
        c @ 19..=99 => c,
        _ => 20,
    };
    standin_core::civil::unix_seconds(
        century * 100 + decode(year),
        decode(month),
        decode(day),
        hour,
        decode(minute),
        decode(second),
    )
}
