"""``triggers:`` in the workflow format: what validates, and every problem named by its path."""

from __future__ import annotations

from typing import Any

import pytest

from flows.expressions import DEFAULT_LIMITS
from flows.model import DefinitionError, load_definition
from flows.plan import build_plan
from flows.triggers import GitHubFilter, compile_trigger, header_scope, render_inputs

NODES = [{"id": "say", "type": "text.template", "params": {"template": "{{ inputs.title }}"}}]
INPUTS = {
    "repo": {"type": "string", "required": True},
    "title": {"type": "string", "required": True},
    "number": {"type": "integer"},
    "label": {"type": "string", "default": "triage"},
}


def definition(*triggers: dict[str, Any]) -> dict[str, Any]:
    return {"name": "triaged", "inputs": INPUTS, "triggers": list(triggers), "nodes": NODES}


def problems_of(raw: dict[str, Any]) -> dict[str, str]:
    """``{field: message}`` of every problem ``validate`` reports for ``raw``."""
    with pytest.raises(DefinitionError) as refused:
        build_plan(raw)
    return {str(p.field): p.message for p in refused.value.problems}


GITHUB = {
    "github": {"events": ["issues.opened", "pull_request"], "repos": ["acme/api"]},
    "inputs": {"repo": "{{ event.repository.full_name }}", "title": "{{ event.issue.title }}"},
}


def test_a_github_and_a_webhook_trigger_validate_and_round_trip() -> None:
    stripe = {
        "webhook": {
            "signature": {"header": "Stripe-Signature", "pairs": {"signature": "v1", "timestamp": "t"}},
            "delivery": "{{ event.id }}",
        },
        "inputs": {"repo": "acme/billing", "title": "{{ event.type }}", "number": "{{ event.data.object.amount }}"},
    }
    plan = build_plan(definition(GITHUB, stripe))
    workflow = plan.workflow
    assert [t.kind for t in workflow.triggers] == ["github", "webhook"]
    assert load_definition(workflow.to_dict()) == workflow
    signature = workflow.triggers[1].webhook.signature  # type: ignore[union-attr]
    assert signature is not None and signature.parts() == ["{timestamp}", ".", "{body}"]
    assert signature.window == 300


def test_a_workflow_without_triggers_stores_no_triggers_key() -> None:
    raw = {"name": "plain", "nodes": NODES, "inputs": {"title": {"type": "string"}}}
    assert "triggers" not in load_definition(raw).to_dict()


def test_model_problems_name_the_path_of_each_one() -> None:
    found = problems_of(
        definition(
            {"github": {"events": ["issues.opened", "isues", "ping", "Issues!"], "repos": ["acme"]}},
            {"github": {"events": ["push"]}, "webhook": {}},
            {"inputs": {"repo": "x"}},
            {"webhook": {"signature": {"header": "Bad Header"}}},
            {"github": {"events": []}},
        )
    )
    assert found == {
        "triggers[0].github.events[1]": "unknown GitHub event 'isues' (did you mean 'issues'?); see docs/triggers.md",
        "triggers[0].github.events[2]": (
            "`ping` is answered by the bot itself (200) and never starts a run: leave it out"
        ),
        "triggers[0].github.events[3]": "'Issues!' is not an event name or event.action (e.g. issues or issues.opened)",
        "triggers[0].github.repos[0]": found["triggers[0].github.repos[0]"],
        "triggers[1]": found["triggers[1]"],
        "triggers[2]": found["triggers[2]"],
        "triggers[3].webhook.signature.header": found["triggers[3].webhook.signature.header"],
        "triggers[4].github.events": found["triggers[4].github.events"],
    }
    assert "pattern" in found["triggers[0].github.repos[0]"]
    assert "exactly one of `github" in found["triggers[1]"] and "exactly one of" in found["triggers[2]"]
    assert "at least 1 item" in found["triggers[4].github.events"]


def test_sizes_are_bounded() -> None:
    many_events = {"github": {"events": ["issues"] * 51}}
    many_repos = {"github": {"events": ["issues"], "repos": [f"acme/r{i}" for i in range(101)]}}
    many_inputs = {"webhook": {}, "inputs": {f"i{n}": "x" for n in range(101)}}
    found = problems_of(definition(many_events, many_repos, many_inputs))
    assert "at most 50 items" in found["triggers[0].github.events"]
    assert "at most 100 items" in found["triggers[1].github.repos"]
    assert "at most 100 items" in found["triggers[2].inputs"]
    too_many = problems_of({**definition(), "triggers": [{"webhook": {}}] * 21})
    assert "at most 20 items" in too_many["triggers"]
    long_prefix = problems_of(definition({"webhook": {"signature": {"header": "X-Sig", "prefix": "p" * 41}}}))
    assert "at most 40 characters" in long_prefix["triggers[0].webhook.signature.prefix"]


