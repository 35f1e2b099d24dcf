"""The files a deployer uses beside template.yaml, kept true to it and to the code.

    python3 infra/deploy_files.py check
        slack-app-manifest.yaml: its bot scopes are exactly the scopes GET /slack/install asks
        for (BOT_SCOPES in functions/ingestlayer/src/slack/oauth.rs), its bot events exactly the Slack
        events the library acts on, its redirect and request URLs the template's routes and
        outputs. events/env.json (the `sam local invoke --env-vars` file): one entry per
        function of template.yaml, each with exactly the variables the template gives that
        function, every {Placeholder} a stack output (or {StackName}). The HTTP API: every
        route has its own throttle, and no open route shares authenticated ingest's. Exits 1
        naming each difference. infra/template-check.sh (make test, make sam-build) runs it.

    aws cloudformation describe-stacks --stack-name NAME | python3 infra/deploy_files.py env-vars
        events/env.json with the placeholders filled from that stack's outputs, on stdout
        (for `sam local invoke --env-vars`).

`check` needs PyYAML (in .tools/venv); `env-vars` only the standard library.
"""

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"\{([A-Za-z0-9]+)\}")

# Slack Events API event types (https://api.slack.com/events) of more than one word: a string
# literal in the library equal to one of these is an event the code acts on.
SLACK_EVENT_TYPES = {
    "app_home_opened", "app_mention", "app_rate_limited", "app_requested",
    "app_uninstalled", "app_uninstalled_team", "assistant_thread_context_changed",
    "assistant_thread_started", "call_rejected", "channel_archive", "channel_created",
    "channel_deleted", "channel_history_changed", "channel_id_changed", "channel_left",
    "channel_rename", "channel_shared", "channel_unarchive", "channel_unshared",
    "dnd_updated", "dnd_updated_user", "email_domain_changed", "emoji_changed",
    "file_change", "file_created", "file_deleted", "file_public", "file_shared",
    "file_unshared", "function_executed", "grid_migration_finished",
    "grid_migration_started", "group_archive", "group_close", "group_deleted",
    "group_history_changed", "group_left", "group_open", "group_rename",
    "group_unarchive", "im_close", "im_created", "im_history_changed", "im_open",
    "invite_requested", "link_shared", "member_joined_channel", "member_left_channel",
    "message_metadata_deleted", "message_metadata_posted", "message_metadata_updated",
    "pin_added", "pin_removed", "reaction_added", "reaction_removed", "resources_added",
    "resources_removed", "scope_denied", "scope_granted", "shared_channel_invite_accepted",
    "shared_channel_invite_approved", "shared_channel_invite_declined",
    "shared_channel_invite_received", "shared_channel_invite_requested", "star_added",
    "star_removed", "subteam_created", "subteam_members_changed", "subteam_self_added",
    "subteam_self_removed", "subteam_updated", "team_access_granted", "team_access_revoked",
    "team_domain_change", "team_join", "team_rename", "tokens_revoked", "user_change",
    "user_huddle_changed", "user_profile_changed", "user_resource_denied",
    "user_resource_granted", "user_resource_removed", "user_status_changed",
    "workflow_deleted", "workflow_published", "workflow_step_deleted",
    "workflow_step_execute", "workflow_unpublished",
}


def template():
    """template.yaml with its short-form intrinsics (!Ref, !Sub, …) read as {tag: value}."""
    import yaml

    class CfnLoader(yaml.SafeLoader):
        pass

    def intrinsic(loader, suffix, node):
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {suffix: value}

    CfnLoader.add_multi_constructor("!", intrinsic)
    return yaml.load((ROOT / "template.yaml").read_text(), Loader=CfnLoader)


def functions(tpl):
    """{logical id: set of environment variable names} for every function, Globals included."""
    global_vars = set(
        tpl.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    )
    return {
        name: global_vars
        | set(res["Properties"].get("Environment", {}).get("Variables", {}))
        for name, res in tpl["Resources"].items()
        if res["Type"] == "AWS::Serverless::Function"
    }


def http_routes(tpl):
    """{"METHOD /path": function logical id} of every HTTP API event."""
    routes = {}
    for name, res in tpl["Resources"].items():
        for event in res.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") == "HttpApi":
                p = event["Properties"]
                routes[f"{p['Method'].upper()} {p['Path']}"] = name
    return routes


def rust_string_literals(path):
    return set(re.findall(r'"([^"\\\n]*)"', path.read_text()))


def bot_scopes():
    source = (ROOT / "functions/ingestlayer/src/slack/oauth.rs").read_text()
    block = re.search(r"pub const BOT_SCOPES: &\[&str\] = &\[(.*?)\];", source, re.S)
    if not block:
        raise SystemExit("deploy_files: BOT_SCOPES not found in functions/ingestlayer/src/slack/oauth.rs")
    return re.findall(r'"([^"]+)"', block.group(1))


def handled_events():
    found = set()
    for path in sorted((ROOT / "functions/ingestlayer/src").rglob("*.rs")):
        found |= rust_string_literals(path) & SLACK_EVENT_TYPES
    return found


