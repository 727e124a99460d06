#!/usr/bin/env python3
"""`make bench`: measure the stack and write docs/performance.md.

Runs on a stack of its own (containers zt-bench-*), so it never disturbs `make demo`
or the tests. Every figure is the median of several runs, and hardened and stock are
measured side by side in the same run, on the same machine, so only their ratio is
read. Nothing here is a pass/fail threshold: the tests assert behaviour, the bench
only reports.

    BENCH_RUNS=3           runs per figure (median)
    BENCH_SKIP=converge    skip a part (converge, mta); comma-separated
    BENCH_NOTE=...         a line on the conditions of the run, printed in the report
"""

import datetime
import json
import os
import pathlib
import platform
import re
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
STACK = "bench"
STATE = ROOT / ".state" / STACK
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SKIP = set(filter(None, os.environ.get("BENCH_SKIP", "").split(",")))
BIN = pathlib.Path(sys.executable).parent
ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "MOLECULE_"))},
    "MAILSTACK_STACK": STACK,
    "MAILSTACK_STATE_DIR": str(STATE),
    "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
    "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "build" / "collections"),
    "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
    # Facts of every host kept between runs, so a run limited to one host can converge it.
    "ANSIBLE_CACHE_PLUGIN": "jsonfile",
    "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(STATE / "facts"),
    "NO_COLOR": "1",
}
STOCK = "zt-%s-stock" % STACK
SESSIONS = (1, 10, 50)
MESSAGES = 500
MESSAGE_BYTES = 2048


def run(*command, check=True, env=None, timeout=3600):
    result = subprocess.run(command, capture_output=True, text=True, env=env or ENV, cwd=ROOT, timeout=timeout)
    if check and result.returncode != 0:
        raise SystemExit(
            "bench: %s failed (%d):\n%s\n%s"
            % (" ".join(command), result.returncode, result.stdout[-3000:], result.stderr[-3000:])
        )
    return result


def playbook(path, *args):
    """Run a playbook against the bench stack; (seconds, parsed JSON report)."""
    start = time.monotonic()
    result = run(str(BIN / "ansible-playbook"), "-i", "inventories/local/hosts.yml", path, *args)
    seconds = time.monotonic() - start
    return seconds, json.loads(result.stdout[result.stdout.index("{") :])


def exec_in(host, command, check=True, timeout=600):
    name = host if host.startswith("zt-") else "zt-%s-%s" % (STACK, host)
    return run("podman", "exec", name, "sh", "-c", command, check=check, timeout=timeout)


def stack(state):
    playbook("molecule/resources/stack.yml", "-e", "stack_state=%s" % state)


def converge(*args):
    """One converge of the stack and the outside peer: seconds, tasks run per host."""
    seconds, report = playbook("molecule/default/converge.yml", *args)
    tasks = {host: stats["ok"] + stats["changed"] + stats["failures"] for host, stats in report["stats"].items()}
    failed = {host: stats for host, stats in report["stats"].items() if stats["failures"] or stats["unreachable"]}
    if failed:
        raise SystemExit("bench: converge failed on %s" % failed)
    changed = sum(stats["changed"] for stats in report["stats"].values())
    return seconds, tasks, changed


def bench_converge():
    cold, idem, check = [], [], []
    tasks = {}
    for attempt in range(RUNS):
        stack("absent")
        stack("present")
        seconds, tasks, _ = converge()
        cold.append(seconds)
        seconds, _, changed = converge()
        idem.append(seconds)
        if changed:
            raise SystemExit("bench: the second converge changed %d things" % changed)
        seconds, _, _ = converge("--check", "--diff")
        check.append(seconds)
        print(
            "bench: converge run %d: cold %.0f s, idempotent %.0f s, check %.0f s"
            % (attempt + 1, cold[-1], idem[-1], check[-1]),
            file=sys.stderr,
        )
    return {"cold": cold, "idempotent": idem, "check": check, "tasks": tasks}


def address(container):
    out = run("podman", "inspect", container).stdout
    networks = json.loads(out)[0]["NetworkSettings"]["Networks"]
    return next(iter(networks.values()))["IPAddress"]


def start_stock_postfix():
    """Debian's Postfix as the package installs it, on the stack's network: the baseline."""
    image = run("podman", "inspect", "zt-%s-mx" % STACK, "--format", "{{.ImageName}}").stdout.strip()
    run("podman", "rm", "-f", STOCK, check=False)
    run(
        "podman",
        "run",
        "-d",
        "--name",
        STOCK,
        "--hostname",
        "stock",
        "--network",
        "zt-%s" % STACK,
        "--systemd",
        "always",
        image,
        "/sbin/init",
    )
    exec_in(STOCK, "systemctl is-system-running --wait || true")
    exec_in(
        STOCK,
        "echo 'postfix postfix/main_mailer_type select Internet Site' | debconf-set-selections"
        " && echo 'postfix postfix/mailname string stock.example' | debconf-set-selections"
        " && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null"
        " && postconf -e mydestination=stock.example 'mynetworks=127.0.0.0/8'"
        " && systemctl restart postfix",
        timeout=900,
    )


def exempt_the_load_generator():
    """The hardened mx with its per-client limits lifted for the outside peer only."""
    ext = address("zt-%s-ext" % STACK)
    playbook(
        "playbooks/site.yml",
        "--limit",
        "mx",
        "-e",
        json.dumps({"postfix_main_cf": {"smtpd_client_event_limit_exceptions": ext}}),
    )


