"""charts/gouache: single sign-on settings reach auth, with an egress rule to the issuer."""

from __future__ import annotations

import pytest

from tests.integration.chart.conftest import CHART, helm, render

DEFAULT = [CHART / "ci" / "default-values.yaml"]
SSO = (
    "auth.oidc.issuer=https://idp.example.com/",
    "auth.oidc.jwksUrl=https://idp.example.com/.well-known/jwks.json",
    "auth.oidc.audience=gouache-api",
    "auth.oidc.egressCIDRs={203.0.113.0/24}",
)


def test_sso_settings_reach_auth_and_open_egress_to_the_issuer() -> None:
    rendered = render(DEFAULT, sets=(*SSO, "auth.oidc.createUsers=false"))
    config = rendered.get("ConfigMap", "gouache-auth")["data"]
    assert config["GOUACHE_AUTH_OIDC_ISSUER"] == "https://idp.example.com/"
    assert config["GOUACHE_AUTH_OIDC_JWKS_URL"] == "https://idp.example.com/.well-known/jwks.json"
    assert config["GOUACHE_AUTH_OIDC_AUDIENCE"] == "gouache-api"
    assert config["GOUACHE_AUTH_OIDC_EMAIL_CLAIM"] == "email"
    assert config["GOUACHE_AUTH_OIDC_CREATE_USERS"] == "false"
    egress = rendered.get("NetworkPolicy", "gouache-auth")["spec"]["egress"]
    assert {
        "to": [{"ipBlock": {"cidr": "203.0.113.0/24"}}],
        "ports": [{"port": 443, "protocol": "TCP"}],
    } in egress


def test_without_sso_auth_has_no_oidc_settings_nor_egress() -> None:
    rendered = render(DEFAULT)
    config = rendered.get("ConfigMap", "gouache-auth")["data"]
    assert not [key for key in config if "OIDC" in key]
    egress = rendered.get("NetworkPolicy", "gouache-auth")["spec"]["egress"]
    assert all("203.0.113.0/24" not in str(rule) for rule in egress)


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (("auth.oidc.issuer=https://idp.example.com/",), "needs auth.oidc.jwksUrl and"),
        (SSO[:3], "needs auth.oidc.egressCIDRs"),
        (("auth.oidc.jwksUrl=http://idp.example.com/jwks",), "/auth/oidc/jwksUrl'"),
    ],
)
def test_incomplete_sso_values_are_refused(sets: tuple[str, ...], message: str) -> None:
    args = ["template", "gouache", str(CHART), "-f", str(DEFAULT[0])]
    for item in sets:
        args += ["--set", item]
    result = helm(*args, check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
