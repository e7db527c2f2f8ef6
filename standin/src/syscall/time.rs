//! Clocks: monotonic time from the TSC since boot, real time from the CMOS clock at boot plus
//! that; `times()` returns the timer-tick count (1 kHz, which AT_CLKTCK also says). Sleeps
//! halt with interrupts on until the deadline (the tick wakes the CPU every millisecond).

use standin_core::linux::errno::EINVAL;
use standin_core::linux::{CLOCK_REALTIME, CLOCK_REALTIME_COARSE, MAX_CLOCK_ID};

use super::SysResult;
use crate::{clock, timer, user};

/// CLOCK_REALTIME_ALARM and CLOCK_TAI also count from the epoch.
const CLOCK_REALTIME_ALARM: u64 = 8;
const CLOCK_TAI: u64 = 11;
/// Id 10 (CLOCK_SGI_CYCLE) was removed from Linux.
const CLOCK_UNUSED: u64 = 10;
/// clock_nanosleep flag: the request is an absolute time.
const TIMER_ABSTIME: u64 = 1;

fn now_ns(clock_id: u64) -> Result<u64, u64> {
    match clock_id {
        CLOCK_REALTIME | CLOCK_REALTIME_COARSE | CLOCK_REALTIME_ALARM | CLOCK_TAI => {
            Ok(clock::realtime_ns())
        }
        CLOCK_UNUSED => Err(EINVAL),
        id if id <= MAX_CLOCK_ID => Ok(clock::monotonic_ns()),
        _ => Err(EINVAL),
    }
}

fn write_timespec(addr: u64, ns: u64) -> Result<(), u64> {
    user::write_words(addr, &[ns / 1_000_000_000, ns % 1_000_000_000])
}

fn read_timespec(addr: u64) -> Result<u64, u64> {
    let seconds = user::read_u64(addr)?;
    let nanos = user::read_u64(addr + 8)?;
    if seconds as i64 >= 0 && nanos < 1_000_000_000 {
        Ok(seconds.saturating_mul(1_000_000_000).saturating_add(nanos))
    } else {
        Err(EINVAL)
    }
}

/// clock_gettime(id, ts).
pub fn clock_gettime(id: u64, ts: u64) -> SysResult {
    write_timespec(ts, now_ns(id)?)?;
    Ok(0)
}

/// clock_getres(id, res): one nanosecond.
pub fn clock_getres(id: u64, res: u64) -> SysResult {
    now_ns(id)?;
    if res != 0 {
        write_timespec(res, 1)?;
    }
    Ok(0)
}

/// gettimeofday(tv, tz): tz (obsolete) reads as zero.
pub fn gettimeofday(tv: u64, tz: u64) -> SysResult {
    let ns = clock::realtime_ns();
    if tv != 0 {
        user::write_words(tv, &[ns / 1_000_000_000, ns % 1_000_000_000 / 1000])?;
    }
    if tz != 0 {
        user::copy_to(tz, &[0; 8])?;
    }
    Ok(0)
}

/// time(tloc).
pub fn time(tloc: u64) -> SysResult {
    let seconds = clock::realtime_ns() / 1_000_000_000;
    if tloc != 0 {
        user::write_words(tloc, &[seconds])?;
    }
    Ok(seconds)
}

/// Halts until the monotonic clock reaches `deadline_ns`; interrupts on meanwhile (the
/// system-call stack is not touched by them: they run on their IST stack).
fn sleep_until(deadline_ns: u64) {
    while clock::monotonic_ns() < deadline_ns {
        x86_64::instructions::interrupts::enable_and_hlt();
        x86_64::instructions::interrupts::disable();
    }
}

/// nanosleep(req, rem).
pub fn nanosleep(req: u64) -> SysResult {
    let ns = read_timespec(req)?;
    sleep_until(clock::monotonic_ns().saturating_add(ns));
    Ok(0)
}

/// clock_nanosleep(id, flags, req, rem).
pub fn clock_nanosleep(id: u64, flags: u64, req: u64) -> SysResult {
    let now = now_ns(id)?;
    let ns = read_timespec(req)?;
    let wait = if flags & TIMER_ABSTIME != 0 {
        ns.saturating_sub(now)
    } else {
        ns
    };
    sleep_until(clock::monotonic_ns().saturating_add(wait));
    Ok(0)
}

/// times(buf): the tick count, also as the process's user time (struct tms: utime, stime,
/// cutime, cstime).
pub fn times(buf: u64) -> SysResult {
    let ticks = timer::ticks();
    if buf != 0 {
        user::write_words(buf, &[ticks, 0, 0, 0])?;
    }
    Ok(ticks)
}
