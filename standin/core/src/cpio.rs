//! Reading a cpio "newc" archive (the initramfs format): `070701` headers of thirteen 8-digit
//! hex fields, the NUL-terminated name, the data, each padded to 4 bytes; the last entry is
//! named `TRAILER!!!` (format as documented in the Linux kernel's
//! `Documentation/driver-api/early-userspace/buffer-format.rst`).

use core::fmt;

/// Header size: 6 magic bytes + 13 fields of 8 hex digits.
const HEADER_LEN: usize = 110;
/// `c_mode` file-type bits and the regular-file type (`S_IFMT`, `S_IFREG`).
const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const TRAILER: &str = "TRAILER!!!";

/// Field indexes in the header after the magic.
const FIELD_MODE: usize = 1;
const FIELD_FILESIZE: usize = 6;
const FIELD_NAMESIZE: usize = 11;

/// One archive member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Its path as stored (often without a leading `/`, sometimes with `./`).
    pub name: &'a str,
    /// `c_mode`: type and permission bits.
    pub mode: u32,
    /// Its contents.
    pub data: &'a [u8],
}

impl Entry<'_> {
    /// A regular file (not a directory, link or device).
    pub fn is_regular_file(&self) -> bool {
        self.mode & S_IFMT == S_IFREG
    }
}

/// What is wrong with the archive; `offset` is where the bad header starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CpioError {
    /// Gzip data: the host takes uncompressed archives only.
    Compressed,
    /// No `070701`/`070702` magic where a header must start.
    BadMagic {
        /// Byte offset in the archive.
        offset: usize,
    },
    /// A header field is not 8 hex digits.
    BadField {
        /// Byte offset in the archive.
        offset: usize,
    },
    /// A header, name or data runs past the end.
    Truncated {
        /// Byte offset in the archive.
        offset: usize,
    },
    /// A name that is not NUL-terminated UTF-8, or has a NUL before its end.
    BadName {
        /// Byte offset in the archive.
        offset: usize,
    },
    /// The archive ended without a `TRAILER!!!` entry.
    NoTrailer,
}

impl fmt::Display for CpioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CpioError::Compressed => {
                f.write_str("the initrd is gzip-compressed; give an uncompressed cpio (newc)")
            }
            CpioError::BadMagic { offset } => write!(
                f,
                "not a cpio newc archive: no 070701 magic at byte {offset}"
            ),
            CpioError::BadField { offset } => {
                write!(f, "cpio header at byte {offset} has a non-hex field")
            }
            CpioError::Truncated { offset } => {
                write!(
                    f,
                    "cpio entry at byte {offset} runs past the end of the initrd"
                )
            }
            CpioError::BadName { offset } => {
                write!(f, "cpio entry at byte {offset} has a malformed name")
            }
            CpioError::NoTrailer => f.write_str("cpio archive ends without its TRAILER!!! entry"),
        }
    }
}

/// The members of `archive` in order, up to (not including) the trailer.
pub fn entries(archive: &[u8]) -> Entries<'_> {
    Entries {
        archive,
        offset: 0,
        done: false,
    }
}

/// Iterator over an archive's members; yields one error and stops on malformed input.
pub struct Entries<'a> {
    archive: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, CpioError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let result = read_entry(self.archive, self.offset);
        match result {
            Ok((entry, next)) if entry.name != TRAILER => {
                self.offset = next;
                Some(Ok(entry))
            }
            Ok(_) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// The entry at `offset` and where the next one starts.
fn read_entry(archive: &[u8], offset: usize) -> Result<(Entry<'_>, usize), CpioError> {
    if offset == 0 && archive.starts_with(&[0x1f, 0x8b]) {
        return Err(CpioError::Compressed);
    }
    if offset >= archive.len() {
        return Err(CpioError::NoTrailer);
    }
    let header = archive
        .get(offset..offset + HEADER_LEN)
        .ok_or(CpioError::Truncated { offset })?;
    if &header[..6] != b"070701" && &header[..6] != b"070702" {
        return Err(CpioError::BadMagic { offset });
    }
    let field = |i: usize| -> Result<u32, CpioError> {
        let digits = &header[6 + 8 * i..6 + 8 * (i + 1)];
        let text = core::str::from_utf8(digits).map_err(|_| CpioError::BadField { offset })?;
        u32::from_str_radix(text, 16).map_err(|_| CpioError::BadField { offset })
    };
    let mode = field(FIELD_MODE)?;
    let file_size = field(FIELD_FILESIZE)? as usize;
    let name_size = field(FIELD_NAMESIZE)? as usize;
    let name_start = offset + HEADER_LEN;
    let name_bytes = archive
        .get(name_start..name_start + name_size)
        .ok_or(CpioError::Truncated { offset })?;
    let (&nul, name) = name_bytes
        .split_last()
        .ok_or(CpioError::BadName { offset })?;
    // The name is a C string of namesize bytes: a NUL before the last byte would make it
    // another name for a kernel that reads up to the first one.
    if nul != 0 || name.contains(&0) {
        return Err(CpioError::BadName { offset });
    }
    let name = core::str::from_utf8(name).map_err(|_| CpioError::BadName { offset })?;
    let data_start = (name_start + name_size).next_multiple_of(4);
    let data = archive
        .get(data_start..data_start + file_size)
        .ok_or(CpioError::Truncated { offset })?;
    let next = (data_start + file_size).next_multiple_of(4);
    Ok((Entry { name, mode, data }, next))
}

/// A path with any leading `/` and `./` removed: `/hello`, `./hello` and `hello` name the same
/// member.
pub fn normalize(path: &str) -> &str {
    let mut p = path;
    loop {
        if let Some(rest) = p.strip_prefix('/') {
            p = rest;
        } else if let Some(rest) = p.strip_prefix("./") {
            p = rest;
        } else {
            return p;
        }
    }
}

/// The member named `path` (compared after [`normalize`]), `Ok(None)` when there is none.
pub fn find<'a>(archive: &'a [u8], path: &str) -> Result<Option<Entry<'a>>, CpioError> {
    let wanted = normalize(path);
    for entry in entries(archive) {
        let entry = entry?;
        if normalize(entry.name) == wanted {
            return Ok(Some(entry));
        }
    }
    Ok(None)
}

