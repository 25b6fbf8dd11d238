#!/bin/bash
# boot-config install part: os-config-agents in its own virtualenv, its commands on PATH.
#
# Only python3 with venv is needed: every dependency ships as a wheel, so no compiler,
# headers or system pip are installed, and the distribution's own Python packages are
# never touched (the originals installed a Python 2 build chain: SPEC 11.39). Works on
# current Debian and Ubuntu (apt) and Fedora, CentOS Stream and RHEL-like images (dnf).
set -eux

# Set by Heat's str_replace from the template parameters.
agent_package='__AGENT_PACKAGE__'
pip_index_url='__PIP_INDEX_URL__'

venv=/opt/stack/venvs/os-config-agents
bindir=/usr/local/bin

have_python_venv() {
    command -v python3 >/dev/null 2>&1 && python3 -c 'import venv, ensurepip' 2>/dev/null
}

if ! have_python_venv; then
    if command -v apt-get >/dev/null 2>&1; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get -y update
        apt-get -y install --no-install-recommends python3 python3-venv ca-certificates
    elif command -v dnf >/dev/null 2>&1; then
        dnf -y install python3 ca-certificates
    elif command -v yum >/dev/null 2>&1; then
        yum -y install python3 ca-certificates
    elif command -v zypper >/dev/null 2>&1; then
        zypper --non-interactive install python3 ca-certificates
    fi
fi
have_python_venv || {
    echo "boot-config: python3 with the venv module is needed and could not be installed" >&2
    exit 1
}

pip_args=(--disable-pip-version-check)
if [ -n "$pip_index_url" ]; then
    pip_args+=(--index-url "$pip_index_url")
fi

python3 -m venv "$venv"
"$venv/bin/pip" install "${pip_args[@]}" "$agent_package"

# Link every console script of the distribution (os-collect-config, os-refresh-config,
# dib-run-parts, heat-config, ...) into $bindir, from the package's own metadata.
"$venv/bin/python" - "$venv/bin" "$bindir" <<'PY'
import importlib.metadata
import os
import sys

venv_bin, bindir = sys.argv[1], sys.argv[2]
os.makedirs(bindir, exist_ok=True)
for entry in importlib.metadata.distribution("os-config-agents").entry_points:
    if entry.group == "console_scripts":
        link = os.path.join(bindir, entry.name)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(os.path.join(venv_bin, entry.name), link)
        print("linked", link)
PY
os-collect-config --version
