//! `test=panic-ap` and `test=fault-ap`: a panic or an exception injected on CPU 1, for the
//! integration tests of the stop-all path.

use demo_options::TestCase;

use crate::println;

/// `test=panic-ap` / `test=fault-ap`: CPU 1 panics or touches unmapped memory; the stop-all
/// path must report it, naming CPU 1, and take the failure exit. The BSP meanwhile idles.
pub fn inject(test: Option<TestCase>) {
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
