"""Plans through the edge of a real mesh: an admin puts a user and a shared project on a
plan (CLI and SDK), the next token carries it, and the services act on it.

A small mesh of its own (SQLite, one cheap model) is started with a pro plan whose monthly
compute quota is 1 second and whose uploads are kept 1 day (enterprise: 365 days), so what
the plan decides shows within a test: the pro user's uploads expire sooner, and once their
jobs have used a second of compute their next job is refused with 429 quota_exceeded naming
the pro plan, while a free user's jobs still run; a project on enterprise keeps its uploads a
year."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from gouache.cli.mesh import UNLIMITED_PLANS, Mesh, MeshConfig, MeshPorts
from gouache.client import ApiError, GouacheClient
from tests.e2e.images import small
from tests.e2e.users import new_user_key

pytestmark = pytest.mark.slow

CLI_TIMEOUT_S = 60
# Jobs the pro user runs at most before their quota (1 compute-second) must be used.
MAX_JOBS = 8
JOB_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def plan_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    state = tmp_path_factory.mktemp("plan-mesh")
    config = MeshConfig(
        state_dir=state,
        ports=MeshPorts.ephemeral(),
        models="gatys.lite0-fast",
        extra_env={
            "GOUACHE_JOBS_COMPUTE_QUOTAS": json.dumps({"pro": 1}),
            "GOUACHE_STORAGE_RETENTION_DAYS_PER_PLAN": json.dumps({"pro": 1, "enterprise": 365}),
        },
        rate_limit_plans=UNLIMITED_PLANS,
    )
    running = Mesh(config)
    try:
        running.start()
    except BaseException:
        for log in sorted((state / "logs").glob("*.log")):
            print(f"--- {log.name}\n{log.read_text()[-3000:]}")
        raise
    try:
        yield running
    finally:
        running.stop()


def _user_id(client: GouacheClient) -> str:
    with httpx.Client(base_url=client.base_url, timeout=10) as http:
        who = http.get("/v1/auth/whoami", headers={"authorization": f"Bearer {client.token()}"})
    assert who.status_code == 200, who.text
    user_id: str = who.json()["user_id"]
    return user_id


def _kept_days(client: GouacheClient, name: str) -> float:
    """Days from now until an upload of this client's expires."""
    file_url = client.upload(small(name, 48), filename=f"{name}.png")
    image_id = file_url.rsplit("/", 1)[-1]
    with httpx.Client(base_url=client.base_url, timeout=10) as http:
        got = http.get(
            f"/v1/images/{image_id}", headers={"authorization": f"Bearer {client.token()}"}
        )
    assert got.status_code == 200, got.text
    expires = datetime.fromisoformat(got.json()["expires_at"].replace("Z", "+00:00"))
    return (expires - datetime.now(UTC)) / timedelta(days=1)


def _cli(mesh: Mesh, *argv: str) -> subprocess.CompletedProcess[str]:
    assert mesh.credentials is not None
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "gouache.cli.main",
            "plans",
            "--url",
            mesh.config.public_url,
            "--api-key",
            mesh.credentials.admin_api_key,
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def test_a_plan_reaches_the_next_token_and_the_services(plan_mesh: Mesh) -> None:
    assert plan_mesh.credentials is not None
    url = plan_mesh.config.public_url
    with GouacheClient(url, plan_mesh.credentials.admin_api_key) as admin:
        pro_key, free_key = new_user_key(admin, url), new_user_key(admin, url)
    with GouacheClient(url, pro_key) as pro:
        pro_id = _user_id(pro)
        assert 29 < _kept_days(pro, "rocket") <= 30  # free until the admin says otherwise

        done = _cli(plan_mesh, "user", pro_id, "pro")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {
            "user_id": pro_id,
            "plan": "pro",
            "previous_plan": "free",
        }
        refused = _cli(plan_mesh, "user", "usr_nobody", "pro")
        assert refused.returncode == 1
        (line,) = refused.stderr.strip().splitlines()
        assert line.startswith("error: "), line
        assert "user usr_nobody does not exist" in line, line

    # A new client gets a new token, which carries the plan.
    with GouacheClient(url, pro_key) as pro, GouacheClient(url, free_key) as free:
        assert 0 < _kept_days(pro, "rocket") <= 1
        assert 29 < _kept_days(free, "coffee") <= 30
        content = pro.upload(small("astronaut", 96), filename="a.png")
        style = pro.upload(small("coffee", 96), filename="c.png", kind="style")
        refusal: ApiError | None = None
        for _ in range(MAX_JOBS):
            try:
                job = pro.create_job(content, [style], model_version="gatys-fast", no_cache=True)
            except ApiError as exc:
                refusal = exc
                break
            assert pro.wait(job.job_id, timeout_s=JOB_TIMEOUT_S).status == "succeeded"
        assert refusal is not None, f"{MAX_JOBS} jobs did not use one compute-second"
        assert (refusal.status, refusal.reason) == (429, "quota_exceeded")
        assert "the pro plan's 1 compute-seconds" in refusal.message
        # The free user's quota (600 s) is far from used: their job runs.
        mine = free.upload(small("astronaut", 48), filename="a.png")
        theirs = free.upload(small("coffee", 48), filename="c.png", kind="style")
        job = free.create_job(mine, [theirs], model_version="gatys-fast", no_cache=True)
        assert free.wait(job.job_id, timeout_s=JOB_TIMEOUT_S).status == "succeeded"

        # A shared project on enterprise: its tokens carry enterprise, whatever the user's.
        project = pro.create_project("Agency")
        with GouacheClient(url, plan_mesh.credentials.admin_api_key) as admin:
            change = admin.set_project_plan(project.project_id, "enterprise")
        assert (change.previous_plan, change.plan) == ("free", "enterprise")
    with GouacheClient(url, pro_key, project=project.project_id) as acting:
        assert 364 < _kept_days(acting, "rocket") <= 365
        detail = acting.get_project(project.project_id)
        assert detail.project.plan == "enterprise"
