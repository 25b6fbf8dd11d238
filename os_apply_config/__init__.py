"""os-apply-config: render the template tree against the merged metadata (SPEC §4)."""
