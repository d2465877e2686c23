#!/bin/bash
# Installs what dmaloadd needs to build, run and test, from Debian's packages.
# Runs apt-get update only when the package lists are missing or older than a day.
set -euo pipefail
PKGS=(build-essential pkg-config liburing-dev libev-dev libsystemd-dev libinih-dev
      clang libclang-rt-14-dev valgrind fio procps util-linux
      # tests/integration/test-systemd: systemd-analyze, systemd-socket-activate
      systemd
      # test-only: tests/fuse/dl-fusefs (the FUSE test filesystem) and fusermount3
      libfuse3-dev fuse3
      # tests/kernel: the qemu test kernels' source (bookworm-security) and build
      # tools (patch applies tests/kernel/patches/), the guest's busybox, the
      # initramfs and the ext4 disk image
      qemu-system-x86 linux-source-6.12 patch flex bison bc libelf-dev libssl-dev xz-utils
      busybox-static cpio e2fsprogs
      # tests/systemd (make check-systemd): a bookworm tree made by debootstrap, booted
      # by systemd-nspawn (systemd-container); the Debian package built with
      # dpkg-buildpackage (dpkg-dev, debhelper, fakeroot) and checked by lintian; the
      # Kubernetes manifest parsed by PyYAML
      debootstrap systemd-container dpkg-dev debhelper fakeroot lintian python3-yaml
      # test-only: tests/python (the dmaload package's safetensors views; python3-torch
      # is about 1 GB installed and only the tests need it)
      python3-numpy python3-torch)
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null)" ]; then
	$SUDO apt-get update -q
fi
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
