"""Tasks are tagged by control id, and a task runs whenever a task that uses its result runs
(scripts/control_tags.py), so `--tags <control id>` converges one control alone."""

import importlib.util
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("control_tags", ROOT / "scripts" / "control_tags.py")
control_tags = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(control_tags)


def test_every_role_task_has_the_tags_it_needs():
    assert [(str(task.path.relative_to(ROOT)), task.line, sorted(add)) for task, add in control_tags.missing()] == []


def test_every_control_of_a_role_task_is_documented():
    text = (ROOT / "docs" / "controls.md").read_text()
    documented = set(re.findall(r"ZT-[A-Z]+-\d+", text))
    # Rows may name a range (ZT-DNS-01..03) or a list (ZT-LDAP-03/05/07).
    for prefix, low, high in re.findall(r"(ZT-[A-Z]+-)(\d+)\.\.(\d+)", text):
        documented |= {"%s%02d" % (prefix, number) for number in range(int(low), int(high) + 1)}
    for prefix, numbers in re.findall(r"(ZT-[A-Z]+-)(\d+(?:/\d+)+)", text):
        documented |= {prefix + number for number in numbers.split("/")}
    used = {
        task.control
        for role in (ROOT / "roles").iterdir()
        if (role / "tasks").is_dir()
        for task in control_tags.role_tasks(role)
        if task.control
    }
    assert used - documented == set()


def write_role(tmp_path, tasks, defaults=""):
    role = tmp_path / "roles" / "demo"
    (role / "tasks").mkdir(parents=True)
    (role / "tasks" / "main.yml").write_text(tasks)
    if defaults:
        (role / "defaults").mkdir()
        (role / "defaults" / "main.yml").write_text(defaults)
    return role


def wanted(tmp_path, tasks, defaults=""):
    missing = control_tags.missing(write_role(tmp_path, tasks, defaults).parent)
    return {task.name: sorted(add) for task, add in missing}


def test_a_task_is_tagged_with_its_control_id_and_an_untagged_helper_is_not(tmp_path):
    tasks = (
        "- name: ZT-X-01 | Write\n  ansible.builtin.copy: {content: x, dest: /x}\n"
        "- name: Helper\n  ansible.builtin.debug: {}\n"
    )
    assert wanted(tmp_path, tasks) == {"ZT-X-01 | Write": ["ZT-X-01"]}


def test_a_reader_runs_whenever_its_user_runs_through_a_role_variable(tmp_path):
    tasks = (
        "- name: ZT-X-01 | Read\n  ansible.builtin.command: cat /x\n  register: __demo_read\n"
        "- name: ZT-X-02 | Use\n  ansible.builtin.debug: {msg: '{{ __demo_value }}'}\n"
    )
    defaults = '__demo_value: "{{ __demo_read.stdout }}"\n'
    assert wanted(tmp_path, tasks, defaults) == {"ZT-X-01 | Read": ["ZT-X-01", "ZT-X-02"], "ZT-X-02 | Use": ["ZT-X-02"]}
    # Without the variable's link the reader only carries its own id: the link is what counts.
    assert wanted(tmp_path / "b", tasks, "__demo_value: 1\n")["ZT-X-01 | Read"] == ["ZT-X-01"]


def test_dynamic_includes_and_flushes_always_run_and_so_do_their_readers(tmp_path):
    tasks = (
        "- name: Read\n  ansible.builtin.set_fact: {__demo_on: true}\n"
        "- name: Included\n  ansible.builtin.include_tasks: other.yml\n  when: __demo_on\n"
        "- name: ZT-X-03 | Flush\n  ansible.builtin.meta: flush_handlers\n"
    )
    assert wanted(tmp_path, tasks) == {
        "Read": ["always"],
        "Included": ["always"],
        "ZT-X-03 | Flush": ["ZT-X-03", "always"],
    }


@pytest.mark.parametrize("tagged", ["[always, ZT-X-01]", "[ZT-X-01]"])
def test_the_check_accepts_a_tagged_role_and_refuses_the_untagged_one(tmp_path, tagged):
    tasks = "- name: ZT-X-01 | Write\n  tags: %s\n  ansible.builtin.copy: {content: x, dest: /x}\n" % tagged
    assert wanted(tmp_path, tasks) == {}
    assert wanted(tmp_path / "b", tasks.replace("  tags: %s\n" % tagged, "")) == {"ZT-X-01 | Write": ["ZT-X-01"]}


def test_write_inserts_the_tags_under_the_name(tmp_path):
    role = write_role(tmp_path, "- name: ZT-X-01 | Write\n  ansible.builtin.copy: {content: x, dest: /x}\n")
    control_tags.write(control_tags.missing(role.parent))
    assert (role / "tasks" / "main.yml").read_text().splitlines()[1] == "  tags: [ZT-X-01]"
    assert control_tags.missing(role.parent) == []


def test_the_input_checks_always_run(tmp_path):
    role = write_role(tmp_path, "- name: Validate inputs\n  ansible.builtin.import_tasks: validate.yml\n")
    check = "- name: ZT-IN-01 | Refuse bad inputs\n  ansible.builtin.assert: {that: true}\n"
    (role / "tasks" / "validate.yml").write_text(check)
    assert {task.name: sorted(add) for task, add in control_tags.missing(role.parent)} == {
        "ZT-IN-01 | Refuse bad inputs": ["ZT-IN-01", "always"]
    }