@pytest.mark.parametrize(
    ("signature", "message"),
    [
        ({"header": "X-Sig", "signed": "{body}{nonce}"}, "unknown placeholders ['{nonce}']"),
        ({"header": "X-Sig", "signed": "{body"}, "a lone { or }"),
        ({"header": "X-Sig", "signed": "{method}{url}"}, "{body} exactly once"),
        ({"header": "X-Sig", "timestamp_header": "X-Ts", "signed": "body"}, "must contain {timestamp}"),
        ({"header": "X-Sig", "signed": "timestamp.body"}, "set `timestamp_header` or `pairs.timestamp`"),
        ({"header": "X-Sig", "tolerance": 60}, "need a timestamp"),
        ({"header": "X-Sig", "prefix": "v1=", "pairs": {"signature": "v1"}}, "exclude each other"),
        ({"header": "X-Sig", "algorithm": "md5"}, "'sha256' or 'sha1'"),
        ({"header": "X-Sig", "encoding": "base32"}, "'hex' or 'base64'"),
    ],
)
def test_signature_options_that_cannot_work_are_refused(signature: dict[str, Any], message: str) -> None:
    found = problems_of(definition({"webhook": {"signature": signature}}))
    assert any(message in text for text in found.values()), found
    assert all(field.startswith("triggers[0].webhook.signature") for field in found), found


def test_the_planner_checks_trigger_inputs_against_the_workflow_all_at_once() -> None:
    found = problems_of(
        definition(
            {
                "github": {"events": ["issues"]},
                "inputs": {
                    "repo": "{{ inputs.repo }}",
                    "title": "{{ event.issue.title | shout }}",
                    "colour": "red",
                },
            },
            {"github": {"events": ["push"]}},
            {"webhook": {"delivery": "{{ nodes.x.output }}"}},
            {"webhook": {}, "inputs": {"repo": "{{ event.repo }}", "title": "{{ headers.x_title }}"}},
        )
    )
    assert found == {
        "triggers[0].inputs.repo": (
            "name 'inputs' is not available in expressions (use event, headers) in '{{ inputs.repo }}'"
        ),
        "triggers[0].inputs.title": (
            "unknown filter 'shout' in '{{ event.issue.title | shout }}'; did you mean 'sort', 'count'?"
        ),
        "triggers[0].inputs.colour": "unknown input (declared inputs: label, number, repo, title)",
        "triggers[1].inputs": "required inputs not set by this trigger: repo, title",
        "triggers[2].webhook.delivery": found["triggers[2].webhook.delivery"],
        "triggers[3]": "a workflow has at most one `webhook` trigger (triggers[2])",
    }
    assert "name 'nodes' is not available" in found["triggers[2].webhook.delivery"]


def test_github_filters_match_events_actions_and_repositories() -> None:
    github = GitHubFilter(events=["issues", "pull_request.opened"], repos=["Acme/API"])
    assert github.mismatch("issues", "closed", "acme/api") is None  # `issues`: every action
    assert github.mismatch("pull_request", "opened", "ACME/api") is None  # repos: any case
    assert github.mismatch("pull_request", "closed", "acme/api") == (
        "pull_request.closed is not one of its events (issues, pull_request.opened)"
    )
    assert github.mismatch("issues", "opened", "acme/web") == "repository acme/web is not one of its repos (Acme/API)"
    assert github.mismatch("issues", None, None) == "a delivery without a repository is not one of its repos (Acme/API)"
    assert GitHubFilter(events=["push"]).mismatch("push", None, None) is None


def test_headers_in_scope_are_lower_case_with_underscores_without_credentials() -> None:
    scope = header_scope(
        [
            ("X-GitHub-Delivery", "72d3162e"),
            ("x-github-delivery", "second copy"),
            ("Authorization", "Bearer secret"),
            ("Cookie", "session=1"),
            ("X-Long", "x" * 5000),
            ("Content-Type", "application/json"),
        ]
    )
    assert scope == {"x_github_delivery": "72d3162e", "content_type": "application/json"}


def test_inputs_render_natively_in_the_sandbox_and_failures_are_named() -> None:
    inputs = {**GITHUB["inputs"], "number": "{{ event.issue.number }}"}
    trigger = load_definition(definition({**GITHUB, "inputs": inputs})).triggers[0]
    compiled = compile_trigger(trigger, 0)
    event = {"repository": {"full_name": "acme/api"}, "issue": {"title": "Crash", "number": 7}}
    assert render_inputs(compiled, event, {}, limits=DEFAULT_LIMITS) == (
        {"repo": "acme/api", "title": "Crash", "number": 7},
        [],
    )
    given, failed = render_inputs(compiled, {"repository": {"full_name": "acme/api"}}, {}, limits=DEFAULT_LIMITS)
    assert given == {"repo": "acme/api"}
    assert [field for field, _ in failed] == ["inputs.title", "inputs.number"]
    assert "'dict object' has no attribute 'issue'" in failed[0][1] and "triggers[0].inputs.title" in failed[0][1]


def test_private_attributes_are_refused_before_anything_renders() -> None:
    found = problems_of(definition({"webhook": {}, "inputs": {"repo": "{{ event.__class__ }}", "title": "x"}}))
    assert found == {"triggers[0].inputs.repo": "attribute '__class__' is not allowed in '{{ event.__class__ }}'"}
