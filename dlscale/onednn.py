"""Reading oneDNN's ONEDNN_VERBOSE=1 trace: which primitives ran, how, in which layouts, how long.

A trace line looks like (oneDNN 3.x, as in TensorFlow 2.15):

    onednn_verbose,exec,cpu,convolution,brgconv:avx512_core,forward_training,
      src_f32::blocked:acdb::f0 wei_f32:a:blocked:Acdb16a::f0 ... ,attr-post-ops:eltwise_relu ,
      alg:convolution_direct,mb32_ic1oc32_ih28oh28kh5...,1.46997

operation, engine, primitive, implementation (kernel and ISA), propagation kind, memory
descriptors (data type and layout of each tensor), attributes (post-ops fused into the
primitive), auxiliary, problem description, time in milliseconds.
"""

from __future__ import annotations

import re
from collections import defaultdict

FIELDS = ["operation", "engine", "primitive", "implementation", "prop_kind", "memory_descriptors",
          "attributes", "auxiliary", "problem_desc", "exec_time"]


def parse_verbose(text: str) -> dict:
    """{"version", "isa", "runtime", "executions": [one dict per executed primitive], "created":
    [the same for each primitive created, from ONEDNN_VERBOSE=2's creation lines]}."""
    info = {"version": None, "isa": None, "runtime": None, "executions": [], "created": []}
    fields = FIELDS
    for line in text.splitlines():
        if not line.startswith("onednn_verbose,"):
            continue
        parts = line.split(",")[1:]
        if parts[0].startswith("v") and parts[0][1:].isdigit():  # oneDNN >= 3.5 names its format: v1
            parts = parts[1:]
        if parts[:2] == ["primitive", "info"]:
            parts = parts[1:]
        if parts[0] == "info":
            rest = ",".join(parts[1:])
            if rest.startswith("oneDNN v"):
                info["version"] = rest.split()[1]
            elif rest.startswith("cpu,isa:"):
                info["isa"] = rest.removeprefix("cpu,isa:")
            elif rest.startswith("cpu,runtime:"):
                info["runtime"] = rest.removeprefix("cpu,runtime:").split(",")[0]
            elif rest.startswith(("prim_template:", "template:")):  # the trace names its own columns
                fields = rest.split(":", 1)[1].split(",")
            continue
        if parts[0] == "primitive":  # oneDNN >= 3.4 prefixes the operation with its category
            parts = parts[1:]
        kind = {"exec": "executions", "create": "created"}.get(parts[0].split(":")[0])
        if kind is None or len(parts) < len(fields):
            continue
        row = dict(zip(fields, parts, strict=False))
        descriptors = row.get("memory_descriptors", "").split()
        info[kind].append({
            "primitive": row["primitive"],
            "cache": parts[0].partition(":")[2] or None,  # a creation's cache_miss or cache_hit
            "implementation": row["implementation"] or "(library call)",
            "prop_kind": row["prop_kind"],
            "formats": {_tensor(d)[0]: _layout(d) for d in descriptors},
            "types": {name: kind for name, kind in map(_tensor, descriptors)},
            "post_ops": re.findall(r"attr-post-ops:(\S+)", row.get("attributes", "")),
            "problem": row.get("problem_desc", ""),
            "ms": float(parts[-1]),
        })
    return info


def _tensor(descriptor: str) -> tuple[str, str]:
    """'src_f32::blocked:...' (oneDNN 3.x) or 'src:u8::blocked:...' (v1 traces) -> ('src', 'f32')."""
    found = re.match(r"([a-z]+)[_:]([a-z0-9]+)", descriptor)
    return (found.group(1), found.group(2)) if found else (descriptor, "?")


def _layout(descriptor: str) -> str:
    """'wei_f32:a:blocked:Acdb16a::f0' -> 'Acdb16a' (the layout tag)."""
    pieces = descriptor.split(":")
    return pieces[pieces.index("blocked") + 1] if "blocked" in pieces else "?"


def summarize(executions: list[dict]) -> list[dict]:
    """Executions grouped by primitive, implementation, propagation and fused post-ops; slowest first."""
    groups: dict[tuple, dict] = defaultdict(lambda: {"count": 0, "ms": 0.0})
    for e in executions:
        key = (e["primitive"], e["implementation"], e["prop_kind"], "+".join(e["post_ops"]))
        groups[key]["count"] += 1
        groups[key]["ms"] += e["ms"]
    rows = [{"primitive": p, "implementation": i, "prop_kind": k, "fused_post_ops": f, **v}
            for (p, i, k, f), v in groups.items()]
    return sorted(rows, key=lambda row: -row["ms"])


def implementations_with(summary: list[dict], primitive: str, post_op: str) -> list[str]:
    """The implementations of `primitive` rows of a summary that carry the fused `post_op`."""
    return [row["implementation"] for row in summary
            if row["primitive"] == primitive and post_op in row["fused_post_ops"]]


def blocked_layouts(executions: list[dict]) -> list[str]:
    """Layout tags with a block size (e.g. Acdb16a: 16 output channels side by side), the formats
    oneDNN chooses so that one vector register holds one block."""
    return sorted({f for e in executions for f in e["formats"].values() if re.search(r"\d", f)})

