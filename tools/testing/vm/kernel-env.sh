# Sourced by the VM scripts: where the test kernel's source and builds live.
# Every build is keyed by the Debian source version and a hash of the
# config fragments, so a change to either makes a fresh build and an
# unchanged tree reuses the cached one.

vm_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${OSSUARY_CACHE:-$HOME/.cache/ossuary}
src_pkg=linux-source-6.12
src_tar=/usr/src/$src_pkg.tar.xz

src_version() {
	dpkg-query -W -f='${Version}' "$src_pkg" 2>/dev/null
}

# kernel_variant_fragments VARIANT: the fragment files, in merge order.
kernel_variant_fragments() {
	case "$1" in
	release) echo "$vm_dir/config" ;;
	debug) echo "$vm_dir/config $vm_dir/config.debug" ;;
	# KCSAN (no KASAN: they exclude each other) with fault injection
	kcsan) echo "$vm_dir/config $vm_dir/config.kcsan $vm_dir/config.faults" ;;
	# the debug kernel plus fault injection (fail-nth)
	faults) echo "$vm_dir/config $vm_dir/config.debug $vm_dir/config.faults" ;;
	*) echo "unknown kernel variant '$1' (release, debug, kcsan or faults)" >&2; return 1 ;;
	esac
}

# kernel_build_dir VARIANT: the cache directory of that variant's build.
kernel_build_dir() {
	local frags key
	frags=$(kernel_variant_fragments "$1") || return 1
	# shellcheck disable=SC2086
	key=$(cat $frags | sha256sum | cut -c1-12)
	echo "$cache_root/kernel-$(src_version)-$1-$key"
}

kernel_src_dir() {
	echo "$cache_root/src-$(src_version)/$src_pkg"
}
