//! The Interrupt Command Register, built from typed fields (SDM Vol. 3A §11.6.1, Figure 11-12).
//!
//! Pure bit layout, shared by the xAPIC (two 32-bit MMIO registers) and x2APIC (one 64-bit MSR)
//! paths, and tested on the host.

/// ICR bits 10:8, the delivery mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum DeliveryMode {
    /// Deliver `vector` as a normal interrupt.
    Fixed = 0b000,
    /// Non-maskable interrupt (vector ignored).
    Nmi = 0b100,
    /// INIT: put the target in the wait-for-SIPI state (vector ignored).
    Init = 0b101,
    /// Start-up IPI: the target, if waiting for SIPI, starts in real mode at `vector << 12`.
    StartUp = 0b110,
}

/// ICR bits 19:18, the destination shorthand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Shorthand {
    /// Use the destination field.
    None = 0b00,
    /// The sender itself.
    ToSelf = 0b01,
    /// Every CPU including the sender.
    AllIncludingSelf = 0b10,
    /// Every CPU but the sender.
    AllExcludingSelf = 0b11,
}

/// ICR bit 12 (xAPIC only): the previous IPI is still being sent.
pub const DELIVERY_STATUS_PENDING: u32 = 1 << 12;
/// ICR bit 14: level assert (must be 1 for every mode but INIT de-assert).
const LEVEL_ASSERT: u32 = 1 << 14;

/// The low 32 bits of an ICR value, physical destination mode, edge triggered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icr {
    low: u32,
}

impl Icr {
    /// An IPI of `mode` with `vector`, level asserted, edge triggered, physical destination.
    pub const fn new(mode: DeliveryMode, vector: u8, shorthand: Shorthand) -> Self {
        Icr {
            low: vector as u32 | (mode as u32) << 8 | LEVEL_ASSERT | (shorthand as u32) << 18,
        }
    }

    /// INIT to the destination CPU (SDM Vol. 3A §9.4.4.1: "INIT IPI").
    pub const fn init() -> Self {
        Self::new(DeliveryMode::Init, 0, Shorthand::None)
    }

    /// Start-up IPI: the AP starts at physical `page << 12` with CS = `page << 8`, IP = 0.
    pub const fn startup(page: u8) -> Self {
        Self::new(DeliveryMode::StartUp, page, Shorthand::None)
    }

    /// A fixed interrupt with `vector`.
    pub const fn fixed(vector: u8) -> Self {
        Self::new(DeliveryMode::Fixed, vector, Shorthand::None)
    }

    /// A non-maskable interrupt.
    pub const fn nmi() -> Self {
        Self::new(DeliveryMode::Nmi, 0, Shorthand::None)
    }

    /// Low 32 bits (xAPIC ICR_LOW at offset 0x300).
    pub const fn low(self) -> u32 {
        self.low
    }

    /// xAPIC ICR_HIGH (offset 0x310): destination APIC ID in bits 31:24 (ICR bits 63:56).
    pub const fn xapic_high(dest: u32) -> u32 {
        dest << 24
    }

    /// The single 64-bit x2APIC ICR (MSR 0x830): 32-bit destination in bits 63:32
    /// (SDM Vol. 3A §11.12.9).
    pub const fn x2apic_value(self, dest: u32) -> u64 {
        (dest as u64) << 32 | self.low as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_is_level_assert_edge_physical() {
        assert_eq!(Icr::init().low(), 0x0000_4500);
    }

    #[test]
    fn startup_carries_the_page_number() {
        assert_eq!(Icr::startup(0x08).low(), 0x0000_4608);
        assert_eq!(Icr::startup(0x9f).low(), 0x0000_469f);
    }

    #[test]
    fn fixed_nmi_and_shorthand() {
        assert_eq!(Icr::fixed(0xf0).low(), 0x0000_40f0);
        assert_eq!(Icr::nmi().low(), 0x0000_4400);
        assert_eq!(
            Icr::new(DeliveryMode::Fixed, 0x40, Shorthand::AllExcludingSelf).low(),
            0x000c_4040
        );
    }

    #[test]
    fn destinations() {
        assert_eq!(Icr::xapic_high(3), 0x0300_0000);
        assert_eq!(Icr::init().x2apic_value(300), (300u64 << 32) | 0x4500);
    }
}
