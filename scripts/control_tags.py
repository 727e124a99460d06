#!/usr/bin/env python3
"""Tag every role task with the control id its name starts with, so one control can
be converged alone (`ansible-playbook playbooks/site.yml --tags ZT-SSH-01`).

A task that registers or sets a variable another task uses must run whenever that
task runs: it carries the user's tags too (or `always`, when a user always runs).
Dynamic includes and handler flushes carry `always`, so the tasks behind them are
reached and filtered by their own tags; so do the input checks (tasks/validate.yml).

    scripts/control_tags.py          add the missing tags to roles/*/tasks/*.yml
    scripts/control_tags.py --check  fail when a task lacks one (lint, unit tests)
"""

import pathlib
import re
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONTROL = re.compile(r"ZT-[A-Z]+-\d+")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Keys whose task needs `always`: the tasks behind a dynamic include are reached only
# when the include runs, and a handler flush orders what follows.
ALWAYS_ACTIONS = {"include_tasks", "include_role", "meta"}
BLOCK_KEYS = ("block", "rescue", "always")
NOT_REFERENCES = {"name", "register", "tags"}


class Task:
    def __init__(self, path, node, parents):
        self.path = path
        self.node = node
        self.parents = parents
        self.data = yaml.safe_load(yaml.serialize(node))
        self.name = str(self.data.get("name", ""))
        match = CONTROL.match(self.name)
        self.control = match.group(0) if match else None
        self.tags = set(_as_list(self.data.get("tags")))
        self.action = next((key.split(".")[-1] for key in self.data if key.split(".")[-1] in ALWAYS_ACTIONS), None)
        self.static_import = any(key.split(".")[-1] in ("import_tasks", "import_role") for key in self.data)
        self.is_block = "block" in self.data

    @property
    def line(self):
        return self.node.start_mark.line + 1

    def effective_tags(self):
        tags = set(self.tags)
        for parent in self.parents:
            tags |= parent.tags
        return tags

    def products(self):
        names = set()
        if "register" in self.data:
            names.add(self.data["register"])
        for key, value in self.data.items():
            if key.split(".")[-1] == "set_fact" and isinstance(value, dict):
                names |= {name for name in value if name != "cacheable"}
        return names

    def references(self):
        found = set()
        for key, value in self.data.items():
            if key not in NOT_REFERENCES and key not in BLOCK_KEYS:
                found |= _identifiers(value)
        return found


def _as_list(value):
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _identifiers(value):
    if isinstance(value, str):
        return set(IDENTIFIER.findall(value))
    if isinstance(value, dict):
        return set().union(*(_identifiers(item) for item in value.values()), set(map(str, value)))
    if isinstance(value, list):
        return set().union(set(), *(_identifiers(item) for item in value))
    return set()


def _tasks(path, sequence, parents=()):
    for node in sequence.value:
        task = Task(path, node, list(parents))
        yield task
        for key_node, value_node in node.value:
            if key_node.value in BLOCK_KEYS:
                yield from _tasks(path, value_node, (*parents, task))


def role_tasks(role):
    tasks = []
    for path in sorted((role / "tasks").glob("*.yml")):
        root = yaml.compose(path.read_text())
        if root is not None:
            tasks.extend(_tasks(path, root))
    return tasks


def role_var_references(role):
    """Role variables (defaults, vars) -> the names they use, transitively."""
    direct = {}
    for source in ("defaults/main.yml", "vars/main.yml"):
        path = role / source
        if path.exists():
            for name, value in (yaml.safe_load(path.read_text()) or {}).items():
                direct[name] = _identifiers(value)
    expanded = {}
    for name in direct:
        seen, todo = set(), [name]
        while todo:
            current = todo.pop()
            for ref in direct.get(current, ()):
                if ref not in seen:
                    seen.add(ref)
                    todo.append(ref)
        expanded[name] = seen
    return expanded


def wanted_tags(tasks, var_refs):
    """The tags each task needs: its control id, `always` for includes and flushes,
    and the tags of every task that uses what it registers or sets."""
    wanted = {id(task): set(task.tags) for task in tasks}
    for task in tasks:
        if task.control and not (task.is_block and _children_share(task, tasks)):
            wanted[id(task)].add(task.control)
        if task.action in ALWAYS_ACTIONS and not task.tags:
            wanted[id(task)].add("always")
        # A role's inputs are checked on every run, whatever it is limited to; a play
        # may reach them as the role's validate entry point, not through main.
        if task.path.name == "validate.yml":
            wanted[id(task)].add("always")
    uses = {}
    for task in tasks:
        refs = task.references()
        for name in list(refs):
            refs |= var_refs.get(name, set())
        uses[id(task)] = refs
    changed = True
    while changed:
        changed = False
        for producer in tasks:
            products = producer.products()
            if not products:
                continue
            for consumer in tasks:
                if consumer is producer or not (uses[id(consumer)] & products):
                    continue
                consumer_tags = set(wanted[id(consumer)])
                for parent in consumer.parents:
                    consumer_tags |= wanted[id(parent)]
                producer_tags = set(wanted[id(producer)])
                for parent in producer.parents:
                    producer_tags |= wanted[id(parent)]
                if "always" in producer_tags:
                    continue
                needed = {"always"} if "always" in consumer_tags else consumer_tags - producer_tags
                if needed and not needed <= wanted[id(producer)]:
                    wanted[id(producer)] |= needed
                    changed = True
    return wanted


def _children_share(block, tasks):
    """A block whose children all carry their own control ids is not tagged itself."""
    children = [task for task in tasks if task.parents and task.parents[-1] is block]
    return bool(children) and all(child.control for child in children)


def missing(roles_dir=ROOT / "roles"):
    """(task, tags to add) for every role task that lacks tags it needs."""
    result = []
    for role in sorted(path for path in roles_dir.iterdir() if (path / "tasks").is_dir()):
        tasks = role_tasks(role)
        wanted = wanted_tags(tasks, role_var_references(role))
        for task in tasks:
            if task.static_import:
                continue
            add = wanted[id(task)] - task.tags
            if add:
                result.append((task, add))
    return result


def _order(tags):
    return sorted(tags, key=lambda tag: (tag != "always", tag))


def write(additions):
    by_file = {}
    for task, add in additions:
        by_file.setdefault(task.path, []).append((task, add))
    for path, items in by_file.items():
        lines = path.read_text().splitlines(keepends=True)
        for task, add in sorted(items, key=lambda item: -item[0].line):
            if task.tags:
                raise SystemExit("%s:%d: merge tags by hand: %s" % (path, task.line, sorted(add)))
            start = task.line - 1  # the "- name:" line
            indent = task.node.start_mark.column
            lines.insert(start + 1, "%stags: [%s]\n" % (" " * indent, ", ".join(_order(add))))
        path.write_text("".join(lines))


def main(argv):
    additions = missing()
    if "--check" in argv:
        for task, add in additions:
            print("%s:%d: %s needs tags %s" % (task.path.relative_to(ROOT), task.line, task.name, _order(add)))
        return 1 if additions else 0
    write(additions)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