/// Appends one newc member to `out`: the header (inode `ino`, `mode`, one link, the sizes,
/// every other field 0), the NUL-terminated name and the data, each padded to 4 bytes.
#[cfg(any(test, feature = "writer"))]
pub fn write_member(out: &mut alloc::vec::Vec<u8>, ino: u32, name: &str, mode: u32, data: &[u8]) {
    // ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor, rdevmajor, rdevminor,
    // namesize (with the NUL), check.
    let fields = [
        ino,
        mode,
        0,
        0,
        1,
        0,
        data.len() as u32,
        0,
        0,
        0,
        0,
        name.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        for shift in (0..8).rev() {
            out.push(b"0123456789abcdef"[(field >> (4 * shift)) as usize & 0xF]);
        }
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.resize(out.len().next_multiple_of(4), 0);
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(4), 0);
}

/// A whole archive of `(name, mode, data)` members (inodes 1, 2, ...) and the trailer: what the
/// tools that build an initrd write (the host itself only reads).
#[cfg(any(test, feature = "writer"))]
pub fn archive(files: &[(&str, u32, &[u8])]) -> alloc::vec::Vec<u8> {
    let mut out = alloc::vec::Vec::new();
    for (i, (name, mode, data)) in files.iter().enumerate() {
        write_member(&mut out, i as u32 + 1, name, *mode, data);
    }
    write_member(&mut out, 0, TRAILER, 0, &[]);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn finds_members_by_any_spelling() {
        let a = archive(&[
            ("bin", 0o040755, b""),
            ("bin/tool", 0o100755, b"abc"),
            ("./hello", 0o100755, b"\x7fELF....."),
        ]);
        let hello = find(&a, "/hello").unwrap().unwrap();
        assert_eq!(hello.data, b"\x7fELF.....");
        assert!(hello.is_regular_file());
        assert_eq!(find(&a, "hello").unwrap().unwrap().name, "./hello");
        assert_eq!(find(&a, "/bin/tool").unwrap().unwrap().data, b"abc");
        assert!(!find(&a, "bin").unwrap().unwrap().is_regular_file());
        assert_eq!(find(&a, "/missing").unwrap(), None);
        assert_eq!(entries(&a).count(), 3);
    }

    #[test]
    fn rejects_bad_archives() {
        assert_eq!(
            find(b"\x1f\x8b\x08\x00", "x").unwrap_err(),
            CpioError::Compressed
        );
        assert_eq!(
            find(b"ELF and so on", "x").unwrap_err(),
            CpioError::Truncated { offset: 0 }
        );
        let mut a = archive(&[("hello", 0o100755, b"1234")]);
        a[0] = b'1';
        assert_eq!(
            find(&a, "x").unwrap_err(),
            CpioError::BadMagic { offset: 0 }
        );
        let mut a = archive(&[("hello", 0o100755, b"1234")]);
        a[6 + 8 * FIELD_FILESIZE] = b'z';
        assert_eq!(
            find(&a, "x").unwrap_err(),
            CpioError::BadField { offset: 0 }
        );
        let a = archive(&[("hello", 0o100755, &[7u8; 100])]);
        assert_eq!(
            find(&a[..150], "x").unwrap_err(),
            CpioError::Truncated { offset: 0 }
        );
        let mut no_trailer = Vec::new();
        write_member(&mut no_trailer, 1, "hello", 0o100755, b"1234");
        assert_eq!(find(&no_trailer, "x").unwrap_err(), CpioError::NoTrailer);
        assert_eq!(find(&[], "x").unwrap_err(), CpioError::NoTrailer);
    }

    #[test]
    fn names_with_a_nul_inside_are_refused() {
        // Found by the standin_cpio fuzz target (fuzz/corpus/standin_cpio/nul-in-name): the
        // name "hel\0lo" was taken whole, though whatever reads it as a C string sees "hel".
        let mut a = archive(&[("hello", 0o100755, b"1234")]);
        a[110 + 3] = 0;
        assert_eq!(
            find(&a, "hel").unwrap_err(),
            CpioError::BadName { offset: 0 }
        );
    }

    #[test]
    fn normalizes_paths() {
        assert_eq!(normalize("/hello"), "hello");
        assert_eq!(normalize(".//./hello"), "hello");
        assert_eq!(normalize("a/b"), "a/b");
    }
}
