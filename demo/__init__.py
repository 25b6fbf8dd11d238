"""The bundled demonstration: a loopback metadata server feeding the real agents (``scripts/demo``)."""
