//! The stack a Linux x86_64 program starts with (System V AMD64 psABI §3.4.1 "Initial Stack and
//! Register State"; Linux `fs/binfmt_elf.c` `create_elf_tables` for the order):
//!
//! ```text
//! high  [8 zero bytes]                              end marker
//!       argv and envp strings, NUL-terminated
//!       16 random bytes                              AT_RANDOM points here
//!       (padding to 16 bytes)
//!       auxv: (key, value) pairs ..., (AT_NULL, 0)
//!       0                                            end of envp
//!       envp[0..envc]
//!       0                                            end of argv
//!       argv[0..argc]
//! sp -> argc                                         16-byte aligned
//! ```

use core::fmt;

use crate::linux::auxv::{AT_EXECFN, AT_NULL, AT_RANDOM};

/// The stack area given is too small for the strings and vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StackTooSmall {
    /// Bytes that would have been needed.
    pub needed: usize,
}

impl fmt::Display for StackTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arguments and environment need {} bytes of stack, more than there is",
            self.needed
        )
    }
}

/// What the program is started with.
pub struct StartInfo<'a> {
    /// argv, argv[0] first (the program's path).
    pub argv: &'a [&'a [u8]],
    /// The environment, `KEY=VALUE` each.
    pub envp: &'a [&'a [u8]],
    /// Auxiliary vector entries; AT_RANDOM, AT_EXECFN and AT_NULL are added here.
    pub auxv: &'a [(u64, u64)],
    /// The bytes AT_RANDOM points to.
    pub random: [u8; 16],
}

/// Where things landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    /// The initial stack pointer (points at argc), 16-byte aligned.
    pub sp: u64,
    /// Bytes used below `top`.
    pub used: usize,
}

