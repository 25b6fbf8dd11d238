"""What the tests, the demo and the benchmarks share: the sandbox, deployment builders, one ``wait_for``,
the private container engine, the originals' virtualenv and the sandboxed VM.

The loopback protocol servers are its sibling package ``tests.servers`` (DESIGN.md's layout names that
path). Nothing here is a test module or a conftest, so the demo and the benches import it as plain code.
"""
