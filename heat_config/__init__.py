"""The dispatcher side of Heat software deployments: heat-config, heat-config-notify and friends (SPEC §6, §7)."""