/// Writes the initial stack into `area`, which the program will see at virtual addresses
/// `[top - area.len(), top)`; `top` must be 16-byte aligned.
pub fn build(area: &mut [u8], top: u64, info: &StartInfo<'_>) -> Result<Placed, StackTooSmall> {
    debug_assert!(top.is_multiple_of(16));
    let Some(base) = top.checked_sub(area.len() as u64) else {
        return Err(StackTooSmall { needed: 0 });
    };
    let strings: usize = info
        .argv
        .iter()
        .chain(info.envp.iter())
        .map(|s| s.len() + 1)
        .sum();
    let aux_pairs = info.auxv.len() + 2 + usize::from(!info.argv.is_empty());
    let words = 1 + info.argv.len() + 1 + info.envp.len() + 1 + 2 * aux_pairs;
    // An upper bound first (alignment padding at most 15 bytes twice), so that the address
    // arithmetic below cannot leave the area.
    let bound = 8 + strings + 16 + 15 + 8 * words + 15;
    if bound > area.len() {
        return Err(StackTooSmall { needed: bound });
    }
    // Strings below the end marker, then the random bytes 16-aligned below them, then the
    // vectors ending 16-aligned.
    let strings_start = top - 8 - strings as u64;
    let random_at = (strings_start - 16) & !15;
    let sp = (random_at - 8 * words as u64) & !15;
    let needed = (top - sp) as usize;
    let offset = |addr: u64| (addr - base) as usize;
    area[offset(top - 8)..].fill(0);

    // The strings, argv's then envp's, packed upwards from strings_start.
    let mut cursor = strings_start;
    for s in info.argv.iter().chain(info.envp.iter()) {
        let o = offset(cursor);
        area[o..o + s.len()].copy_from_slice(s);
        area[o + s.len()] = 0;
        cursor += s.len() as u64 + 1;
    }
    let o = offset(random_at);
    area[o..o + 16].copy_from_slice(&info.random);
    area[offset(sp)..offset(random_at)].fill(0);

    // The same walk again gives each string's address.
    let mut string_at = strings_start;
    let mut next_string = |s: &&[u8]| {
        let at = string_at;
        string_at += s.len() as u64 + 1;
        at
    };
    let mut at = sp;
    let mut put_word = |value: u64| {
        let o = offset(at);
        area[o..o + 8].copy_from_slice(&value.to_le_bytes());
        at += 8;
    };
    put_word(info.argv.len() as u64);
    info.argv.iter().for_each(|s| put_word(next_string(s)));
    put_word(0);
    info.envp.iter().for_each(|s| put_word(next_string(s)));
    put_word(0);
    for &(key, value) in info.auxv {
        put_word(key);
        put_word(value);
    }
    put_word(AT_RANDOM);
    put_word(random_at);
    if !info.argv.is_empty() {
        put_word(AT_EXECFN);
        put_word(strings_start); // argv[0], the first string
    }
    put_word(AT_NULL);
    put_word(0);
    Ok(Placed { sp, used: needed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::auxv::{AT_PAGESZ, AT_PHDR};

    /// Reads the stack back the way a C library's start code does.
    struct Reader<'a> {
        area: &'a [u8],
        base: u64,
    }

    impl Reader<'_> {
        fn word(&self, addr: u64) -> u64 {
            let o = (addr - self.base) as usize;
            u64::from_le_bytes(self.area[o..o + 8].try_into().unwrap())
        }
        fn string(&self, addr: u64) -> Vec<u8> {
            let o = (addr - self.base) as usize;
            self.area[o..]
                .iter()
                .take_while(|&&b| b != 0)
                .copied()
                .collect()
        }
    }

    #[test]
    fn layout_matches_what_libc_reads() {
        let mut area = vec![0xAAu8; 4096];
        let top = 0x7000_0000_0000u64;
        let info = StartInfo {
            argv: &[b"/hello", b"exit=3"],
            envp: &[b"STANDIN_PHYS_OFFSET=0xffffff8000000000", b"A=b"],
            auxv: &[(AT_PHDR, 0x10_0000_0040), (AT_PAGESZ, 4096)],
            random: *b"0123456789abcdef",
        };
        let placed = build(&mut area, top, &info).unwrap();
        assert_eq!(placed.sp % 16, 0);
        let r = Reader {
            area: &area,
            base: top - 4096,
        };
        let sp = placed.sp;
        assert_eq!(r.word(sp), 2);
        assert_eq!(r.string(r.word(sp + 8)), b"/hello");
        assert_eq!(r.string(r.word(sp + 16)), b"exit=3");
        assert_eq!(r.word(sp + 24), 0);
        assert_eq!(
            r.string(r.word(sp + 32)),
            b"STANDIN_PHYS_OFFSET=0xffffff8000000000"
        );
        assert_eq!(r.string(r.word(sp + 40)), b"A=b");
        assert_eq!(r.word(sp + 48), 0);
        let mut aux = Vec::new();
        let mut at = sp + 56;
        loop {
            let (k, v) = (r.word(at), r.word(at + 8));
            aux.push((k, v));
            at += 16;
            if k == AT_NULL {
                break;
            }
        }
        assert_eq!(aux[0], (AT_PHDR, 0x10_0000_0040));
        assert_eq!(aux[1], (AT_PAGESZ, 4096));
        assert_eq!(aux[2].0, AT_RANDOM);
        let o = (aux[2].1 - r.base) as usize;
        assert_eq!(&area[o..o + 16], b"0123456789abcdef");
        assert_eq!(aux[2].1 % 16, 0);
        assert_eq!(aux[3].0, AT_EXECFN);
        assert_eq!(r.string(aux[3].1), b"/hello");
        assert_eq!(aux[4], (AT_NULL, 0));
        assert_eq!(aux.len(), 5);
        // Everything lies between sp and top, the end marker included.
        assert_eq!(r.word(top - 8), 0);
        assert_eq!(placed.used as u64, top - sp);
        assert!(at <= aux[2].1);
    }

    #[test]
    fn empty_argv_has_no_execfn() {
        let mut area = vec![0u8; 512];
        let top = 0x1000u64 + 512;
        let info = StartInfo {
            argv: &[],
            envp: &[],
            auxv: &[],
            random: [1; 16],
        };
        let placed = build(&mut area, top, &info).unwrap();
        let r = Reader {
            area: &area,
            base: top - 512,
        };
        assert_eq!(r.word(placed.sp), 0);
        assert_eq!(r.word(placed.sp + 8), 0);
        assert_eq!(r.word(placed.sp + 16), 0);
        assert_eq!(r.word(placed.sp + 24), AT_RANDOM);
        assert_eq!(r.word(placed.sp + 40), AT_NULL);
    }

    #[test]
    fn too_small_is_an_error_not_a_panic() {
        let mut area = vec![0u8; 64];
        let long = [b'x'; 100];
        let info = StartInfo {
            argv: &[&long],
            envp: &[],
            auxv: &[],
            random: [0; 16],
        };
        let err = build(&mut area, 0x10_0000, &info).unwrap_err();
        assert!(err.needed > 64);
    }
}
