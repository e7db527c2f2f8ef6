//! The demo's bring-up: the CPUs found (ACPI MADT, else MP tables) and reported, and the APs
//! started with the library, each printing its line and joining the runtime.

use core::fmt;

use multicore::arch::x86_64::apic::LocalApic;
use multicore::arch::x86_64::tsc::Tsc;
use multicore::boot::{start_aps, ApPhases, BringupPlan, BringupReport, CpuData, StartConfig};
use multicore::topology::{self, CpuSource};

use bootinfo::BootInfo;
use demo_options::{Options, TestCase, MAX_SUPPORTED_CPUS};

use crate::host::{self, DemoHost};
use crate::{memory, println};

/// The APIC IDs of the CPUs to start, the BSP first, at most `maxcpus` (plus the absent one of
/// `test=absent-ap`).
pub fn find_cpus(apic: &LocalApic, boot: &BootInfo, options: &Options) -> &'static [u32] {
    let Some(storage) = memory::alloc_zeroed_slice::<u32>(options.max_cpus as usize) else {
        fail!("out of memory for the CPU list");
    };
    let topo = topology::discover(&host::identity(), boot.rsdp, apic.id(), storage);
    report_topology(&topo, options.max_cpus);
    match options.test {
        Some(TestCase::AbsentAp) => with_absent_ap(topo.apic_ids),
        _ => topo.apic_ids,
    }
}

/// Starts the APs and prints the `bringup:` line; a CPU that did not start ends the run.
pub fn bring_up(
    host: &'static DemoHost,
    apic: &LocalApic,
    tsc: &Tsc,
    apic_ids: &[u32],
    options: &Options,
) -> BringupReport {
    let plan = BringupPlan {
        apic_ids,
        config: StartConfig {
            strategy: options.strategy,
            delays: options.delays,
            ap_stack_size: options.ap_stack_size,
        },
        entry: ap_main,
        arg: 0,
    };
    let report = match start_aps(host, apic, tsc, &plan) {
        Ok(report) => report,
        Err(e) => fail!("cannot start the APs: {e}"),
    };
    if !report.stack_guards && report.cpus.len() > 1 {
        println!("warning: AP stacks have no guard pages");
    }
    let wanted = report.cpus.len() as u32;
    if report.online() == wanted {
        println!("All CPUs started!");
    }
    println!(
        "bringup: cpus={} online={} time_us={} strategy={} delays={}",
        wanted,
        report.online(),
        report.time_us,
        options.strategy.as_str(),
        options.delays.as_str()
    );
    if report.online() != wanted {
        fail!("{} of {} APs did not start", report.aps_failed, wanted - 1)
    }
    report
}

/// One `phases:` line per AP: its phase stamps (multicore/src/boot/phases.rs) in nanoseconds
/// from the first INIT, `-` for a stamp it has not got (no second SIPI, typically).
pub fn print_phases(tsc: &Tsc, report: &BringupReport) {
    for cpu in &report.cpus[1..] {
        println!(
            "{}",
            PhaseLine {
                cpu: cpu.index,
                phases: cpu.phases(),
                start: report.start_tsc,
                hz: tsc.hz().max(1),
            }
        );
    }
}

/// A `phases:` line, formatted as one piece so that it prints as one line.
struct PhaseLine {
    cpu: u32,
    phases: ApPhases,
    start: u64,
    hz: u64,
}

impl fmt::Display for PhaseLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "phases: cpu={}", self.cpu)?;
        for (name, stamp) in self.phases.named() {
            match stamp {
                Some(t) => {
                    let ticks = t as i128 - self.start as i128;
                    write!(f, " {name}={}", ticks * 1_000_000_000 / self.hz as i128)?
                }
                None => write!(f, " {name}=-")?,
            }
        }
        Ok(())
    }
}

/// What each AP runs once the library has it in Rust: say so, join the runtime (which marks it
/// online once it waits there, and idles it until cross-CPU calls come). Its line is queued,
/// not written: the BSP's next line writes it out, after the APs it is still starting.
fn ap_main(cpu: &'static CpuData) -> ! {
    crate::console::queue(format_args!(
        "CPU {} online! APIC ID: {}\n",
        cpu.index, cpu.apic_id
    ));
    multicore::rt::join(cpu)
}

/// `test=absent-ap`: the CPU list plus one APIC ID that no CPU has (one above the highest),
/// so that the start path meets an AP that never answers.
fn with_absent_ap(ids: &[u32]) -> &'static [u32] {
    let absent = ids.iter().max().map_or(1, |m| m + 1);
    let Some(list) = memory::alloc_zeroed_slice::<u32>(ids.len() + 1) else {
        fail!("out of memory for the CPU list");
    };
    list[..ids.len()].copy_from_slice(ids);
    list[ids.len()] = absent;
    println!(
        "test: adding CPU {} with APIC ID {absent}, which no CPU has",
        ids.len()
    );
    list
}

fn report_topology(topo: &topology::Topology<'_>, max_cpus: u32) {
    if let Some(e) = &topo.acpi_error {
        println!("warning: ACPI tables unusable ({e}); falling back");
    }
    if let Some(e) = &topo.mp_error {
        println!("warning: MP tables unusable ({e})");
    }
    match topo.source {
        CpuSource::Acpi {
            via_xsdt,
            rsdp,
            rsdp_from_boot,
        } => println!(
            "CPUs from ACPI MADT (RSDP {:#x} from {}, via {})",
            rsdp,
            if rsdp_from_boot {
                "the boot loader"
            } else {
                "the BIOS area scan"
            },
            if via_xsdt { "XSDT" } else { "RSDT" }
        ),
        CpuSource::MpTable => println!("CPUs from MP tables (no usable ACPI)"),
        CpuSource::BspOnly => {
            println!("warning: no ACPI MADT and no MP tables: running on the BSP alone")
        }
    }
    println!("Found {} CPUs", topo.enabled);
    if topo.online_capable > 0 {
        println!(
            "{} more CPU slots are online-capable (hot-plug): not started",
            topo.online_capable
        );
    }
    if topo.disabled > 0 {
        println!("{} disabled CPU entries ignored", topo.disabled);
    }
    if topo.broadcast_ids > 0 {
        println!(
            "warning: {} CPU entries with the broadcast APIC ID ignored (an INIT to it would reach every CPU)",
            topo.broadcast_ids
        );
    }
    if !topo.bsp_listed && topo.source != CpuSource::BspOnly {
        println!("warning: the BSP's APIC ID is not in the CPU table");
    }
    if topo.truncated() {
        println!(
            "note: {} CPUs found, starting {} (maxcpus={}, at most {})",
            topo.enabled,
            topo.apic_ids.len(),
            max_cpus,
            MAX_SUPPORTED_CPUS
        );
    }
}
