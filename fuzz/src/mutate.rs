//! Deterministic pseudo-random inputs and mutations for the stable replay test: not
//! coverage-guided like libFuzzer, but the same every run, fast, and seeded from the corpus.

/// SplitMix64 (a tiny generator with good statistics; reproducible across runs and hosts).
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Values that sit on the edges parsers check: zero, one, the top of each width, lengths of
/// the structures involved.
const INTERESTING: &[u64] = &[
    0,
    1,
    2,
    8,
    16,
    20,
    24,
    36,
    44,
    0x7F,
    0x80,
    0xFF,
    0x100,
    0xFFFF,
    0x1_0000,
    0x7FFF_FFFF,
    0xFFFF_FFFF,
    u64::MAX,
];

/// One to four random edits of `input`: bit flips, random or edge-value bytes and words,
/// insertions, deletions, a copied block, a cut.
pub fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let len = out.len();
        match rng.below(8) {
            0 if len > 0 => {
                let at = rng.below(len);
                out[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                out[at] = rng.next_u64() as u8;
            }
            2 if len > 0 => {
                let width = [1, 2, 4, 8][rng.below(4)];
                let at = rng.below(len);
                let value = INTERESTING[rng.below(INTERESTING.len())].to_le_bytes();
                let n = width.min(len - at);
                out[at..at + n].copy_from_slice(&value[..n]);
            }
            3 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let extra = rng.bytes(n);
                out.splice(at..at, extra);
            }
            4 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(64));
                out.drain(at..at + n);
            }
            5 if len > 0 => {
                let from = rng.below(len);
                let n = 1 + rng.below((len - from).min(64));
                let block: Vec<u8> = out[from..from + n].to_vec();
                let to = rng.below(len);
                let m = n.min(len - to);
                out[to..to + m].copy_from_slice(&block[..m]);
            }
            6 => out.truncate(rng.below(len + 1)),
            _ => {
                // Nudge a little-endian word by a small amount (lengths and counts off by one).
                if len >= 4 {
                    let at = rng.below(len - 3);
                    let v = u32::from_le_bytes(out[at..at + 4].try_into().expect("4 bytes"));
                    let delta = rng.below(9) as u32;
                    let v = if rng.below(2) == 0 {
                        v.wrapping_add(delta)
                    } else {
                        v.wrapping_sub(delta)
                    };
                    out[at..at + 4].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
    out
}
