#!/usr/bin/env python3
"""Generates src/fake/botapi/spec.rs, the fake Bot API's table of the Bot API: every
method with its return type and required parameters, and the types reachable from the
return types through required fields (only their required fields), so the fake can answer
every real method plausibly without reading the schema at run time.

The schema names no return types; they are read from each method's description (the
sentences that speak of returning), as client generators do.

Usage (from the repository root):
    python3 src/fake/botapi/gen_spec.py [path/to/bot-api-10.2.json]
The default path is $EDGEBOT_SHARED_DATA/botapi/bot-api-10.2.json, else
../shared/data/botapi/bot-api-10.2.json. One line per entry, kept
that way by `#[rustfmt::skip]`.
"""

import json
import os
import re
import sys

# This file sits in src/fake/botapi/ of the crate.
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
OUT = os.path.join(ROOT, "src", "fake", "botapi", "spec.rs")
PRIMITIVES = {"True", "Integer", "String", "Boolean", "Float"}


def schema_path():
    if len(sys.argv) > 1:
        return sys.argv[1]
    base = os.environ.get("EDGEBOT_SHARED_DATA") or os.path.join(ROOT, "..", "shared", "data")
    return os.path.join(base, "botapi", "bot-api-10.2.json")


def return_type(description, types):
    """Known type names in the sentences about returning, in order: `Message or True`."""
    found = []
    for sentence in re.split(r"(?<=\.)\s+", description):
        if not re.search(r"return", sentence, re.I):
            continue
        for m in re.finditer(r"\b(Array of )?([A-Z][A-Za-z]+)\b", sentence):
            name = m.group(2)
            if name in PRIMITIVES or name in types:
                ty = (m.group(1) or "") + name
                if ty not in found:
                    found.append(ty)
    return " or ".join(found)


def names_in(ty):
    """The type names a type expression mentions."""
    ty = ty.replace("Array of ", "")
    return [n for n in re.split(r" or |, | and ", ty) if n]


def variants(description):
    """Forms of an abstract type: the `  - Name` items of its description."""
    items = description.split("  - ")[1:]
    return [item.split()[0].rstrip(",.") for item in items if item.split()]


def literal(field):
    """(kind, value) for a String field: `always 'x'` is a discriminator the fake must
    get right; `can be 'a', 'b'` or `one of 'a'` gives a plausible sample."""
    if field["type"] != "String":
        return None
    description = field["description"]
    m = re.search(r"always '([^']+)'", description)
    if m:
        return ("Always", m.group(1))
    m = re.search(r"(?:can be|one of|either)[^']*'([^']+)'", description)
    if m:
        return ("Sample", m.group(1))
    return None


def snake(name):
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def rust_str(s):
    return json.dumps(s, ensure_ascii=False)


def main():
    path = schema_path()
    with open(path, encoding="utf-8") as f:
        schema = json.load(f)
    types, methods = schema["types"], schema["methods"]
    message_fields = {f["name"]: f["type"] for f in types["Message"]["fields"]}

    rows = []
    roots = []
    for name, method in methods.items():
        returns = return_type(method["description"], types)
        if not returns:
            sys.exit(f"{name}: no return type found in its description")
        required = [f["name"] for f in method["fields"] if f["required"]]
        content = None
        # sendPhoto puts what it sent in Message.photo, sendInvoice in .invoice, ...
        if returns == "Message" and name.startswith("send"):
            field = snake(name[len("send"):])
            if field in message_fields:
                content = (field, message_fields[field])
                roots.extend(names_in(message_fields[field]))
        rows.append((name, returns, required, content))
        roots.extend(names_in(returns))

    # Types reachable from the roots through required fields and union forms.
    reachable, stack = {}, [n for n in roots if n in types]
    while stack:
        name = stack.pop()
        if name in reachable:
            continue
        ty = types[name]
        fields = [f for f in ty["fields"] if f["required"]]
        forms = variants(ty["description"]) if not ty["fields"] else []
        forms = [v for v in forms if v in types]
        reachable[name] = (fields, forms)
        for field in fields:
            stack.extend(n for n in names_in(field["type"]) if n in types)
        stack.extend(forms)

    out = []
    out.append("//! The Bot API 10.2 as the fake needs it at run time: every method with its return")
    out.append("//! type (a type expression such as `Message`, `Array of Update` or `Message or True`)")
    out.append("//! and required parameters, and every type reachable from those return types with its")
    out.append("//! required fields only, so that methods the fake does not model still answer what the")
    out.append("//! schema says they return.")
    out.append("//!")
    out.append("//! GENERATED by `src/fake/botapi/gen_spec.py` from the shared `bot-api-10.2.json`; do not")
    out.append("//! edit by hand, rerun the script. Methods are sorted by lowercased name and types by")
    out.append("//! name, for binary search.")
    out.append("")
    out.append("use super::shape::{Field, Lit, Method, Type};")
    out.append("")
    out.append("#[rustfmt::skip]")
    out.append("pub(crate) const METHODS: &[Method] = &[")
    for name, returns, required, content in sorted(rows, key=lambda r: r[0].lower()):
        req = ", ".join(rust_str(r) for r in required)
        cont = f"Some(({rust_str(content[0])}, {rust_str(content[1])}))" if content else "None"
        out.append(
            f"    Method {{ name: {rust_str(name)}, returns: {rust_str(returns)}, "
            f"required: &[{req}], content: {cont} }},"
        )
    out.append("];")
    out.append("")
    out.append("#[rustfmt::skip]")
    out.append("pub(crate) const TYPES: &[Type] = &[")
    for name in sorted(reachable):
        fields, forms = reachable[name]
        rendered = []
        for field in fields:
            lit = literal(field)
            lit = f"Lit::{lit[0]}({rust_str(lit[1])})" if lit else "Lit::None"
            rendered.append(
                f"Field {{ name: {rust_str(field['name'])}, ty: {rust_str(field['type'])}, lit: {lit} }}"
            )
        forms = ", ".join(rust_str(v) for v in forms)
        out.append(
            f"    Type {{ name: {rust_str(name)}, fields: &[{', '.join(rendered)}], variants: &[{forms}] }},"
        )
    out.append("];")
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(out) + "\n")
    print(f"wrote {OUT}: {len(rows)} methods, {len(reachable)} types")


if __name__ == "__main__":
    main()
