#!/bin/bash
# boot-config configure part (SPEC 10.3): lay out what os-collect-config,
# os-refresh-config, os-apply-config and heat-config need, then poll twice: the first
# pass renders /etc/os-collect-config.conf from the cfn-init-data Heat put in the
# user-data, the second polls the transport that file names and runs the deployments.
#
# Heat's str_replace pastes each embedded file between *quoted* here-document markers,
# so a `$` or a backtick in those files reaches the disk unexpanded (the originals used
# unquoted here-documents: SPEC 11.40).
set -eux

oac_templates=/usr/libexec/os-apply-config/templates
orc_scripts=/usr/libexec/os-refresh-config
hooks_dir=/var/lib/heat-config/hooks

# place PATH MODE < CONTENT: write CONTENT to PATH with MODE, atomically (temp file in the
# same directory, then rename). The here-document adds one newline after the embedded
# file, so trailing newlines are normalised to exactly one.
place() {
    local path=$1 mode=$2 tmp
    mkdir -p "$(dirname "$path")"
    tmp=$(mktemp "$path.XXXXXX")
    printf '%s\n' "$(cat)" > "$tmp"
    chmod "$mode" "$tmp"
    mv -f "$tmp" "$path"
}

# A minimal agent config until the first pass renders the real one. It polls only the
# metadata Heat put in the user-data, so the first pass waits for no network service.
place /etc/os-collect-config.conf 0600 <<'OS_CONFIG_AGENTS_EOF'
[DEFAULT]
command = os-refresh-config
collectors = heat_local
OS_CONFIG_AGENTS_EOF

# os-apply-config templates: the agent's own config and the deployments file (both 0600
# through their .oac control files, since both hold credentials).
place "$oac_templates/etc/os-collect-config.conf" 0644 <<'OS_CONFIG_AGENTS_EOF'
__OCC_CONF__
OS_CONFIG_AGENTS_EOF
place "$oac_templates/etc/os-collect-config.conf.oac" 0644 <<'OS_CONFIG_AGENTS_EOF'
__OCC_CONF_OAC__
OS_CONFIG_AGENTS_EOF
place "$oac_templates/var/run/heat-config/heat-config" 0644 <<'OS_CONFIG_AGENTS_EOF'
__HEAT_CONFIG_TEMPLATE__
OS_CONFIG_AGENTS_EOF
place "$oac_templates/var/run/heat-config/heat-config.oac" 0644 <<'OS_CONFIG_AGENTS_EOF'
__HEAT_CONFIG_TEMPLATE_OAC__
OS_CONFIG_AGENTS_EOF

# os-refresh-config phases and the two configure.d scripts.
for phase in pre-configure.d configure.d migration.d post-configure.d; do
    install -d -m 0755 "$orc_scripts/$phase"
done
place "$orc_scripts/configure.d/20-os-apply-config" 0700 <<'OS_CONFIG_AGENTS_EOF'
__ORC_OAC__
OS_CONFIG_AGENTS_EOF
place "$orc_scripts/configure.d/55-heat-config" 0700 <<'OS_CONFIG_AGENTS_EOF'
__ORC_HEAT_CONFIG__
OS_CONFIG_AGENTS_EOF

# The script hook where the originals' dispatcher and tools look for it.
install -d -m 0755 "$hooks_dir"
place "$hooks_dir/script" 0755 <<'OS_CONFIG_AGENTS_EOF'
__HOOK_SCRIPT__
OS_CONFIG_AGENTS_EOF

# heat-config-notify also where the originals' boot-config put it, for scripts that call it there.
ln -sf "$(command -v heat-config-notify)" /usr/bin/heat-config-notify

# First pass: heat_local reads cfn-init-data and os-apply-config renders the real config.
os-collect-config --one-time --debug
# Show what the agent will poll, without the credentials the file holds.
grep -E '^(\[|collectors)' /etc/os-collect-config.conf || true

# Second pass: poll the configured transport and run the deployments found there. A
# failure here is not fatal: the service started next keeps polling and retrying.
os-collect-config --one-time --debug || echo "boot-config: second poll failed with status $?; the agent service will retry" >&2
# What happened to each deployment, for cloud-init-output.log (no input values, no secrets).
heat-config status || true
