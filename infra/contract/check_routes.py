"""Checks that openapi.yaml and template.yaml declare the same public routes.

Every `Type: HttpApi` event in template.yaml must be documented by at least one operation whose
`x-template-route` names it ("METHOD /path", as the template spells the path), and every
operation must name a route the template declares; a greedy `{proxy+}` route covers the
operations under it. Exit status 1, with each disagreement on a line, when they differ.

    python check_routes.py template.yaml openapi.yaml
"""

from __future__ import annotations

import re
import sys

import yaml

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


class _CfnLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !Sub, !GetAtt…) as plain values."""


def _any_tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node):
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


_CfnLoader.add_multi_constructor("!", _any_tag)


def template_routes(path: str) -> dict[str, str]:
    """{"METHOD /path": "Function.Event"} for every HttpApi event."""
    with open(path) as f:
        template = yaml.load(f, Loader=_CfnLoader)
    routes = {}
    for name, resource in (template.get("Resources") or {}).items():
        for event_name, event in ((resource.get("Properties") or {}).get("Events") or {}).items():
            if event.get("Type") != "HttpApi":
                continue
            props = event.get("Properties") or {}
            routes[f"{props['Method'].upper()} {props['Path']}"] = f"{name}.{event_name}"
    return routes


def spec_operations(path: str) -> list[tuple[str, str, str | None]]:
    """(METHOD, path, x-template-route) for every operation."""
    with open(path) as f:
        spec = yaml.safe_load(f)
    ops = []
    for p, item in (spec.get("paths") or {}).items():
        for method, op in item.items():
            if method in METHODS:
                ops.append((method.upper(), p, op.get("x-template-route")))
    return ops


def covers(route: str, method: str, path: str) -> bool:
    """Whether the template route `route` serves METHOD path (API Gateway's matching)."""
    r_method, r_path = route.split(" ", 1)
    if r_method not in (method, "ANY"):
        return False
    pattern = "^"
    for part in re.split(r"(\{[^}]+\})", r_path):
        if part.endswith("+}"):
            pattern += ".+"
        elif part.startswith("{"):
            pattern += "[^/]+"
        else:
            pattern += re.escape(part)
    pattern += "$"
    # A documented path parameter matches any segment of the route.
    concrete = re.sub(r"\{[^}]+\}", "x", path)
    return re.match(pattern, concrete) is not None


def main(template_path: str, spec_path: str) -> int:
    routes = template_routes(template_path)
    problems = []
    documented = set()
    for method, path, named in spec_operations(spec_path):
        label = f"{method} {path}"
        if named is None:
            problems.append(f"openapi.yaml: {label} has no x-template-route")
            continue
        if named not in routes:
            problems.append(f"openapi.yaml: {label} names {named!r}, which template.yaml does not declare")
            continue
        if not covers(named, method, path):
            problems.append(f"openapi.yaml: {label} names {named!r}, which does not serve it")
            continue
        documented.add(named)
    for route, where in sorted(routes.items()):
        if route not in documented:
            problems.append(f"template.yaml: {route} ({where}) is not documented in openapi.yaml")
    for p in problems:
        print(f"  {p}")
    if problems:
        return 1
    print(f"  template.yaml and openapi.yaml agree on {len(routes)} routes")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
