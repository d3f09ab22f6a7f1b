#!/usr/bin/env bash
# Installs what building and testing juice needs on Debian 12: QEMU (with
# SeaBIOS and the iPXE network boot ROMs), GRUB (BIOS and UEFI) with the
# ISO, FAT and network-boot tools, OVMF and Bochs. Only missing
# packages are installed, so a second run is a fast no-op. apt's index must
# know linux-image-amd64, the JeOS guest's kernel (juice jeos). Installing needs
# root; without it the script lists what is missing and fails. Then it
# fetches the Go modules (go mod download).
set -euo pipefail

PACKAGES=(
	qemu-system-x86 qemu-utils seabios ipxe-qemu
	grub-pc-bin grub-efi-amd64-bin grub-common xorriso mtools
	ovmf
	bochs bochsbios vgabios
)

# Commands that stand for the packages on hosts without dpkg.
COMMANDS=(qemu-system-x86_64 qemu-img grub-mkrescue grub-mkimage grub-mknetdir xorriso mformat mcopy bochs)

cd "$(dirname "$0")/.."

if command -v dpkg-query >/dev/null 2>&1; then
	missing=()
	for p in "${PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
		if [[ "$status" != "install ok installed" ]]; then
			missing+=("$p")
		fi
	done
	if ((${#missing[@]} > 0)); then
		if [[ "$(id -u)" != 0 ]]; then
			echo "setup: missing packages: ${missing[*]}" >&2
			echo "setup: install them as root: apt-get install --no-install-recommends ${missing[*]}" >&2
			exit 1
		fi
		echo "setup: installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get update
		apt-get install -y --no-install-recommends "${missing[@]}"
	fi
	# The JeOS guest's kernel comes from Debian's linux-image-amd64
	# package, fetched with apt-get download (juice jeos): apt's index must
	# know it.
	if ! apt-cache show linux-image-amd64 >/dev/null 2>&1; then
		if [[ "$(id -u)" == 0 ]]; then
			echo "setup: apt's index lacks linux-image-amd64: apt-get update"
			apt-get update
		else
			echo "setup: apt's index lacks linux-image-amd64 (juice jeos needs it): run apt-get update as root" >&2
		fi
	fi
else
	missing=()
	for c in "${COMMANDS[@]}"; do
		command -v "$c" >/dev/null 2>&1 || missing+=("$c")
	done
	if ((${#missing[@]} > 0)); then
		echo "setup: not a Debian host (no dpkg-query) and these commands are missing: ${missing[*]}" >&2
		echo "setup: install the equivalents of: ${PACKAGES[*]}" >&2
		exit 1
	fi
fi

if ! out=$(go mod download 2>&1); then
	echo "$out" >&2
	exit 1
fi
if [[ -n "$out" && "$out" != *"no module dependencies"* ]]; then
	echo "$out"
fi