def drained(host, seconds=600):
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if not exec_in(host, "postqueue -j", check=False).stdout.strip():
            return time.monotonic() - start
        time.sleep(1)
    return None


def smtp_source(target, recipient, sessions):
    command = "smtp-source -M ext.outside.example -s %d -m %d -l %d -f bench@outside.example -t %s %s:25" % (
        sessions,
        MESSAGES,
        MESSAGE_BYTES,
        recipient,
        target,
    )
    start = time.monotonic()
    exec_in("ext", command, timeout=1800)
    return MESSAGES / (time.monotonic() - start)


def bench_mta():
    start_stock_postfix()
    exempt_the_load_generator()
    stock = address(STOCK)
    results = {}
    for sessions in SESSIONS:
        hardened, baseline, deferred, drain = [], [], [], []
        for _ in range(RUNS):
            since = exec_in("mx", "date +%s").stdout.strip()
            hardened.append(smtp_source("mx.corp.example", "demo@corp.example", sessions))
            drain.append(drained("mx"))
            log = exec_in("mx", "journalctl -o cat --no-pager --since @%s" % since).stdout
            deferred.append(len(re.findall(r"status=deferred", log)))
            baseline.append(smtp_source(stock, "root@stock.example", sessions))
            drained(STOCK)
        results[sessions] = {"hardened": hardened, "stock": baseline, "deferred": deferred, "drain": drain}
        print(
            "bench: mta %d sessions: hardened %s msg/s, stock %s msg/s, deferred %s"
            % (sessions, fmt(hardened), fmt(baseline), deferred),
            file=sys.stderr,
        )
    run("podman", "rm", "-f", STOCK, check=False)
    return results


def fmt(values):
    return "/".join("%.1f" % value for value in values)


def median(values):
    values = [value for value in values if value is not None]
    return statistics.median(values) if values else float("nan")


def machine():
    cpuinfo = pathlib.Path("/proc/cpuinfo").read_text().splitlines()
    meminfo = pathlib.Path("/proc/meminfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "?")
    memory = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal"))
    podman = run("podman", "--version").stdout.strip()
    return "%d × %s, %.1f GiB RAM, %s, kernel %s, %s" % (
        os.cpu_count(),
        cpu,
        memory / 1048576,
        platform.freedesktop_os_release().get("PRETTY_NAME", "?"),
        platform.release(),
        podman,
    )


def report(converge_figures, mta_figures):
    lines = [
        "# Performance",
        "",
        "Written by `make bench` (`bench/run.py`) on %s. Medians of %d runs; hardened and stock"
        % (datetime.date.today().isoformat(), RUNS),
        "are measured in the same run on the same machine, so read the ratios, not the absolute figures.",
        "",
        "Machine: %s." % machine(),
        "",
    ]
    if os.environ.get("BENCH_NOTE"):
        lines += ["Conditions of this run: %s" % os.environ["BENCH_NOTE"], ""]
    if converge_figures:
        c = converge_figures
        lines += [
            "## Converge (the whole stack and the outside peer, over SSH)",
            "",
            "| run | wall time (median) | runs |",
            "|---|---|---|",
            "| cold (new containers) | %.0f s | %s |" % (median(c["cold"]), fmt(c["cold"])),
            "| idempotent (`changed=0`) | %.0f s | %s |" % (median(c["idempotent"]), fmt(c["idempotent"])),
            "| `--check --diff` | %.0f s | %s |" % (median(c["check"]), fmt(c["check"])),
            "",
            "Tasks run per host in a cold converge: %s."
            % ", ".join("%s %d" % (host, count) for host, count in sorted(c["tasks"].items())),
            "",
        ]
    if mta_figures:
        lines += [
            "## MTA path: messages/s accepted, hardened mx vs Debian's stock Postfix",
            "",
            "`smtp-source` on the outside peer, %d messages of %d bytes per run, to a directory"
            " recipient on the mx (LDAP lookup, milters, TLS-capable, delivered over LMTP to imap)"
            " and to a local recipient of a stock `postfix` container on the same network. The"
            " outside peer is exempt from the mx's per-client limits for the bench." % (MESSAGES, MESSAGE_BYTES),
            "",
            "| sessions | hardened msg/s | stock msg/s | ratio | deferred (hardened) | queue drained after |",
            "|---|---|---|---|---|---|",
        ]
        for sessions, figures in mta_figures.items():
            hardened, stock = median(figures["hardened"]), median(figures["stock"])
            lines.append(
                "| %d | %.1f | %.1f | %.2f | %s | %.0f s |"
                % (
                    sessions,
                    hardened,
                    stock,
                    hardened / stock,
                    "/".join(map(str, figures["deferred"])),
                    median(figures["drain"]),
                )
            )
        lines.append("")
    lines += [
        "## Not measured yet",
        "",
        "IMAP logins/s and p95 latency for password + TOTP and for app passwords against a plain",
        "LDAP-bind login: the baseline Dovecot is not built yet.",
        "",
    ]
    (ROOT / "docs" / "performance.md").write_text("\n".join(lines))
    print("bench: wrote docs/performance.md", file=sys.stderr)


def main():
    converge_figures = None if "converge" in SKIP else bench_converge()
    if "mta" not in SKIP and converge_figures is None:
        stack("present")
        converge()
    mta_figures = None if "mta" in SKIP else bench_mta()
    report(converge_figures, mta_figures)
    stack("absent")


if __name__ == "__main__":
    main()
