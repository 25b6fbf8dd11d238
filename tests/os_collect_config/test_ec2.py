"""ec2 collector: tree walk, freshness, conditional GET, fallback to ec2.json, config drive (SPEC §2.8, §12.13.4)."""
from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.wait import wait_for

EXPECTED = {"local-ipv4": "10.0.0.5", "hostname": "vm1", "placement": {"availability-zone": "nova"},
            "public-keys": {"0": {"openssh-key": "ssh-rsa AAAA test"}}}


def test_walk_builds_the_tree_with_string_leaves(occ, ec2):
    res = occ("--print", "--ec2-metadata-url", ec2.metadata_url, "ec2")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"ec2": EXPECTED}


def test_blank_lines_in_listings_are_tolerated(occ, ec2):
    ec2.blank_lines = True
    res = occ("--print", "--ec2-metadata-url", ec2.metadata_url, "ec2")
    assert res.returncode == 0 and json.loads(res.stdout) == {"ec2": EXPECTED}, res.stderr


def test_fetched_every_poll_conditionally_and_refreshed_on_change(occ, sandbox, ec2):
    seen = sandbox.path("seen")
    cmd = "echo run >> %s" % seen
    every_poll = ("--ec2-full-refresh-interval", "0")
    assert occ("--one-time", "-c", cmd, "--ec2-metadata-url", ec2.metadata_url, *every_poll, "ec2").returncode == 0
    ec2.clear()
    assert occ("--one-time", "-c", cmd, "--ec2-metadata-url", ec2.metadata_url, *every_poll, "ec2").returncode == 0
    again = ec2.received("GET")
    assert len(again) == 8, "ec2 must be walked again (8 nodes), not served from ec2.json for ever"
    assert all(r.header("If-None-Match") for r in again)
    assert ec2.bytes_sent == 0 and len(seen.read_text().splitlines()) == 1
    ec2.set("local-ipv4", "10.0.0.9")
    assert occ("--one-time", "-c", cmd, "--ec2-metadata-url", ec2.metadata_url, *every_poll, "ec2").returncode == 0
    assert occ.cache_json("ec2.json")["local-ipv4"] == "10.0.0.9"
    assert len(seen.read_text().splitlines()) == 2


def test_idle_poll_asks_only_for_the_listing_until_the_full_refresh_is_due(occ, sandbox, ec2):
    """Issue 16: an idle poll is one request, not one per node; a changed leaf is seen within the interval."""
    conf = sandbox.write("etc/occ.conf", "[ec2]\nmetadata_url = %s\nfull_refresh_interval = 2\n" % ec2.metadata_url)
    seen = sandbox.path("seen")
    run = lambda: occ("--config-file", str(conf), "--one-time", "-c", "echo run >> %s" % seen, "ec2")  # noqa: E731
    assert run().returncode == 0
    full = len(ec2.received("GET"))
    ec2.clear()
    ec2.set("hostname", "vm1-renamed")  # a leaf: the listing does not change
    started = time.time()
    assert run().returncode == 0
    idle = ec2.received("GET")
    assert [r.path for r in idle] == [urlsplit(ec2.metadata_url).path + "/"] and full == 8  # 1 request, not 8
    assert occ.cache_json("ec2.json")["hostname"] == "vm1"  # not seen yet: the full walk is not due
    wait_for(lambda: time.time() - started > 2.1, what="the full refresh to fall due")
    assert run().returncode == 0
    assert occ.cache_json("ec2.json")["hostname"] == "vm1-renamed"
    assert len(seen.read_text().splitlines()) == 2
    # A new entry in the listing is walked at once, whatever the interval.
    ec2.set("instance-type", "m1.small")
    assert run().returncode == 0
    assert occ.cache_json("ec2.json")["instance-type"] == "m1.small"


def test_server_without_validators_still_works(occ, ec2):
    ec2.conditional = False
    for _ in range(2):
        assert occ("--one-time", "-c", "true", "--ec2-metadata-url", ec2.metadata_url, "ec2").returncode == 0
    assert occ.cache_json("ec2.json") == EXPECTED


