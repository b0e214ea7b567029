# Shared helpers for Weft's scripts (sourced, not run).
# Everything here is idempotent: safe to run on a fresh Debian 12 machine
# and on one that already has everything.

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# ensure_pkgs CMD:PKG ... : installs the Debian package PKG when CMD is missing.
ensure_pkgs() {
    local missing=() pair cmd pkg
    for pair in "$@"; do
        cmd=${pair%%:*}; pkg=${pair#*:}
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing packages ${missing[*]}: run as root (or install them)"
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # tshark asks whether non-root users may capture; answer no, non-interactively.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
    # Packages such as openvswitch-switch would start system daemons on
    # install; Weft's tests run their own private instances, so keep the
    # package scripts from starting services (Debian's policy-rc.d
    # mechanism), unless the machine already has a policy of its own.
    local policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod +x "$policy"
    fi
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || {
        if [ -n "$policy" ]; then rm -f "$policy"; fi
        die "apt-get install ${missing[*]} failed"
    }
    if [ -n "$policy" ]; then rm -f "$policy"; fi
    return 0
}

# ensure_toolchain: the pinned toolchain from rust-toolchain.toml, without
# downloading one. If the pinned version is not installed under its own name
# but the installed stable is that version, link it.
ensure_toolchain() {
    command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust with rustup first"
    local want
    want=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' "$ROOT/rust-toolchain.toml")
    if ! rustup toolchain list | grep -q "^$want"; then
        local stable_ver
        stable_ver=$(rustc +stable --version 2>/dev/null | awk '{print $2}')
        if [ "$stable_ver" = "$want" ]; then
            log "linking installed stable ($stable_ver) as toolchain $want"
            rustup toolchain link "$want" "$(rustc +stable --print sysroot)"
        else
            log "installing toolchain $want"
            rustup toolchain install "$want" --profile minimal -c rustfmt -c clippy
        fi
    fi
}

# ensure_cargo_tool BIN CRATE@VERSION
ensure_cargo_tool() {
    command -v "$1" >/dev/null 2>&1 && return 0
    log "installing $2 (cargo install)"
    cargo install --locked "$2"
}
