//! Property tests: for many pseudo-random shapes (worker count, length, grain, nesting), the
//! parallel results equal the sequential ones. Deterministic (a fixed xorshift seed), so a
//! failure names a case that can be rerun.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::tests::Pool;
use super::Registry;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn value(i: usize, salt: u64) -> u64 {
    (i as u64 ^ salt)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(17)
}

/// Nested joins over a range: the sum of `value` split at a pseudo-random point each level.
fn nested_sum(r: &Registry, lo: usize, hi: usize, salt: u64, depth: u32) -> u64 {
    if hi - lo <= 8 || depth == 0 {
        return (lo..hi).map(|i| value(i, salt)).fold(0, u64::wrapping_add);
    }
    let mid = lo + 1 + (value(lo ^ hi, salt) as usize) % (hi - lo - 1);
    let (a, b) = r.join(
        || nested_sum(r, lo, mid, salt, depth - 1),
        || nested_sum(r, mid, hi, salt, depth - 1),
    );
    a.wrapping_add(b)
}

#[test]
fn parallel_results_equal_sequential_ones_for_random_shapes() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for workers in [1, 2, 3, 5] {
        let pool = Pool::new(workers);
        let r = pool.registry;
        for case in 0..40 {
            let len = rng.below(20_000) as usize;
            let grain = 1 + rng.below(500) as usize;
            let salt = rng.next();
            let want = (0..len).map(|i| value(i, salt)).fold(0, u64::wrapping_add);
            let what = format!("workers {workers} case {case} len {len} grain {grain}");
            let got = r.map_reduce(
                0..len,
                grain,
                &|| 0,
                &|i| value(i, salt),
                &u64::wrapping_add,
            );
            assert_eq!(got, want, "map_reduce, {what}");
            assert_eq!(
                nested_sum(r, 0, len, salt, 12),
                want,
                "nested joins, {what}"
            );
            let total = AtomicU64::new(0);
            r.for_each(0..len, grain, &|i| {
                total.fetch_add(value(i, salt), Ordering::Relaxed);
            });
            assert_eq!(total.load(Ordering::Relaxed), want, "for_each, {what}");
            let mut data: Vec<u64> = (0..len).map(|i| value(i, salt)).collect();
            r.for_each_chunk_mut(&mut data, grain, &|offset, chunk| {
                for (k, x) in chunk.iter_mut().enumerate() {
                    assert_eq!(*x, value(offset + k, salt), "chunk offset, {what}");
                    *x = x.wrapping_add(1);
                }
            });
            assert!(
                data.iter()
                    .enumerate()
                    .all(|(i, &x)| x == value(i, salt).wrapping_add(1)),
                "for_each_chunk_mut, {what}"
            );
            // A scope with a random tree of tasks: every one runs once before it returns.
            let tasks = 1 + rng.below(200) as usize;
            let ran: Vec<AtomicUsize> = (0..tasks).map(|_| AtomicUsize::new(0)).collect();
            r.scope(|s| {
                for t in 0..tasks {
                    let ran = &ran;
                    s.spawn(move |s| {
                        ran[t].fetch_add(1, Ordering::Relaxed);
                        if t % 7 == 0 && t + 1 < tasks {
                            s.spawn(move |_| {
                                ran[t + 1].fetch_add(100, Ordering::Relaxed);
                            });
                        }
                    });
                }
            });
            for (t, c) in ran.iter().enumerate() {
                let extra = if t > 0 && (t - 1) % 7 == 0 { 100 } else { 0 };
                assert_eq!(
                    c.load(Ordering::Relaxed),
                    1 + extra,
                    "scope task {t}, {what}"
                );
            }
        }
    }
}
