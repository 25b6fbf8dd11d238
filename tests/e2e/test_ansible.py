"""Group `ansible`: a real ansible-core playbook run by our hook, its outputs carried back to a real Heat."""
from __future__ import annotations

import shutil
from pathlib import Path

from tests.e2e.stacks import deployment_template, outputs_of
from tests.support.vm import BIN_DIR

PLAYBOOK = """\
- hosts: localhost
  connection: local
  gather_facts: false
  tasks:
    - name: leave a trace on the server
      copy:
        content: "{{ greeting }} via ansible\\n"
        dest: "{{ trace_file }}"
    - name: hand an output back to Heat
      copy:
        content: "{{ greeting | upper }}"
        dest: "{{ heat_outputs_path }}.shout"
"""


def test_ansible_playbook_deployment_completes_with_outputs(deployer, vm):
    assert (BIN_DIR / "ansible-playbook").exists() or shutil.which("ansible-playbook"), \
        "ansible-core is not installed (scripts/setup installs the ansible extra)"
    trace = vm.base / "ansible-trace.txt"
    deployer.create(deployment_template(
        transport="POLL_SERVER_HEAT", signal="HEAT_SIGNAL", group="ansible", config=PLAYBOOK,
        inputs=[{"name": "greeting"}, {"name": "trace_file"}], outputs=[{"name": "shout"}],
        input_values={"greeting": "hello", "trace_file": str(trace)}))
    stack = deployer.wait(timeout=240)

    assert stack["stack_status"] == "CREATE_COMPLETE", deployer.explain(stack)
    out = outputs_of(stack)
    assert out["out_shout"] == "HELLO"
    assert out["deploy_status_code"] == 0
    assert "leave a trace on the server" in out["deploy_stdout"]  # ansible's own play output
    assert Path(trace).read_text() == "hello via ansible\n"
