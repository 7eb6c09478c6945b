#!/usr/bin/env python3
"""Validates Kubernetes manifests offline, every document by the right tool.

  built-in kinds          kubernetes-validate --strict, against Kubernetes KUBE_VERSION
  kinds of the CRDs in    check-jsonschema, against the CRDs' openAPIV3Schema, made
  --crds (kubevrrp.io)    strict like the API server's field validation: unknown
                          fields are errors (additionalProperties: false wherever the
                          schema does not preserve unknown fields); a kubevrrp.io
                          object without its CRD is an error
  monitoring.coreos.com   the Prometheus Operator's published schemas
                          (npm @kubernetes-models/prometheus-operator, via node)

A document no tool knows is an error, never a silent pass.

Usage: validate-manifests.py [--crds DIR]... [--kube-version 1.33.0] FILE...
Tools are taken from .tools/ at the repository root (hack/install-tools.sh).
"""
import argparse
import copy
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools"
KUBERNETES_VALIDATE = TOOLS / "venv" / "bin" / "kubernetes-validate"
CHECK_JSONSCHEMA = TOOLS / "venv" / "bin" / "check-jsonschema"
NODE_MODULES = TOOLS / "node" / "node_modules"
PROMETHEUS_OPERATOR_VALIDATOR = ROOT / "hack" / "validate-prometheus-operator.mjs"
CUSTOM_GROUP = "kubevrrp.io"
PROMETHEUS_OPERATOR_GROUP = "monitoring.coreos.com"


class Failure(Exception):
    pass


def strict_schema(node):
    """An openAPIV3Schema node as JSON Schema that rejects unknown fields and knows nullable."""
    if isinstance(node, list):
        return [strict_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: strict_schema(v) for k, v in node.items()}
    if out.get("nullable") is True and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    if out.get("x-kubernetes-int-or-string") is True and "type" not in out:
        out.setdefault("anyOf", [{"type": "integer"}, {"type": "string"}])
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_schemas(crd_dir: Path) -> dict:
    """(apiVersion, kind) -> JSON Schema for every served version of every CRD in crd_dir."""
    schemas = {}
    for path in sorted(crd_dir.glob("*.yaml")):
        with path.open(encoding="utf-8") as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                group = crd["spec"]["group"]
                kind = crd["spec"]["names"]["kind"]
                for version in crd["spec"]["versions"]:
                    if not version.get("served", True):
                        continue
                    api_version = f"{group}/{version['name']}"
                    schema = strict_schema(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
                    props = schema.setdefault("properties", {})
                    props["apiVersion"] = {"const": api_version}
                    props["kind"] = {"const": kind}
                    # The API server accepts ObjectMeta; check the part examples use.
                    props["metadata"] = {
                        "type": "object",
                        "required": ["name"],
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
                        },
                    }
                    schema["required"] = sorted(set(schema.get("required", [])) | {"apiVersion", "kind", "metadata"})
                    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
                    schemas[(api_version, kind)] = (schema, path.name)
    return schemas


def load_documents(paths):
    docs = []
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for index, doc in enumerate(yaml.safe_load_all(f)):
                if doc is None:
                    continue
                if not isinstance(doc, dict) or "apiVersion" not in doc or "kind" not in doc:
                    raise Failure(f"{path}: document {index} is not a Kubernetes object")
                name = (doc.get("metadata") or {}).get("name", "?")
                docs.append((f"{path} [{doc['kind']}/{name}]", doc))
    return docs


def run(cmd):
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    output = (proc.stdout + proc.stderr).strip()
    return proc.returncode, output


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--crds", type=Path, action="append", default=[],
                        help="directory of CRD YAML (repeatable)")
    parser.add_argument("--kube-version", default="1.33.0")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    try:
        docs = load_documents(args.files)
    except (Failure, yaml.YAMLError, OSError) as e:
        print(f"validate-manifests: {e}", file=sys.stderr)
        return 1
    if not docs:
        print("validate-manifests: no documents in " + " ".join(args.files), file=sys.stderr)
        return 1

    schemas = {}
    for crd_dir in args.crds:
        schemas.update(crd_schemas(crd_dir))
    failures = []
    counts = {"built-in": 0, "custom": 0, "prometheus-operator": 0}
    with tempfile.TemporaryDirectory(prefix="validate-manifests-") as tmp:
        tmp = Path(tmp)
        builtin, custom, promop = [], {}, []
        for i, (label, doc) in enumerate(docs):
            group = doc["apiVersion"].split("/")[0] if "/" in doc["apiVersion"] else ""
            out = tmp / f"{i:03d}-{doc['kind']}.json"
            out.write_text(json.dumps(doc), encoding="utf-8")
            key = (doc["apiVersion"], doc["kind"])
            if key in schemas:
                custom.setdefault(key, []).append((label, out))
            elif group == CUSTOM_GROUP:
                failures.append(f"{label}: no CRD for {doc['apiVersion']} {doc['kind']}"
                                + (f" in {', '.join(map(str, args.crds))}" if args.crds else " (no --crds given)"))
            elif group == PROMETHEUS_OPERATOR_GROUP:
                promop.append((label, out))
            else:
                builtin.append((label, out))

        # Built-in kinds: one run; each document must be reported as passed.
        if builtin:
            rc, output = run([str(KUBERNETES_VALIDATE), "-k", args.kube_version, "--strict"]
                             + [str(out) for _, out in builtin])
            lines = output.splitlines()
            for label, out in builtin:
                mine = [line for line in lines if f" {out} " in f"{line} "]
                if any(line.startswith("INFO ") and " passed " in line for line in mine) and not any(
                    line.startswith(("ERROR", "WARN")) for line in mine
                ):
                    counts["built-in"] += 1
                else:
                    failures.append(f"{label}: kubernetes-validate {args.kube_version}:\n    "
                                    + ("\n    ".join(mine) or f"(no verdict; exit {rc})\n    " + output))

        for (api_version, kind), items in sorted(custom.items()):
            schema, crd_file = schemas[(api_version, kind)]
            schema_path = tmp / f"schema-{kind}.json"
            schema_path.write_text(json.dumps(schema), encoding="utf-8")
            rc, output = run([str(CHECK_JSONSCHEMA), "--schemafile", str(schema_path)] + [str(out) for _, out in items])
            for label, out in items:
                mine = [line.strip() for line in output.splitlines() if str(out) in line]
                if rc == 0 or (not mine and "Schema validation errors" in output):
                    counts["custom"] += 1
                else:
                    failures.append(f"{label}: check-jsonschema against {crd_file}:\n    "
                                    + ("\n    ".join(mine) or output.replace("\n", "\n    ")))

        if promop:
            rc, output = run(["node", str(PROMETHEUS_OPERATOR_VALIDATOR), str(NODE_MODULES)]
                             + [str(out) for _, out in promop])
            if rc != 0:
                failures.append("Prometheus Operator objects:\n    " + output.replace("\n", "\n    "))
            else:
                counts["prometheus-operator"] += len(promop)

    for f in failures:
        print(f"validate-manifests: FAIL {f}", file=sys.stderr)
    summary = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    if failures:
        print(f"validate-manifests: {len(failures)} of {len(docs)} documents failed ({summary or 'none'} valid)", file=sys.stderr)
        return 1
    print(f"validate-manifests: {len(docs)} documents valid ({summary}) in {' '.join(args.files)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
