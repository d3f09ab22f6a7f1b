# juice: build, run and test (GNU make). `make` alone is `make build`.
#
#   make setup      install the emulators and GRUB tools (Debian 12, root)
#   make build      build/juice.elf, build/juice-mb1test.elf, build/juice
#   make guests     the test guests, build/guests/NAME.elf (tests/guests)
#   make run        boot juice in QEMU running GUEST (default: the hello
#                   guest; GUEST= for none), serial console here (RUNFLAGS=...)
#   make test       go vet, unit tests and the QEMU integration tests
#   make test-slow  long runs (soak) with -tags slow
#   make bench      boot figures (build/juice bench), VM-exit figures of the
#                   bench guest under juice and plain QEMU (juice bench --vm)
#                   and Go micro-benchmarks
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

# `make run RUNFLAGS="--boot grub-efi --selftest"`
RUNFLAGS ?=
# The guest `make run` gives juice (--kernel): `make run GUEST=build/guests/modes.elf`;
# `make run GUEST=` boots juice without a VM.
GUESTS := $(BUILD)/guests
GUEST ?= $(GUESTS)/hello.elf
# `make bench RUNS=10`
RUNS ?= 5
TEST_TIMEOUT ?= 25m
SLOW_TIMEOUT ?= 120m
# Packages whose Go micro-benchmarks `make bench` runs (missing ones are
# skipped).
BENCH_DIRS ?= mm kernel boot

.PHONY: build guests setup run test test-slow bench clean

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

run: setup build guests
	$(BUILD)/juice run $(if $(GUEST),--kernel $(GUEST)) $(RUNFLAGS)

test: setup build guests
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

bench: setup build guests
	@status=0; \
	$(BUILD)/juice bench --runs $(RUNS) || status=$$?; \
	$(BUILD)/juice bench --vm --runs $(RUNS) --guest $(GUESTS)/bench.elf || status=$$?; \
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
