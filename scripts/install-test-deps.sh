#!/usr/bin/env bash
# Installs what the integration tests need, and only what is missing.
#
# Target: a fresh Debian 12 machine with the Rust toolchain, python3 and pip, run as root
# (as CI is). Safe to run again: when everything is present it only checks and exits in a
# second or two, printing one line per dependency ("present" or "installed").
#
# Debian packages: Ceph RGW (radosgw + one mon + one memstore OSD, see
#   tests/e2e/support/backends.rs), the s3cmd and rclone clients, and chromium for the
#   browser tests; curl as a slow HTTP/1.1 and HTTP/2 reader (tests/e2e/ops.rs); python3-yaml
#   and systemd (systemd-analyze) for the deployment-file checks
#   (tests/e2e/deploy.rs).
# Python packages: boto3 and awscli as clients, moto's standalone server as a backend, and the
#   AWS S3 Encryption Client for Python (tests/e2e/s3ec.rs).
set -euo pipefail

DEBIAN_PACKAGES=(radosgw ceph-mon ceph-osd ceph-common s3cmd rclone chromium python3-yaml systemd curl)

# pip package spec -> check that succeeds when it is already usable.
PYTHON_PACKAGES=(boto3 awscli 'moto[server]' 'amazon-s3-encryption-client-python==4.0.0')
python_check() {
    case "$1" in
    boto3) python3 -c 'import boto3' 2>/dev/null ;;
    awscli) command -v aws >/dev/null && python3 -c 'import awscli' 2>/dev/null ;;
    # The extra pulls in flask and flask-cors; without them moto_server exists but fails.
    'moto[server]') command -v moto_server >/dev/null \
        && python3 -c 'import moto.server, flask, flask_cors' 2>/dev/null ;;
    'amazon-s3-encryption-client-python==4.0.0') python3 -c \
        'import importlib.metadata as m; assert m.version("amazon-s3-encryption-client-python") == "4.0.0"' \
        2>/dev/null ;;
    *) return 1 ;;
    esac
}

if [[ $(id -u) -ne 0 ]]; then
    echo "install-test-deps: must run as root (apt-get install)" >&2
    exit 1
fi

# === Debian packages ===

deb_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

missing_debs=()
for pkg in "${DEBIAN_PACKAGES[@]}"; do
    if deb_installed "$pkg"; then
        echo "present   deb $pkg"
    else
        missing_debs+=("$pkg")
    fi
done

if ((${#missing_debs[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # One transaction: the Ceph packages share most of their dependencies.
    apt-get install -y -qq --no-install-recommends "${missing_debs[@]}" >/dev/null
    for pkg in "${missing_debs[@]}"; do
        deb_installed "$pkg" || { echo "install-test-deps: $pkg did not install" >&2; exit 1; }
        echo "installed deb $pkg"
    done
fi

# === Python packages ===

# Debian's own python3 is marked externally managed (PEP 668), so pip refuses to install
# into it unless told otherwise. The variable is ignored by a pip too old to know PEP 668,
# whereas the equivalent flag would make such a pip fail.
export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_ROOT_USER_ACTION=ignore PIP_DISABLE_PIP_VERSION_CHECK=1

missing_py=()
for spec in "${PYTHON_PACKAGES[@]}"; do
    if python_check "$spec"; then
        echo "present   pip $spec"
    else
        missing_py+=("$spec")
    fi
done

if ((${#missing_py[@]})); then
    python3 -m pip install --quiet "${missing_py[@]}"
    # pyenv exposes console scripts (aws, moto_server) through shims made on rehash.
    if command -v pyenv >/dev/null; then pyenv rehash; fi
    hash -r
    for spec in "${missing_py[@]}"; do
        python_check "$spec" || { echo "install-test-deps: $spec did not install" >&2; exit 1; }
        echo "installed pip $spec"
    done
fi
