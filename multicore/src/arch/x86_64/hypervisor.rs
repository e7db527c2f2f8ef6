//! Which hypervisor the CPU runs under, from its CPUID signature: CPUID.1:ECX bit 31 says there is
//! one, and leaf 0x4000_0000 gives its 12-byte signature in EBX, ECX, EDX (SDM Vol. 2A CPUID:
//! no processor answers leaves 0x4000_0000-0x4FFF_FFFF itself, which leaves them to
//! hypervisors).

/// The hypervisors this library tells apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hypervisor {
    /// No hypervisor bit: bare metal (or a hypervisor that hides itself).
    None,
    /// "KVMKVMKVM\0\0\0": Linux KVM (QEMU's `-accel kvm`, Firecracker, cloud-hypervisor).
    Kvm,
    /// "TCGTCGTCGTCG": QEMU's TCG, which translates guest code before it runs it.
    Tcg,
    /// Another signature.
    Other([u8; 12]),
}

impl Hypervisor {
    /// The running CPU's hypervisor.
    pub fn detect() -> Hypervisor {
        let cpuid = raw_cpuid::native_cpuid::cpuid_count;
        Self::from_cpuid(|leaf| {
            let r = cpuid(leaf, 0);
            [r.eax, r.ebx, r.ecx, r.edx]
        })
    }

    /// The hypervisor that `cpuid` (leaf -> EAX, EBX, ECX, EDX) describes.
    pub fn from_cpuid(cpuid: impl Fn(u32) -> [u32; 4]) -> Hypervisor {
        const HYPERVISOR_BIT: u32 = 1 << 31; // CPUID.1:ECX[31]
        if cpuid(1)[2] & HYPERVISOR_BIT == 0 {
            return Hypervisor::None;
        }
        let [_, ebx, ecx, edx] = cpuid(0x4000_0000);
        let mut signature = [0u8; 12];
        for (chunk, word) in signature.chunks_exact_mut(4).zip([ebx, ecx, edx]) {
            chunk.copy_from_slice(&word.to_le_bytes());
        }
        match &signature {
            b"KVMKVMKVM\0\0\0" => Hypervisor::Kvm,
            b"TCGTCGTCGTCG" => Hypervisor::Tcg,
            _ => Hypervisor::Other(signature),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(hv_bit: bool, sig: &[u8; 12]) -> Hypervisor {
        let word = |i: usize| u32::from_le_bytes(sig[i..i + 4].try_into().unwrap());
        Hypervisor::from_cpuid(|leaf| match leaf {
            1 => [0, 0, u32::from(hv_bit) << 31, 0],
            0x4000_0000 => [0x4000_0001, word(0), word(4), word(8)],
            _ => [0; 4],
        })
    }

    #[test]
    fn tells_kvm_tcg_others_and_bare_metal_apart() {
        assert_eq!(with(true, b"KVMKVMKVM\0\0\0"), Hypervisor::Kvm);
        assert_eq!(with(true, b"TCGTCGTCGTCG"), Hypervisor::Tcg);
        assert_eq!(
            with(true, b"Microsoft Hv"),
            Hypervisor::Other(*b"Microsoft Hv")
        );
        // Without the hypervisor bit the leaf is not looked at (on bare metal it holds
        // whatever the highest basic leaf returns).
        assert_eq!(with(false, b"TCGTCGTCGTCG"), Hypervisor::None);
    }
}