def url_path(url):
    return "/" + url.split("://", 1)[-1].split("/", 1)[-1]


def check_manifest(tpl, problems):
    import yaml

    manifest = yaml.safe_load((ROOT / "slack-app-manifest.yaml").read_text())
    oauth = manifest.get("oauth_config", {})
    scopes = oauth.get("scopes", {}).get("bot", [])
    wanted = bot_scopes()
    if sorted(scopes) != sorted(wanted) or len(set(scopes)) != len(scopes):
        problems.append(
            f"slack-app-manifest.yaml bot scopes {sorted(scopes)} are not the scopes the install "
            f"asks for (BOT_SCOPES): {sorted(wanted)}"
        )
    events = manifest.get("settings", {}).get("event_subscriptions", {})
    subscribed = events.get("bot_events", [])
    handled = handled_events()
    if sorted(subscribed) != sorted(handled):
        problems.append(
            f"slack-app-manifest.yaml bot events {sorted(subscribed)} are not the events the code "
            f"acts on: {sorted(handled)}"
        )
    routes = http_routes(tpl)
    outputs = tpl.get("Outputs", {})
    for what, urls, route, output in [
        ("redirect URL", oauth.get("redirect_urls", []), "GET /slack/oauth/callback", "SlackRedirectUrl"),
        ("event request URL", [events.get("request_url", "")], "POST /slack/events", "SlackEventsUrl"),
        ("interactivity request URL",
         [manifest.get("settings", {}).get("interactivity", {}).get("request_url", "")],
         "POST /slack/interactions", "SlackInteractionsUrl"),
    ]:
        path = route.split(" ", 1)[1]
        if [url_path(u) for u in urls] != [path]:
            problems.append(f"slack-app-manifest.yaml {what} {urls} does not end in {path}")
        if routes.get(route) != "SlackConnectFunction":
            problems.append(f"template.yaml has no {route} route on SlackConnectFunction")
        value = outputs.get(output, {}).get("Value", {}).get("Sub", "")
        if not value.endswith(path):
            problems.append(f"template.yaml output {output} does not end in {path}")


def check_env_vars(tpl, problems):
    env = json.loads((ROOT / "events/env.json").read_text())
    declared = functions(tpl)
    if set(env) != set(declared):
        problems.append(
            f"events/env.json entries {sorted(env)} are not template.yaml's functions {sorted(declared)}"
        )
    outputs = set(tpl.get("Outputs", {})) | {"StackName"}
    for function, names in declared.items():
        given = env.get(function, {})
        missing, extra = names - set(given), set(given) - names
        if missing:
            problems.append(f"events/env.json {function} lacks {sorted(missing)} (template.yaml sets them)")
        if extra:
            problems.append(f"events/env.json {function} has {sorted(extra)}, which template.yaml does not set")
        for name, value in given.items():
            for placeholder in PLACEHOLDER.findall(str(value)):
                if placeholder not in outputs:
                    problems.append(
                        f"events/env.json {function}.{name} names {{{placeholder}}}, not a stack output"
                    )


# The routes an API key guards; every other route answers anyone before any check.
AUTHENTICATED_INGEST = {"POST /v1/events", "POST /v1/events/batch"}


def check_throttles(tpl, problems):
    routes = set(http_routes(tpl))
    settings = tpl["Resources"]["HttpApi"]["Properties"].get("RouteSettings", {})
    if set(settings) != routes:
        problems.append(
            f"template.yaml HttpApi RouteSettings {sorted(settings)} are not its routes {sorted(routes)}"
        )
    ingest = {json.dumps(settings.get(r), sort_keys=True) for r in AUTHENTICATED_INGEST}
    for route in sorted(routes - AUTHENTICATED_INGEST):
        if json.dumps(settings.get(route), sort_keys=True) in ingest:
            problems.append(f"template.yaml: {route} is open but throttled with authenticated ingest's budget")


def check():
    tpl = template()
    problems = []
    check_manifest(tpl, problems)
    check_env_vars(tpl, problems)
    check_throttles(tpl, problems)
    for p in problems:
        print(f"deploy_files: {p}", file=sys.stderr)
    if problems:
        sys.exit(1)
    print(
        f"slack-app-manifest.yaml: {len(bot_scopes())} scopes, events {sorted(handled_events())}; "
        f"events/env.json: {len(functions(tpl))} functions, as template.yaml declares"
    )


def fill_env_vars(stacks):
    """events/env.json with its placeholders filled from a describe-stacks answer."""
    stack = stacks["Stacks"][0]
    values = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    values["StackName"] = stack["StackName"]
    env = json.loads((ROOT / "events/env.json").read_text())

    def fill(text):
        def one(m):
            if m.group(1) not in values:
                raise SystemExit(f"deploy_files: the stack has no output {m.group(1)}")
            return values[m.group(1)]

        return PLACEHOLDER.sub(one, text)

    return {f: {k: fill(v) for k, v in vs.items()} for f, vs in env.items()}


def main():
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "check":
        check()
    elif command == "env-vars":
        json.dump(fill_env_vars(json.load(sys.stdin)), sys.stdout, indent=2)
        print()
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
