"""Extract from Stripe's OpenAPI description (a local copy of `openapi/spec3.json` or
`spec3.yaml` of the `stripe/openapi` repository) the few schemas the local Stripe server is
checked against, into `spec.json` beside this file, and with `--fixtures` Stripe's example
objects of the same commit (`openapi/fixtures3.json`) into `fixtures.json`. See README.md here.

    python -m tests.payouts.stripe_openapi.extract SPEC_FILE --commit SHA \
        [--path openapi/spec3.yaml] [--fixtures FIXTURES_FILE]

It reads only the file it is given; nothing is downloaded, and the tests read `spec.json` only.
"""

from __future__ import annotations

import argparse
import datetime
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
OUT = HERE / "spec.json"
FIXTURES_OUT = HERE / "fixtures.json"

# What the local server speaks: the Refund and the error objects, the Dispute and Event objects
# that webhooks carry (docs/rules.md, Payouts), and the refund operations the gateway calls.
ROOT_SCHEMAS = ("refund", "error", "api_errors", "dispute", "event")
OPERATIONS = (("/v1/refunds", "post"), ("/v1/refunds", "get"), ("/v1/refunds/{refund}", "get"))

# api_errors carries the PaymentIntent, PaymentMethod, SetupIntent or Source a card error was
# about; each drags in hundreds of schemas. The server never sends them, so each is kept as
# "some object": a loosening that cannot let through anything the server actually sends.
PRUNED_PROPERTIES = {
    ("api_errors", "payment_intent"),
    ("api_errors", "payment_method"),
    ("api_errors", "setup_intent"),
    ("api_errors", "source"),
}
PRUNED = {"type": "object", "description": "Pruned from the kept subset (see README.md)."}

REF = "#/components/schemas/"


def load(spec_file: Path) -> dict[str, Any]:
    text = spec_file.read_text()
    if spec_file.suffix in (".yaml", ".yml"):
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(text, Loader=loader)  # noqa: S506 - a safe loader
    return json.loads(text)


def prune(node: Any) -> Any:
    """An expandable field (`anyOf` an id string or the object, with `x-expansionResources`)
    keeps only its id alternative: Stripe sends the id unless a request asks for `expand`, and
    neither the gateway nor the local server ever does."""
    if isinstance(node, dict):
        if "x-expansionResources" in node and "anyOf" in node:
            node = {k: v for k, v in node.items() if k != "x-expansionResources"}
            node["anyOf"] = [alt for alt in node["anyOf"] if "$ref" not in alt]
        return {key: prune(value) for key, value in node.items()}
    if isinstance(node, list):
        return [prune(item) for item in node]
    return node


def refs(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str) and node["$ref"].startswith(REF):
            found.add(node["$ref"].removeprefix(REF))
        for value in node.values():
            found |= refs(value)
    elif isinstance(node, list):
        for item in node:
            found |= refs(item)
    return found


def subset(spec: dict[str, Any]) -> dict[str, Any]:
    schemas = spec["components"]["schemas"]
    paths: dict[str, dict[str, Any]] = {}
    todo = list(ROOT_SCHEMAS)
    for path, method in OPERATIONS:
        operation = prune(spec["paths"][path][method])
        paths.setdefault(path, {})[method] = operation
        todo.extend(refs(operation))
    kept: dict[str, Any] = {}
    while todo:
        name = todo.pop()
        if name in kept:
            continue
        schema = prune(schemas[name])
        for owner, prop in PRUNED_PROPERTIES:
            if owner == name:
                schema["properties"][prop] = dict(PRUNED)
        kept[name] = schema
        todo.extend(refs(schema))
    return {"paths": paths, "components": {"schemas": kept}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec_file", type=Path)
    parser.add_argument("--commit", required=True, help="the stripe/openapi commit it came from")
    parser.add_argument("--path", default="openapi/spec3.yaml", help="its path in that repository")
    parser.add_argument("--fixtures", type=Path, help="fixtures3.json of the same commit")
    args = parser.parse_args()
    if args.fixtures:
        resources = load(args.fixtures)["resources"]
        examples = {name: resources[name] for name in ("refund", "dispute", "event")}
        FIXTURES_OUT.write_text(json.dumps(examples, indent=2, sort_keys=True) + "\n")
    spec = load(args.spec_file)
    kept = {
        "openapi": spec["openapi"],
        "info": {"title": spec["info"]["title"], "version": spec["info"]["version"]},
        "x-source": {
            "repository": "stripe/openapi",
            "path": args.path,
            "commit": args.commit,
            "api_version": spec["info"]["version"],
            "license": "MIT, Copyright (c) 2011- Stripe, Inc.",
            "extracted": datetime.date.today().isoformat(),
            "roots": list(ROOT_SCHEMAS),
            "operations": [f"{method.upper()} {path}" for path, method in OPERATIONS],
        },
        **subset(spec),
    }
    OUT.write_text(json.dumps(kept, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    count, version = len(kept["components"]["schemas"]), kept["info"]["version"]
    print(f"{OUT.name}: {count} schemas, API {version}")


if __name__ == "__main__":
    main()
