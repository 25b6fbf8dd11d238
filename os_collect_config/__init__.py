"""os-collect-config: poll metadata sources, cache them, run a command on change."""
