//! The host's command line (`-append`): host options, then `--`, then the program's argv.
//!
//! ```text
//! load=0x2000000000 occupy=0x8000 env.RUST_BACKTRACE=1 -- /hello exit=3
//! ```
//! Host options (strict: an unknown one is an error, listing the valid ones):
//! - `load=ADDR`: the program's load base (default 0x10_0000_0000), 4 KiB aligned, >= 4 GiB;
//! - `stack=SIZE`: the program's stack size (`512K`, `8M`, bytes; default 1M);
//! - `occupy=PAGE`: a page of the dead boot stack (0x1000-0x10fff) the host fills with a canary
//!   of its own and leaves out of `STANDIN_LOWMEM_FREE`, as if it still used it (repeatable);
//! - `env.KEY=VALUE`: adds `KEY=VALUE` to the program's environment (repeatable).
//!
//! The program part is split at whitespace (no quoting); its first word is the path looked up
//! in the initrd and becomes argv[0].

use core::fmt;

use crate::layout::{self, DEAD_BOOT_STACK, DEFAULT_LOAD_BASE, DEFAULT_STACK_SIZE, MAX_STACK_SIZE};

/// At most this many `occupy=` options.
pub const MAX_OCCUPY: usize = 8;
/// At most this many `env.` options.
pub const MAX_ENV: usize = 16;
/// At most this many program arguments (argv[0] included).
pub const MAX_ARGS: usize = 32;

/// What `-append` asks for.
#[derive(Debug, Clone)]
pub struct CommandLine<'a> {
    /// `load=`.
    pub load_base: u64,
    /// `stack=`.
    pub stack_size: u64,
    occupy: [u64; MAX_OCCUPY],
    occupy_count: usize,
    env: [(&'a str, &'a str); MAX_ENV],
    env_count: usize,
    args: [&'a str; MAX_ARGS],
    arg_count: usize,
}

impl<'a> CommandLine<'a> {
    /// The `occupy=` pages.
    pub fn occupied_pages(&self) -> &[u64] {
        &self.occupy[..self.occupy_count]
    }

    /// The `env.KEY=VALUE` pairs, in order.
    pub fn extra_env(&self) -> &[(&'a str, &'a str)] {
        &self.env[..self.env_count]
    }

    /// The program's argv; argv[0] is its path.
    pub fn argv(&self) -> &[&'a str] {
        &self.args[..self.arg_count]
    }

    /// The program's path (argv[0]).
    pub fn program(&self) -> &'a str {
        self.args[0]
    }
}

/// What is wrong with the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineError<'a> {
    /// Nothing after `--` (or no `--`).
    NoProgram,
    /// An option the host does not know.
    Unknown(&'a str),
    /// A known option with a value it cannot take.
    BadValue(&'a str, &'static str),
    /// Too many of one repeatable option.
    TooMany(&'static str),
    /// More program arguments than [`MAX_ARGS`].
    TooManyArgs,
}

/// The valid options, for error messages.
pub const USAGE: &str =
    "host options: load=ADDR stack=SIZE occupy=PAGE env.KEY=VALUE, then `-- /program args...`";

impl fmt::Display for CmdlineError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CmdlineError::NoProgram => {
                write!(f, "no program to run: name it after `--` ({USAGE})")
            }
            CmdlineError::Unknown(o) => write!(f, "unknown host option `{o}` ({USAGE})"),
            CmdlineError::BadValue(o, why) => write!(f, "bad host option `{o}`: {why}"),
            CmdlineError::TooMany(what) => write!(f, "too many {what} options"),
            CmdlineError::TooManyArgs => {
                write!(f, "more than {MAX_ARGS} program arguments")
            }
        }
    }
}

/// Splits at the first standalone `--`: (host part, program part).
pub fn split(cmdline: &str) -> (&str, Option<&str>) {
    let mut offset = 0;
    for word in cmdline.split(' ') {
        if word == "--" {
            return (&cmdline[..offset], Some(&cmdline[offset + 2..]));
        }
        offset += word.len() + 1;
    }
    (cmdline, None)
}

