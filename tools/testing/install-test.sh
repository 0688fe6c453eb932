#!/usr/bin/env bash
# install-test.sh: `make install` into a DESTDIR, then a program built
# against it with pkg-config alone, run against the installed library;
# then `make uninstall`. TAP on standard output.
#
#   tools/testing/install-test.sh [WORK_DIR]
#
# Builds the library and tools into WORK_DIR/build (default: a fresh
# temporary directory, removed at the end) first with the default PREFIX,
# then installs with PREFIX=/opt/ossuary-install-test and DESTDIR=
# WORK_DIR/root: the installed ossuary.pc must carry the install's PREFIX,
# not the build's. Nothing outside WORK_DIR is written.
# Exit status: 0 when every case passed.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
if [ $# -ge 1 ]; then
	work=$1
	mkdir -p "$work" || exit 1
	work=$(cd "$work" && pwd)
else
	work=$(mktemp -d /tmp/ossuary-install-test.XXXXXX) || exit 1
	trap 'rm -rf "$work"' EXIT
fi
build=$work/build
root=$work/root
prefix=/opt/ossuary-install-test
dest=$root$prefix
log=$work/log
rm -rf "$root"
: >"$log"

n=0
failed=0
ok() {	# ok 0|1 DESCRIPTION
	n=$((n + 1))
	if [ "$1" = 1 ]; then
		echo "ok $n - install: $2"
	else
		echo "not ok $n - install: $2"
		failed=$((failed + 1))
		tail -n 20 "$log" | sed 's/^/# /'
	fi
	: >"$log"
}
yes_no() { "$@" >>"$log" 2>&1 && echo 1 || echo 0; }

mk() { nice make -s -C "$top/user" O="$build" "$@"; }

# 1. A plain build (default PREFIX), as `make user` does.
ok "$(yes_no mk lib tools)" "build the library and tools (default PREFIX)"

# 2. Install elsewhere: everything lands under DESTDIR/PREFIX.
ok "$(yes_no mk install PREFIX="$prefix" DESTDIR="$root")" "make install PREFIX=$prefix DESTDIR=..."
missing=
for f in lib/libossuary.a lib/libossuary.so lib/libossuary.so.0 include/ossuary.h \
	lib/pkgconfig/ossuary.pc bin/ossuary-cat bin/ossuary-keygen \
	share/man/man1/ossuary-cat.1 share/man/man1/ossuary-keygen.1 \
	share/man/man3/libossuary.3; do
	[ -e "$dest/$f" ] || missing="$missing $f"
done
ok "$([ -z "$missing" ] && echo 1 || echo 0)" "installed files present${missing:+ (missing:$missing)}"
real_so=$(readlink -f "$dest/lib/libossuary.so" 2>/dev/null)
ok "$(case "$real_so" in "$dest"/lib/libossuary.so.*.*.*) echo 1 ;; *) echo 0 ;; esac)" \
	"libossuary.so -> libossuary.so.0 -> the versioned library, inside DESTDIR ($real_so)"
ok "$( [ "$(stat -c %a "$dest/include/ossuary.h")" = 644 ] &&
	[ "$(stat -c %a "$dest/bin/ossuary-cat")" = 755 ] && echo 1 || echo 0)" "modes: header 0644, tools 0755"

# 3. The .pc file speaks of the install's PREFIX, not the build's.
pc=$dest/lib/pkgconfig/ossuary.pc
ok "$(grep -qx "prefix=$prefix" "$pc" && grep -qx "libdir=$prefix/lib" "$pc" &&
	! grep -q /usr/local "$pc" && echo 1 || echo 0)" "ossuary.pc has prefix=$prefix (rebuilt for the new PREFIX)"
want_version=$(sed -n 's/^VERSION := //p' "$top/user/Makefile")
ok "$(grep -qx "Version: $want_version" "$pc" && echo 1 || echo 0)" "ossuary.pc has Version: $want_version"

# 4. A program built with nothing but pkg-config, run against the install.
export PKG_CONFIG_PATH=$dest/lib/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$root
cflags=$(pkg-config --cflags ossuary 2>>"$log")
libs=$(pkg-config --libs ossuary 2>>"$log")
ok "$(case "$cflags $libs" in *"-I$dest/include"*"-L$dest/lib"*-lossuary*) echo 1 ;; *) echo 0 ;; esac)" \
	"pkg-config --cflags --libs ossuary point into DESTDIR ($cflags $libs)"
