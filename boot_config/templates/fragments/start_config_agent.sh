#!/bin/bash
# boot-config start part (SPEC 10.4): run os-collect-config as a service from now on.
#
# Unlike the originals (SPEC 11.41) this never rewrites /etc/os-collect-config.conf: the
# configure part rendered the real file, with the transport credentials, and the service
# starts polling with it at once. The unit's ExecStart is wherever the install part put
# the command (/usr/local/bin with pip), not a hard-coded /usr/bin.
set -eux

occ=$(command -v os-collect-config) || {
    echo "boot-config: os-collect-config is not on PATH; did the install part fail?" >&2
    exit 1
}

if [ -d /run/systemd/system ]; then
    # A unit shipped by a package or an image build wins; only add ours when none exists.
    # (`systemctl enable` reloads systemd, so the new unit is seen.)
    if [ ! -e /etc/systemd/system/os-collect-config.service ] \
       && [ ! -e /usr/lib/systemd/system/os-collect-config.service ] \
       && [ ! -e /lib/systemd/system/os-collect-config.service ]; then
        # The unit the os-collect-config element installs in images (embedded verbatim by
        # Heat), with ExecStart wherever the command is here.
        sed "s|^ExecStart=.*|ExecStart=$occ|" > /etc/systemd/system/os-collect-config.service <<'OS_CONFIG_AGENTS_EOF'
__OCC_UNIT__
OS_CONFIG_AGENTS_EOF
    fi
    systemctl enable os-collect-config.service
    systemctl start --no-block os-collect-config.service
else
    echo "boot-config: systemd is not running; start '$occ' with this system's service manager" >&2
    exit 1
fi
