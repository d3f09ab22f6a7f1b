# juice: build, run and test (GNU make). `make` alone is `make build`.
#
#   make setup      install the emulators and GRUB tools (Debian 12, root)
#   make build      build/juice.elf, build/juice-mb1test.elf, build/juice
#   make guests     the test guests, build/guests/NAME.elf (tests/guests)
#   make jeos       the default JeOS guest in build/jeos (juice jeos: Debian's
#                   kernel package, a u-root initramfs), built once and cached
#   make run        boot juice in QEMU running the JeOS guest and hand you
#                   its shell on this terminal (Ctrl-A x leaves); another guest
#                   with KERNEL=, INITRD= (empty for none), APPEND=, VMMEM=
#   make test       go vet, unit tests and the QEMU integration tests
#   make test-slow  long runs (soak) with -tags slow
#   make bench      boot figures (build/juice bench), VM-exit figures of the
#                   bench guest under juice and plain QEMU (juice bench --vm),
#                   the JeOS guest's boot to user space under juice and
#                   directly on QEMU (juice bench --jeos), virtio-blk
#                   throughput against QEMU's own (juice bench --blk),
#                   guest-to-guest TCP throughput against QEMU's own
#                   virtio-net (juice bench --net), VMS tiny JeOS VMs
#                   booted together: VMs per minute and juice's memory per
#                   VM (juice bench --vms), a parallel guest workload on 1
#                   and 2 vCPUs (juice bench --scale) and Go
#                   micro-benchmarks
#   make clean      remove build/

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build
# setup must finish before build, and build before the tests.
.NOTPARALLEL:

GO ?= go
BUILD := build

# The kernel is a stock linux/amd64 Go program linked at 2 MiB whose entry
# is the 32-bit boot stub; cmd/postlink then adds the PVH note and the
# multiboot2 header.
KERNEL_ENV := CGO_ENABLED=0 GOOS=linux GOARCH=amd64 GOAMD64=v1
KERNEL_LDFLAGS := -E juice/boot.entry32 -T 0x200000 -R 0x1000

# `make run RUNFLAGS="--boot grub-efi"`
RUNFLAGS ?=
GUESTS := $(BUILD)/guests
JEOS := $(BUILD)/jeos
# The VM `make run` gives juice: `make run KERNEL=build/guests/hello.elf
# INITRD=` runs a test guest instead; `make run KERNEL=` boots juice alone.
KERNEL ?= $(JEOS)/vmlinuz
INITRD ?= $(JEOS)/initrd.cpio
APPEND ?= console=ttyS0
# The VM's name on juice's console.
NAME ?= $(if $(filter $(JEOS)/%,$(KERNEL)),jeos)
VMMEM ?= 256M
# `make bench JEOS_RUNS=5`: boots per kernel kind of juice bench --jeos.
JEOS_RUNS ?= 3
# `make bench RUNS=10`
RUNS ?= 5
# `make bench VMS=16`: the VM count of juice bench --vms.
VMS ?= 32
TEST_TIMEOUT ?= 35m
SLOW_TIMEOUT ?= 120m
# Packages whose Go micro-benchmarks `make bench` runs (missing ones are
# skipped).
BENCH_DIRS ?= mm kernel boot

.PHONY: build guests jeos setup run test test-slow bench clean

setup:
	@scripts/setup-debian.sh

# go build caches and skips an up-to-date link, so building every time is
# cheap and never stale.
build:
	@mkdir -p $(BUILD)
	$(GO) build -o $(BUILD)/juice ./cmd/juice
	$(GO) build -o $(BUILD)/postlink ./cmd/postlink
	$(KERNEL_ENV) $(GO) build -trimpath -ldflags "$(KERNEL_LDFLAGS)" -o $(BUILD)/kernel.raw.elf ./cmd/juice-kernel
	$(BUILD)/postlink -in $(BUILD)/kernel.raw.elf -out $(BUILD)/juice.elf
	$(BUILD)/postlink -in $(BUILD)/kernel.raw.elf -out $(BUILD)/juice-mb1test.elf -multiboot1-test

# The test guests: Go assembly for GOARCH=386, linked by the Go toolchain
# and rewritten into multiboot v1 kernels by mkguest.
guests:
	@mkdir -p $(GUESTS)
	$(GO) build -o $(BUILD)/mkguest ./tests/guests/mkguest/cmd/mkguest
	$(BUILD)/mkguest -go $(GO) -o $(GUESTS)

# The JeOS image: downloads Debian's kernel package once, builds the
# initramfs with u-root; later runs find it cached.
jeos: setup build
	$(BUILD)/juice jeos --out $(JEOS)

run: setup build guests $(if $(filter $(JEOS)/%,$(KERNEL) $(INITRD)),jeos)
	$(BUILD)/juice run --mem 512M $(if $(KERNEL),--kernel $(KERNEL) $(if $(NAME),--name $(NAME)) --vm-mem $(VMMEM) --append "$(APPEND)" $(if $(INITRD),--initrd $(INITRD))) $(RUNFLAGS)

test: setup build guests jeos
	$(GO) vet ./...
	@echo "JUICE_REQUIRE_EMULATORS=1 $(GO) test -timeout $(TEST_TIMEOUT) ./..."
	@status=0; \
	JUICE_REQUIRE_EMULATORS=1 $(GO) test -timeout $(TEST_TIMEOUT) ./... 2>&1 | tee $(BUILD)/test.log || status=$$?; \
	scripts/test-summary.sh $(BUILD)/test.log; \
	exit $$status

test-slow: setup build
	@status=0; \
	JUICE_REQUIRE_EMULATORS=1 $(GO) test -tags slow -timeout $(SLOW_TIMEOUT) -v ./tests/... 2>&1 | tee $(BUILD)/test-slow.log || status=$$?; \
	scripts/test-summary.sh $(BUILD)/test-slow.log; \
	exit $$status

bench: setup build guests jeos
	@status=0; \
	$(BUILD)/juice bench --runs $(RUNS) || status=$$?; \
	$(BUILD)/juice bench --vm --runs $(RUNS) --guest $(GUESTS)/bench.elf || status=$$?; \
	$(BUILD)/juice bench --jeos --runs $(JEOS_RUNS) --jeos-dir $(JEOS) || status=$$?; \
	$(BUILD)/juice bench --blk --runs $(JEOS_RUNS) --jeos-dir $(JEOS) || status=$$?; \
	$(BUILD)/juice bench --net --runs $(JEOS_RUNS) --jeos-dir $(JEOS) || status=$$?; \
	$(BUILD)/juice bench --vms $(VMS) --runs 1 --jeos-dir $(JEOS) || status=$$?; \
	$(BUILD)/juice bench --scale --runs $(JEOS_RUNS) --jeos-dir $(JEOS) || status=$$?; \
	pkgs=""; \
	for d in $(BENCH_DIRS); do \
		if [ -d "$$d" ] && [ -n "$$($(GO) list ./$$d/... 2>/dev/null)" ]; then pkgs="$$pkgs ./$$d/..."; fi; \
	done; \
	if [ -n "$$pkgs" ]; then \
		echo "$(GO) test -run '^$$' -bench . -benchmem$$pkgs"; \
		$(GO) test -run '^$$' -bench . -benchmem $$pkgs || status=$$?; \
	else \
		echo "bench: no Go packages under $(BENCH_DIRS)"; \
	fi; \
	exit $$status

clean:
	rm -rf $(BUILD)
