"""os-refresh-config: run the configuration phases' scripts in order (pre-configure.d … post-configure.d)."""
