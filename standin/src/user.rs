//! Reading and writing the program's memory on behalf of a system call, with the checks Linux
//! makes: every page of the buffer mapped (and writable, to write), nothing in the host's own
//! identity-mapped region; else EFAULT. Copies go through the program's own addresses (the
//! host shares its page tables), in bounded pieces, never as long-lived references.

use standin_core::layout::HOST_IDENTITY_END;
use standin_core::linux::errno::EFAULT;
use standin_core::ranges::{Range, PAGE};

use crate::paging;

/// Checks `[addr, addr + len)` for a read (or a write).
fn check(addr: u64, len: usize, write: bool) -> Result<(), u64> {
    if len == 0 {
        return Ok(());
    }
    let end = addr.checked_add(len as u64).ok_or(EFAULT)?;
    let range = Range::new(addr, end);
    if range.overlaps(&Range::new(0, HOST_IDENTITY_END)) {
        return Err(EFAULT);
    }
    let mut page = addr & !(PAGE - 1);
    while page < end {
        match paging::translate(page) {
            Some((_, writable)) if writable || !write => {}
            _ => return Err(EFAULT),
        }
        page += PAGE;
    }
    Ok(())
}

/// Copies `buf.len()` bytes from the program's `addr`.
pub fn copy_from(addr: u64, buf: &mut [u8]) -> Result<(), u64> {
    check(addr, buf.len(), false)?;
    // SAFETY: every page of the source is mapped (checked just above, with interrupts off and
    // one CPU in host code, so nothing unmaps it meanwhile) and it is not host memory.
    unsafe { core::ptr::copy_nonoverlapping(addr as *const u8, buf.as_mut_ptr(), buf.len()) };
    Ok(())
}

/// Copies `bytes` to the program's `addr`.
pub fn copy_to(addr: u64, bytes: &[u8]) -> Result<(), u64> {
    check(addr, bytes.len(), true)?;
    // SAFETY: every page of the destination is mapped writable (checked just above, nothing
    // changes it meanwhile) and it is not host memory.
    unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), addr as *mut u8, bytes.len()) };
    Ok(())
}

/// Reads a u32 (futex words).
pub fn read_u32(addr: u64) -> Result<u32, u64> {
    let mut b = [0u8; 4];
    copy_from(addr, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// Reads a u64.
pub fn read_u64(addr: u64) -> Result<u64, u64> {
    let mut b = [0u8; 8];
    copy_from(addr, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

/// Writes consecutive u64 words (the C structs answered here are all made of 64-bit fields).
pub fn write_words(addr: u64, words: &[u64]) -> Result<(), u64> {
    let mut bytes = [0u8; 64];
    let len = words.len() * 8;
    assert!(len <= bytes.len(), "write_words: at most 8 words");
    for (chunk, w) in bytes.chunks_mut(8).zip(words) {
        chunk.copy_from_slice(&w.to_le_bytes());
    }
    copy_to(addr, &bytes[..len])
}

/// Writes `bytes` at the program's `addr` whatever its page rights are (through the direct
/// map): the loader filling read-only or executable segments. Every page must be mapped.
pub fn fill_program_memory(addr: u64, bytes: &[u8]) -> Result<(), ()> {
    let mut done = 0;
    while done < bytes.len() {
        let at = addr + done as u64;
        let in_page = ((PAGE - (at % PAGE)) as usize).min(bytes.len() - done);
        let entry = paging::leaf(at & !(PAGE - 1)).ok_or(())?;
        if entry & (paging::PRESENT | paging::BACKED) == 0 {
            return Err(());
        }
        let phys = (entry & 0x000f_ffff_ffff_f000) + at % PAGE;
        // SAFETY: the frame belongs to the program's mapping (present or kept, checked), is
        // RAM and is reached through the direct map; the piece stays inside the page.
        unsafe {
            core::ptr::copy_nonoverlapping(
                bytes[done..].as_ptr(),
                paging::phys_to_virt(phys),
                in_page,
            )
        };
        done += in_page;
    }
    Ok(())
}
