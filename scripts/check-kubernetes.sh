#!/usr/bin/env bash
# Validates deploy/kubernetes/ offline against the Kubernetes API schemas (the PyPI package
# kubernetes-validate, which carries them; scripts/setup.sh installs it into a virtual
# environment, TRIBUNE_TOOLS_VENV, /opt/tribune/tools-venv by default), strictly (no unknown
# field), for the oldest Kubernetes release still commonly run and the newest it knows. The
# witness variant is rendered as kustomize would (its JSON patch applied) and validated too,
# and the manifests are checked against each other: every member's Raft partner list names
# exactly the pods of its variant, the StatefulSets use the headless Service, the Secret has
# the keys the pods read, the PodDisruptionBudget selects every member.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${TRIBUNE_TOOLS_VENV:-/opt/tribune/tools-venv}
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  echo "check-kubernetes: kubernetes-validate is missing in $venv (scripts/setup.sh installs it)" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$venv/bin/python" - deploy/kubernetes "$tmp" <<'PY'
import copy, os, sys
import yaml

root, out = sys.argv[1], sys.argv[2]

def load(path):
    with open(os.path.join(root, path)) as f:
        return [d for d in yaml.safe_load_all(f) if d]

def resources(variant):
    kust = load(f"{variant}/kustomization.yaml")[0]
    docs = []
    for entry in kust.get("resources", []):
        path = os.path.normpath(os.path.join(variant, entry))
        if os.path.isdir(os.path.join(root, path)):
            docs += resources(path)
        else:
            docs += load(path)
    for patch in kust.get("patches", []):
        target = patch["target"]
        ops = load(os.path.join(variant, patch["path"]))[0]
        matches = [d for d in docs if d["kind"] == target["kind"] and d["metadata"]["name"] == target["name"]]
        assert len(matches) == 1, f"{variant}: the patch {patch['path']} targets {len(matches)} resources"
        apply(matches[0], ops, f"{variant}/{patch['path']}")
    return docs

def apply(doc, ops, where):
    for op in ops:
        *parents, last = op["path"].strip("/").split("/")
        node = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        key = int(last) if isinstance(node, list) else last
        if op["op"] == "test":
            assert node[key] == op["value"], f"{where}: {op['path']} is {node[key]!r}, not {op['value']!r}"
        elif op["op"] in ("replace", "add"):
            node[key] = op["value"]
        else:
            sys.exit(f"{where}: unsupported op {op['op']}")

def env(container, name):
    for e in container.get("env", []):
        if e["name"] == name:
            return e
    return None

for variant in ("three-members", "witness"):
    docs = resources(variant)
    with open(os.path.join(out, f"{variant}.yaml"), "w") as f:
        yaml.safe_dump_all(docs, f)
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    headless = {s["metadata"]["name"] for s in by_kind["Service"] if s["spec"].get("clusterIP") == "None"}
    secrets = {s["metadata"]["name"]: set(s.get("stringData", {})) | set(s.get("data", {})) for s in by_kind["Secret"]}
    sets = by_kind["StatefulSet"]
    pods = [f"{s['metadata']['name']}-{i}" for s in sets for i in range(s["spec"]["replicas"])]
    pdb = by_kind["PodDisruptionBudget"][0]["spec"]["selector"]["matchLabels"]
    for s in sets:
        name = s["metadata"]["name"]
        assert s["spec"]["serviceName"] in headless, f"{variant}: {name} uses no headless Service"
        labels = s["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in pdb.items()), f"{variant}: the PDB misses {name}"
        assert s["spec"]["podManagementPolicy"] == "Parallel", f"{variant}: {name} must start its pods together"
        c = s["spec"]["template"]["spec"]["containers"][0]
        partners = env(c, "PATRONI_RAFT_PARTNER_ADDRS")["value"].split(",")
        want = [f"{p}.{s['spec']['serviceName']}:2222" for p in pods]
        assert sorted(partners) == sorted(want), f"{variant}: {name}'s partners {partners} are not the pods {want}"
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in secrets.get(ref["name"], set()), f"{variant}: {name} reads {ref} that no Secret has"
        probes = {c[p]["httpGet"]["path"] for p in ("livenessProbe", "readinessProbe") if "httpGet" in c.get(p, {})}
        assert "/liveness" in probes, f"{variant}: {name} has no /liveness probe"
    print(f"{variant}: {len(docs)} resources, pods {', '.join(pods)}: consistent")
PY

files=()
while IFS= read -r f; do files+=("$f"); done < <(find deploy/kubernetes -name '*.yaml' ! -name kustomization.yaml ! -name '*.patch.yaml' | sort)
for version in 1.29.0 1.37.0; do
  "$venv/bin/kubernetes-validate" --strict --quiet -k "$version" "${files[@]}" "$tmp"/*.yaml
done
echo "check-kubernetes: ${#files[@]} files and both rendered variants are valid for Kubernetes 1.29 and 1.37"