/// A number: `0x` hex or decimal, `_` allowed between digits.
pub fn parse_number(text: &str) -> Option<u64> {
    let (digits, radix) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (text, 10),
    };
    if digits.is_empty() || digits.starts_with('_') {
        return None;
    }
    let mut value: u64 = 0;
    for c in digits.chars().filter(|&c| c != '_') {
        let d = c.to_digit(radix)? as u64;
        value = value.checked_mul(radix as u64)?.checked_add(d)?;
    }
    Some(value)
}

/// A size: a number with an optional `K`, `M` or `G` suffix.
pub fn parse_size(text: &str) -> Option<u64> {
    let (number, unit) = match text.as_bytes().last()? {
        b'K' | b'k' => (&text[..text.len() - 1], 1 << 10),
        b'M' | b'm' => (&text[..text.len() - 1], 1 << 20),
        b'G' | b'g' => (&text[..text.len() - 1], 1 << 30),
        _ => (text, 1),
    };
    parse_number(number)?.checked_mul(unit)
}

/// Parses the whole command line.
pub fn parse(cmdline: &str) -> Result<CommandLine<'_>, CmdlineError<'_>> {
    let (host, program) = split(cmdline);
    let mut line = CommandLine {
        load_base: DEFAULT_LOAD_BASE,
        stack_size: DEFAULT_STACK_SIZE,
        occupy: [0; MAX_OCCUPY],
        occupy_count: 0,
        env: [("", ""); MAX_ENV],
        env_count: 0,
        args: [""; MAX_ARGS],
        arg_count: 0,
    };
    for option in host.split_ascii_whitespace() {
        let bad = |why| CmdlineError::BadValue(option, why);
        if let Some(pair) = option.strip_prefix("env.") {
            let (key, value) = pair.split_once('=').ok_or(bad("want env.KEY=VALUE"))?;
            if key.is_empty() {
                return Err(bad("empty variable name"));
            }
            if line.env_count == MAX_ENV {
                return Err(CmdlineError::TooMany("env."));
            }
            line.env[line.env_count] = (key, value);
            line.env_count += 1;
            continue;
        }
        let Some((key, value)) = option.split_once('=') else {
            return Err(CmdlineError::Unknown(option));
        };
        match key {
            "load" => {
                let base = parse_number(value).ok_or(bad("not a number"))?;
                layout::check_load_base(base, 0).map_err(|e| {
                    bad(match e {
                        layout::BadLoadBase::Unaligned => "not a multiple of 4 KiB",
                        layout::BadLoadBase::TooLow => "below 4 GiB (0x100000000)",
                        layout::BadLoadBase::TooHigh => {
                            "too high (the mmap area starts at 0x400000000000)"
                        }
                    })
                })?;
                line.load_base = base;
            }
            "stack" => {
                let size = parse_size(value).ok_or(bad("not a size (e.g. 512K, 8M)"))?;
                if !size.is_multiple_of(4096) || !(64 << 10..=MAX_STACK_SIZE).contains(&size) {
                    return Err(bad("want a multiple of 4K between 64K and 256M"));
                }
                line.stack_size = size;
            }
            "occupy" => {
                let page = parse_number(value).ok_or(bad("not a number"))?;
                // The rest of low memory holds the host's page tables and the program's own
                // pages: only the dead boot stack can be lent, so only it can be withheld.
                if !page.is_multiple_of(4096) || !DEAD_BOOT_STACK.contains(page) {
                    return Err(bad(
                        "want a 4 KiB-aligned page of the dead boot stack (0x1000 to 0x10000)",
                    ));
                }
                if line.occupy_count == MAX_OCCUPY {
                    return Err(CmdlineError::TooMany("occupy="));
                }
                line.occupy[line.occupy_count] = page;
                line.occupy_count += 1;
            }
            _ => return Err(CmdlineError::Unknown(option)),
        }
    }
    for arg in program.unwrap_or("").split_ascii_whitespace() {
        if line.arg_count == MAX_ARGS {
            return Err(CmdlineError::TooManyArgs);
        }
        line.args[line.arg_count] = arg;
        line.arg_count += 1;
    }
    if line.arg_count == 0 {
        return Err(CmdlineError::NoProgram);
    }
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_first_double_dash() {
        assert_eq!(split("a=1 -- /p x -- y"), ("a=1 ", Some(" /p x -- y")));
        assert_eq!(split("-- /p"), ("", Some(" /p")));
        assert_eq!(split("a=1 --x"), ("a=1 --x", None));
        assert_eq!(split(""), ("", None));
    }

    #[test]
    fn parses_every_option() {
        let line = parse(
            "load=0x20_0000_0000 stack=8M occupy=0x8000 occupy=0x10000 env.RUST_BACKTRACE=1 env.EMPTY= -- /hello exit=3  two",
        )
        .unwrap();
        assert_eq!(line.load_base, 0x20_0000_0000);
        assert_eq!(line.stack_size, 8 << 20);
        assert_eq!(line.occupied_pages(), &[0x8000, 0x10000]);
        assert_eq!(line.extra_env(), &[("RUST_BACKTRACE", "1"), ("EMPTY", "")]);
        assert_eq!(line.argv(), &["/hello", "exit=3", "two"]);
        assert_eq!(line.program(), "/hello");
    }

    #[test]
    fn defaults() {
        let line = parse("-- /hello").unwrap();
        assert_eq!(line.load_base, DEFAULT_LOAD_BASE);
        assert_eq!(line.stack_size, DEFAULT_STACK_SIZE);
        assert!(line.occupied_pages().is_empty());
        assert!(line.extra_env().is_empty());
    }

    #[test]
    fn rejects_bad_lines() {
        assert_eq!(
            parse("load=0x1000000000").unwrap_err(),
            CmdlineError::NoProgram
        );
        assert_eq!(parse("-- ").unwrap_err(), CmdlineError::NoProgram);
        assert_eq!(
            parse("cpus=4 -- /p").unwrap_err(),
            CmdlineError::Unknown("cpus=4")
        );
        assert_eq!(
            parse("verbose -- /p").unwrap_err(),
            CmdlineError::Unknown("verbose")
        );
        for bad in [
            "load=zz",
            "load=0x1000000800",
            "load=0x100000",
            "load=0x7fff00000000",
            "stack=3",
            "stack=1G",
            "occupy=0x8001",
            "occupy=0x11000",
            "occupy=0x20000",
            "occupy=0x100000",
            "occupy=0",
            "env.=x",
            "env.NOVALUE",
        ] {
            let line = format!("{bad} -- /p");
            assert!(
                matches!(parse(&line), Err(CmdlineError::BadValue(o, _)) if o == bad),
                "{bad}"
            );
        }
        let many = "occupy=0x2000 ".repeat(MAX_OCCUPY + 1) + "-- /p";
        assert_eq!(parse(&many).unwrap_err(), CmdlineError::TooMany("occupy="));
        let args = "-- /p".to_string() + &" a".repeat(MAX_ARGS);
        assert_eq!(parse(&args).unwrap_err(), CmdlineError::TooManyArgs);
    }

    #[test]
    fn numbers_and_sizes() {
        assert_eq!(parse_number("0x10_0000_0000"), Some(0x10_0000_0000));
        assert_eq!(parse_number("4096"), Some(4096));
        assert_eq!(parse_number("0x"), None);
        assert_eq!(parse_number("0x1_0000_0000_0000_0000"), None);
        assert_eq!(parse_size("512K"), Some(512 << 10));
        assert_eq!(parse_size("8m"), Some(8 << 20));
        assert_eq!(parse_size("0x1000"), Some(4096));
        assert_eq!(parse_size("K"), None);
    }
}
