# rust_multicore: build the kernel image, boot it in QEMU, test it.
#   make            build the release image target/x86_64-unknown-none/release/rust_multicore
#   make run        boot it in QEMU with 4 CPUs (KVM when usable, else TCG), serial on the terminal
#   make test       every test: host unit tests, lints, and the QEMU integration matrix
# Variables: SMP (run: CPU count), MACHINE (pc|q35|microvm), ACCEL (auto|kvm|tcg), APPEND
# (kernel command line), QEMU (qemu-system-x86_64 binary).

SMP     ?= 4
MACHINE ?= pc
ACCEL   ?= auto
APPEND  ?=
IMAGE   := target/x86_64-unknown-none/release/rust_multicore
CARGO   ?= cargo

.PHONY: example all asm rust run debug test test-host test-loom test-qemu lint fuzz bench bench-quick setup setup-qemu10 clean

all: rust

# The assembly (boot entry, AP trampoline) is assembled by rustc from global_asm! blocks; this
# builds the library that holds the trampoline for the kernel target and lists its relocations.
asm: setup
	$(CARGO) build --release -p multicore --target x86_64-unknown-none
	@echo "trampoline: multicore/src/arch/x86_64/trampoline.S (relocations listed in .rodata.ap_trampoline_relocs)"

rust: setup
	$(CARGO) build --release -p rust_multicore --target x86_64-unknown-none
	@echo "image: $(IMAGE)"

run: setup
	$(CARGO) xtask run --smp $(SMP) --machine $(MACHINE) --accel $(ACCEL) $(if $(APPEND),--append '$(APPEND)')

# The hosted example (hello_cpus/, a std program) on the stand-in host kernel (standin/): the
# library starts every CPU from the program's main. KVM is tried and, where this machine's KVM
# cannot run ring-0 SSE code, the runner says so and uses TCG.
example: setup
	$(CARGO) xtask standin --package hello_cpus --smp $(SMP) --accel $(ACCEL)

# QEMU halts before the first instruction and waits for gdb on :1234 (instructions printed).
debug: setup
	$(CARGO) xtask run --gdb --smp $(SMP) --machine $(MACHINE) --accel $(ACCEL) $(if $(APPEND),--append '$(APPEND)')

test: setup test-host test-loom lint test-qemu bench-quick

test-host:
	$(CARGO) test

# The lock, cross-call queue and remote-free models under loom (every interleaving of a few
# threads); a build of its own, in its own target directory.
test-loom:
	RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom $(CARGO) test --release -p multicore --lib -- loom

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --all-targets -- -D warnings
	$(CARGO) clippy -p rust_multicore -p multicore -p standin_host --target x86_64-unknown-none --release -- -D warnings
	$(CARGO) clippy -p hello_cpus -p multicore -p multicore_capi --target x86_64-unknown-linux-musl --release -- -D warnings

test-qemu:
	$(CARGO) xtask qemu-test

# Every parser of bytes the project did not write under libFuzzer (nightly, cargo-fuzz),
# FUZZ_SECONDS each (default 60), FUZZ_TARGETS= to pick some; `make test` replays the corpus
# and a few thousand mutations of it on stable instead (fuzz/tests/replay.rs).
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_TARGETS='$(FUZZ_TARGETS)' bash fuzz/run.sh

# Bring-up benchmark: many boots per point, a Markdown table on the terminal and in
# bench/latest.md. bench-quick is the smoke run `make test` exercises (its numbers are not
# asserted; the runner fails if any boot fails or a figure is missing).
bench: setup
	$(CARGO) xtask bench

bench-quick: setup
	$(CARGO) xtask bench --quick --out target/bench-quick.md

setup:
	@bash scripts/setup.sh

setup-qemu10:
	@bash scripts/setup.sh --qemu10

clean:
	$(CARGO) clean
