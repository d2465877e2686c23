#!/usr/bin/python3
"""Checks deploy/kubernetes/dmaloadd.yaml (tests/systemd/run.sh runs it).

Parses every document with PyYAML and checks what docs/DEPLOYMENT.md promises of it:
a DaemonSet whose container runs /usr/sbin/dmaloadd with its socket in a hostPath
/run/dmaloadd, as root with only CAP_SETUID and CAP_SETGID, not privileged, without
the host's PID or network namespace; and a client pod that mounts the same hostPath,
keeps the runtime's default seccomp profile and runs in a user namespace. With a
second argument, the path of dmaloadd, the ConfigMap's dmaloadd.conf must pass
`dmaloadd -t -c`. Exits 1 with one line saying what is wrong.
"""
import subprocess
import sys
import tempfile

import yaml


def fail(msg):
    print(msg)
    sys.exit(1)


def host_path_mounts(spec, container):
    """The mount paths in @container of hostPath volumes of /run/dmaloadd."""
    vols = {v["name"] for v in spec.get("volumes", [])
            if v.get("hostPath", {}).get("path") == "/run/dmaloadd"}
    return [m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in vols]


def main(path, daemon=None):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    for d in docs:
        for key in ("apiVersion", "kind", "metadata"):
            if key not in d:
                fail(f"a document without {key}: {str(d)[:60]}")
        if d.get("spec", {}).get("template", {}).get("spec", {}).get("containers") is None \
                and d["kind"] in ("DaemonSet", "Deployment"):
            fail(f"{d['kind']} {d['metadata']['name']}: no containers")
    if "privileged: true" in open(path).read():
        fail("something is privileged")

    ds = [d for d in docs if d["kind"] == "DaemonSet"]
    if len(ds) != 1:
        fail(f"{len(ds)} DaemonSets, want 1")
    ds = ds[0]
    if ds["apiVersion"] != "apps/v1":
        fail(f"DaemonSet apiVersion {ds['apiVersion']}")
    labels = ds["spec"]["template"]["metadata"]["labels"]
    for k, v in ds["spec"]["selector"]["matchLabels"].items():
        if labels.get(k) != v:
            fail(f"the selector's {k}={v} does not match the pod template's labels")
    spec = ds["spec"]["template"]["spec"]
    if spec.get("hostPID") or spec.get("hostNetwork"):
        fail("the daemon pod shares the host's PID or network namespace")
    (c,) = [c for c in spec["containers"] if c["name"] == "dmaloadd"]
    cmd = c.get("command", []) + c.get("args", [])
    if not cmd or cmd[0] != "/usr/sbin/dmaloadd":
        fail(f"the daemon container runs {cmd}")
    if host_path_mounts(spec, c) != ["/run/dmaloadd"]:
        fail("the daemon container does not mount the hostPath /run/dmaloadd there")
    sc = c.get("securityContext", {})
    caps = sc.get("capabilities", {})
    if caps.get("drop") != ["ALL"] or sorted(caps.get("add", [])) != ["SETGID", "SETUID"]:
        fail(f"the daemon's capabilities: {caps}")
    if sc.get("allowPrivilegeEscalation") is not False or sc.get("runAsUser") != 0:
        fail("the daemon must run as uid 0 with allowPrivilegeEscalation: false")
    if not c.get("resources", {}).get("limits", {}).get("memory"):
        fail("no memory limit on the daemon (its cache is charged to it)")
    confs = [d for d in docs if d["kind"] == "ConfigMap"]
    sock = None
    for cm in confs:
        for line in cm.get("data", {}).get("dmaloadd.conf", "").splitlines():
            if line.replace(" ", "").startswith("socket="):
                sock = line.split("=", 1)[1].strip()
    if sock != "/run/dmaloadd/dmaloadd.sock":
        fail(f"the conf's socket is {sock}")
    if daemon:
        with tempfile.NamedTemporaryFile("w", suffix=".conf") as t:
            t.write(confs[0]["data"]["dmaloadd.conf"])
            t.flush()
            r = subprocess.run([daemon, "-t", "-c", t.name], capture_output=True, text=True)
            if r.returncode != 0:
                fail(f"dmaloadd -t rejects the ConfigMap's conf: {r.stderr.strip()}")

    clients = [d for d in docs if d["kind"] == "Pod"]
    if not clients:
        fail("no client pod")
    for p in clients:
        pspec = p["spec"]
        for cc in pspec["containers"]:
            if host_path_mounts(pspec, cc) != ["/run/dmaloadd"]:
                fail(f"client {p['metadata']['name']}: no hostPath /run/dmaloadd mount")
            prof = cc.get("securityContext", {}).get("seccompProfile", {}).get("type")
            if prof != "RuntimeDefault":
                fail(f"client {p['metadata']['name']}: seccomp {prof}, want RuntimeDefault")
        if pspec.get("hostUsers") is not False:
            fail(f"client {p['metadata']['name']}: no user namespace (hostUsers: false)")


if __name__ == "__main__":
    main(*sys.argv[1:3])