cat >"$work/hello.c" <<'EOF'
/* Both ends of a handshake over a socketpair, then one message each way. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <ossuary.h>

static int fds[2];
static int server_rc = -999;

static void *server(void *arg)
{
	OssuaryConnection *s = ossuary_create_connection(CONN_TYPE_UNAUTHENTICATED_SERVER, NULL);
	char buf[16] = "";
	ssize_t n;

	(void)arg;
	server_rc = s ? ossuary_handshake_fd(s, fds[1], 10000) : -1000;
	if (server_rc == OSSUARY_OK &&
	    ossuary_offload(s, fds[1], OSSUARY_OFFLOAD_FALLBACK) == OSSUARY_MODE_USERSPACE) {
		n = ossuary_read(s, fds[1], buf, sizeof(buf) - 1);
		if (n != 5 || memcmp(buf, "hello", 5) ||
		    ossuary_write(s, fds[1], "world", 5) != 5)
			server_rc = -1001;
	}
	ossuary_destroy_connection(&s);
	return NULL;
}

int main(void)
{
	OssuaryConnection *c = ossuary_create_connection(CONN_TYPE_CLIENT, NULL);
	char buf[16] = "";
	pthread_t t;
	int rc;

	if (!c || socketpair(AF_UNIX, SOCK_STREAM, 0, fds) ||
	    pthread_create(&t, NULL, server, NULL))
		return 1;
	rc = ossuary_handshake_fd(c, fds[0], 10000);
	if (rc == OSSUARY_OK)
		rc = ossuary_offload(c, fds[0], OSSUARY_OFFLOAD_FALLBACK) == OSSUARY_MODE_USERSPACE
			? OSSUARY_OK : -1002;
	if (rc == OSSUARY_OK && ossuary_write(c, fds[0], "hello", 5) != 5)
		rc = -1003;
	if (rc == OSSUARY_OK && (ossuary_read(c, fds[0], buf, sizeof(buf) - 1) != 5 ||
				 memcmp(buf, "world", 5)))
		rc = -1004;
	pthread_join(t, NULL);
	ossuary_destroy_connection(&c);
	if (rc != OSSUARY_OK || server_rc != OSSUARY_OK) {
		fprintf(stderr, "client %d (%s), server %d\n", rc, ossuary_strerror(rc), server_rc);
		return 1;
	}
	puts("hello world over ossuary");
	return 0;
}
EOF
# shellcheck disable=SC2086
ok "$(yes_no ${CC:-cc} -std=c11 -Wall -Wextra -Werror $cflags -o "$work/hello" "$work/hello.c" $libs -lpthread)" \
	"a program compiles and links with \$(pkg-config --cflags --libs ossuary)"
linked=$(LD_LIBRARY_PATH=$dest/lib ldd "$work/hello" 2>/dev/null | sed -n 's/.*libossuary.so.0 => \([^ ]*\).*/\1/p')
ok "$( [ "$(readlink -f "$linked")" = "$real_so" ] && echo 1 || echo 0)" \
	"it loads the installed libossuary.so.0 ($linked)"
out=$(LD_LIBRARY_PATH=$dest/lib timeout 30 "$work/hello" 2>>"$log")
ok "$( [ "$out" = "hello world over ossuary" ] && echo 1 || echo 0)" \
	"it runs: handshake and data over a socketpair through the installed library"

# 5. The installed tools and pages.
out=$("$dest/bin/ossuary-cat" --version 2>>"$log")
ok "$( [ "$out" = "ossuary-cat $want_version" ] && echo 1 || echo 0)" "installed ossuary-cat --version: $out"
"$dest/bin/ossuary-keygen" -f "$work/k" >"$work/k.out" 2>>"$log"
ok "$( [ $? = 0 ] && grep -Eqx '[0-9a-f]{64}' "$work/k.out" && echo 1 || echo 0)" "installed ossuary-keygen makes a key pair"
if command -v man >/dev/null && command -v groff >/dev/null; then
	bad=
	for p in man1/ossuary-cat.1 man1/ossuary-keygen.1 man3/libossuary.3; do
		w=$(groff -man -ww -z "$dest/share/man/$p" 2>&1)
		t=$(MANWIDTH=80 man -l "$dest/share/man/$p" 2>/dev/null | head -n 5)
		{ [ -z "$w" ] && [ -n "$t" ]; } || { bad="$bad $p"; echo "$w" >>"$log"; }
	done
	ok "$([ -z "$bad" ] && echo 1 || echo 0)" "man pages render without warnings${bad:+ (bad:$bad)}"
else
	n=$((n + 1))
	echo "ok $n - install: man pages render # SKIP man or groff not installed"
fi
ok "$(MANWIDTH=80 man -l "$dest/share/man/man1/ossuary-cat.1" 2>/dev/null |
	grep -q -- "--userspace" && echo 1 || echo 0)" "ossuary-cat(1) documents the options"

# 6. Uninstall takes every file away again.
ok "$(yes_no mk uninstall PREFIX="$prefix" DESTDIR="$root")" "make uninstall PREFIX=$prefix DESTDIR=..."
left=$(find "$root" \( -type f -o -type l \) 2>/dev/null | sed "s|^$root||" | tr '\n' ' ')
ok "$([ -z "$left" ] && echo 1 || echo 0)" "nothing left after uninstall${left:+ (left: $left)}"

echo "1..$n"
[ "$failed" = 0 ]
