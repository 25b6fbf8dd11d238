"""One loopback cloud: Keystone with Heat, heat-api-cfn and Zaqar in its catalog.

Use the ``cloud`` fixture (import it into a test module or conftest) to get the
four servers started on ephemeral ports with a user whose password, and an EC2
key pair whose secret, are planted secrets (tests/support/sandbox.py): no log may show them.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Iterator

import pytest

from tests.servers.cfn import CfnServer
from tests.servers.heat import HeatServer
from tests.servers.keystone import KeystoneServer
from tests.servers.zaqar import ZaqarServer
from tests.support.sandbox import PLANTED_SECRETS

USER_ID = "0f3c9d2e-user"
PROJECT_ID = "9a1b7c4d-project"
PASSWORD = PLANTED_SECRETS[0]
ACCESS_KEY = "AKIA-loopback-0001"
SECRET_KEY = PLANTED_SECRETS[1]
REGION = "RegionOne"


@dataclass
class Cloud:
    keystone: KeystoneServer
    heat: HeatServer
    cfn: CfnServer
    zaqar: ZaqarServer
    user_id: str = USER_ID
    project_id: str = PROJECT_ID
    password: str = PASSWORD
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION

    @property
    def auth_url(self) -> str:
        return self.keystone.v3_url

    def stop(self) -> None:
        """Stop all four at once: each shutdown waits up to one poll interval of its server."""
        threads = [threading.Thread(target=s.stop) for s in (self.zaqar, self.cfn, self.heat, self.keystone)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def start_cloud() -> Cloud:
    keystone = KeystoneServer({USER_ID: PASSWORD}, [PROJECT_ID]).start()
    keystone.add_endpoint("identity", keystone.v3_url, "keystone", REGION)
    heat = HeatServer(keystone, PROJECT_ID).start().register(REGION)
    cfn = CfnServer({ACCESS_KEY: SECRET_KEY}, PROJECT_ID).start()
    keystone.add_endpoint("cloudformation", cfn.url + "/v1", "heat-api-cfn", REGION)
    zaqar = ZaqarServer(keystone).start().register(REGION)
    return Cloud(keystone, heat, cfn, zaqar)


@pytest.fixture
def cloud() -> Iterator[Cloud]:
    c = start_cloud()
    try:
        yield c
    finally:
        c.stop()