def test_unreachable_service_falls_back_to_ec2_json(occ, ec2):
    url = ec2.metadata_url
    assert occ("--one-time", "-c", "true", "--ec2-metadata-url", url, "ec2").returncode == 0
    ec2.stop()
    res = occ("--print", "--ec2-metadata-url", url, "ec2")
    assert res.returncode == 0 and json.loads(res.stdout) == {"ec2": EXPECTED}
    assert "Source [ec2] Unavailable." in res.stderr


def _fake_tools(sandbox, blkid_output: str) -> dict:
    """blkid (and mount/umount) as scripts on PATH that speak the real tools' command lines and output."""
    bindir = sandbox.path("fakebin")
    bindir.mkdir()
    (bindir / "blkid").write_text("#!/bin/sh\n[ \"$1 $2\" = \"-o export\" ] || exit 2\ncat <<'EOF'\n%sEOF\n"
                                  % blkid_output)
    # mount DEV DIR -o ro: the fake "device" is a directory whose tree appears under DIR.
    (bindir / "mount").write_text("#!/bin/sh\n[ \"$3 $4\" = \"-o ro\" ] || exit 32\n"
                                  "echo \"$@\" >> %s\ncp -R \"$1\"/. \"$2\"/\n" % sandbox.path("mount.log"))
    (bindir / "umount").write_text("#!/bin/sh\n[ \"$1\" = \"-l\" ] || exit 32\nrm -rf \"$2\"/*\n"
                                   "echo umount \"$@\" >> %s\n" % sandbox.path("mount.log"))
    for tool in ("blkid", "mount", "umount"):
        (bindir / tool).chmod(0o755)
    return {"PATH": "%s:%s" % (bindir, sandbox.env["PATH"]),
            "OS_COLLECT_CONFIG_PROC_MOUNTS": str(sandbox.path("proc-mounts"))}


def _drive(sandbox) -> Path:
    drive = sandbox.path("drive")
    (drive / "ec2" / "latest").mkdir(parents=True)
    (drive / "ec2" / "latest" / "meta-data.json").write_text(json.dumps({"from": "config-drive"}))
    return drive


BLKID = ("DEVNAME=/dev/vda1\nUUID=1234\nTYPE=ext4\nPARTUUID=abcd\n\n"
         "DEVNAME=/dev/sr1\nLABEL=config-2\nTYPE=udf\n\n"
         "DEVNAME={dev}\nUUID=2024-01-01-00-00-00-00\nLABEL=config-2\nTYPE=iso9660\n")


def test_config_drive_already_mounted(occ, sandbox, ec2):
    drive = _drive(sandbox)
    env = _fake_tools(sandbox, BLKID.format(dev="/dev/sr0"))
    sandbox.path("proc-mounts").write_text("proc /proc proc rw 0 0\n/dev/sr0 %s iso9660 ro 0 0\n" % drive)
    res = occ("--print", "--ec2-metadata-url", ec2.metadata_url, "ec2", env=env)
    assert res.returncode == 0 and json.loads(res.stdout) == {"ec2": {"from": "config-drive"}}, res.stderr
    assert ec2.received() == []


def test_config_drive_mounted_read_only_in_a_temp_dir_and_cleaned(occ, sandbox, ec2):
    drive = _drive(sandbox)
    env = _fake_tools(sandbox, BLKID.format(dev=str(drive)))
    sandbox.path("proc-mounts").write_text("proc /proc proc rw 0 0\n")
    res = occ("--print", "--ec2-metadata-url", ec2.metadata_url, "ec2", env=env)
    assert res.returncode == 0 and json.loads(res.stdout) == {"ec2": {"from": "config-drive"}}, res.stderr
    log = sandbox.path("mount.log").read_text().splitlines()
    target = log[0].split()[1]
    assert os.path.basename(target).startswith("config-2-") and log[1] == "umount -l %s" % target
    assert not os.path.exists(target)


def test_no_config_drive_uses_http(occ, sandbox, ec2):
    env = _fake_tools(sandbox, "DEVNAME=/dev/vda1\nTYPE=ext4\n")
    res = occ("--print", "--ec2-metadata-url", ec2.metadata_url, "ec2", env=env)
    assert json.loads(res.stdout) == {"ec2": EXPECTED}
    assert stat.S_ISDIR(sandbox.path("fakebin").stat().st_mode)
