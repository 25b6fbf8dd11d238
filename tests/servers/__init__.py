"""Loopback servers that speak the real wire protocols (keystone, Heat, CFN, EC2, Swift, Zaqar).

Each binds 127.0.0.1 on an ephemeral port, records every request it receives, and is
used by the tests and by the demo.  Signals sent by the agents land here too.
"""
