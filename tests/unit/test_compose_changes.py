"""What rendering again changes on a running Docker host, said before start.sh runs."""

from __future__ import annotations

import yaml

from coursehub.targets.compose.changes import stack_changes
from coursehub.targets.compose.render import PLAN_LABEL


def compose(**services) -> str:
    return yaml.safe_dump({"services": services}, sort_keys=False)


HUB = {"image": "x/jupyterhub:6", "labels": {PLAN_LABEL: "a"}, "env_file": ["env.jhub"]}
PROXY = {"image": "x/proxy:5", "env_file": ["env.proxy"]}
CHEM = {
    "image": "x/notebook:grader",
    "volumes": ["/srv/a:/srv/a"],
    "env_file": ["env.service.chem"],
}


def test_a_first_render_is_a_new_stack():
    (line,) = stack_changes(None, compose(proxy=PROXY, jupyterhub=HUB), [])
    assert line == "a new stack: 2 services start (proxy, jupyterhub)"


def test_nothing_changed_says_nothing():
    text = compose(proxy=PROXY, jupyterhub=HUB, chem=CHEM)
    assert stack_changes(text, text, []) == []


def test_a_new_course_starts_its_services_and_the_hub_again_for_the_new_plan():
    old = compose(proxy=PROXY, jupyterhub=HUB, chem=CHEM)
    hub = {**HUB, "labels": {PLAN_LABEL: "b"}}
    new = compose(proxy=PROXY, jupyterhub=hub, chem=CHEM, bio=CHEM, **{"bio-receipts": CHEM})
    assert stack_changes(old, new, ["env.service.bio", "docker-compose.yml"]) == [
        "bio: new, starts",
        "bio-receipts: new, starts",
        "jupyterhub: starts again (the Plan changed)",
    ]


def test_a_new_student_changes_the_graders_folders_and_a_removed_course_goes():
    old = compose(proxy=PROXY, jupyterhub=HUB, chem=CHEM, bio=CHEM)
    chem = {**CHEM, "volumes": [*CHEM["volumes"], "/srv/b:/srv/b"]}
    new = compose(proxy=PROXY, jupyterhub=HUB, chem=chem)
    assert stack_changes(old, new, []) == [
        "bio: no longer rendered, removed",
        "chem: starts again (its folders changed)",
    ]


def test_env_files_and_image_inputs_written_again_are_named():
    text = compose(proxy=PROXY, jupyterhub=HUB, chem=CHEM)
    lines = stack_changes(text, text, ["env.jhub", "env.service.chem", "Dockerfile.base"])
    assert lines == [
        "jupyterhub: starts again (its environment changed)",
        "chem: starts again (its environment changed)",
        "images built again (Dockerfile.base): the services on them start again, "
        "and people's servers take the new image at their next start",
    ]
