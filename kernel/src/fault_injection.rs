//! `test=panic-ap`, `test=fault-ap` and `test=task-panic`: a panic or an exception injected on
//! an AP, for the integration tests of the stop-all path.

use demo_options::TestCase;

use crate::println;

/// `test=panic-ap` / `test=fault-ap`: CPU 1 panics or touches unmapped memory; the stop-all
/// path must report it, naming CPU 1, and take the failure exit. The BSP meanwhile idles.
pub fn inject(test: Option<TestCase>) {
    if test == Some(TestCase::TaskPanic) {
        task_panic();
    }
    let fault: fn() = match test {
        Some(TestCase::PanicAp) => || panic!("deliberate panic (test=panic-ap)"),
        Some(TestCase::FaultAp) => || {
            // The boot page tables map 0..4 GiB only.
            let unmapped = 0x1_0000_0000 as *const u64;
            // SAFETY: not safe at all, on purpose: the read must fault (#PF) on CPU 1.
            let value = unsafe { core::ptr::read_volatile(unmapped) };
            println!("read {value:#x} from unmapped memory?!");
        },
        _ => return,
    };
    if multicore::rt::cpu(1).is_none_or(|c| !c.joined()) {
        fail!(
            "test={} needs a second CPU",
            test.map_or("", |t| t.as_str())
        );
    }
    println!(
        "test: injecting {} on CPU 1",
        test.map_or("", |t| t.as_str())
    );
    let _ = multicore::rt::xcall::run_on_async(1, fault);
    multicore::rt::idle::wait_until(|| false);
}

/// `test=task-panic`: parallel sums on the scheduler from the BSP, in which the first leaf to
/// run on an AP panics there: the stop-all path reports it (a joiner never waits for it).
fn task_panic() -> ! {
    use core::sync::atomic::{AtomicBool, Ordering};
    static PANICKED: AtomicBool = AtomicBool::new(false);
    let sched = multicore::rt::scheduler();
    if sched.workers() < 2 {
        fail!("test=task-panic needs a second CPU");
    }
    println!("test: a scheduler task will panic on the first AP that runs one");
    let leaves = 8 * sched.workers();
    let deadline = multicore::rt::tsc().deadline_us(30_000_000);
    while !multicore::rt::tsc().passed(deadline) {
        sched.map_reduce(
            0..leaves,
            1,
            &|| 0u64,
            &|i| {
                let on_ap = multicore::rt::current().is_some_and(|c| c.index != 0);
                if on_ap && !PANICKED.swap(true, Ordering::AcqRel) {
                    panic!("deliberate panic in a scheduler task (test=task-panic)");
                }
                (0..1000u64).fold(i as u64, |x, k| x.wrapping_mul(31).wrapping_add(k))
            },
            &u64::wrapping_add,
        );
    }
    fail!("test=task-panic: no AP ran a task in 30 s")
}
