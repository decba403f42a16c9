"""Bearer-token access to the operator views: the decision as data, the start-up rule, the wiring."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from pydantic import SecretStr

from gateway_app.settings import Settings
from gateway_app.web import auth, routing, views
from gateway_app.web.auth import Access, Mode, Policy, StartupRefused

READ_1, READ_2, ADMIN = "read-token-one", "read-token-two", "admin-token"


def enforced() -> Policy:
    return Policy.of(Mode.ENFORCED, [SecretStr(READ_1), SecretStr(READ_2)], [SecretStr(ADMIN)])


def bearer(token: str) -> str:
    return f"Bearer {token}"


def settings(**values) -> Settings:
    values.setdefault("web_read_tokens", [])
    values.setdefault("web_admin_tokens", [])
    values.setdefault("web_auth", "on")
    return Settings(**values)


# --- the decision ---------------------------------------------------------------------------------


@pytest.mark.parametrize("required", list(Access))
def test_open_views_and_auth_off_allow_everyone(required):
    assert enforced().check(Access.OPEN, None) is None
    assert Policy.of(Mode.OFF, [SecretStr(READ_1)]).check(required, None) is None
    assert Policy.of(Mode.OFF).check(required, "Bearer garbage", peer="10.1.2.3") is None


@pytest.mark.parametrize("header", [None, "", "   "])
def test_no_token_is_401_with_a_bearer_challenge(header):
    denied = enforced().check(Access.READ, header)
    assert denied.status == 401 and denied.code == "unauthorized"
    assert denied.headers == {"WWW-Authenticate": "Bearer"}
    assert denied.body == {"error": {"code": "unauthorized", "message": denied.message}}


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", READ_1, "Bearer", "Bearer ", f"Bearer {READ_1} extra",
                                    f"Token {READ_1}", f"Bearer{READ_1}"])
def test_a_header_that_is_not_bearer_token_is_401(header):
    denied = enforced().check(Access.READ, header)
    assert (denied.status, denied.code, dict(denied.headers)) == (401, "unauthorized", {"WWW-Authenticate": "Bearer"})


@pytest.mark.parametrize("token", ["garbage", READ_1 + "x", READ_1[:-1], READ_1.upper(), "tøken-ünicode", "\udcff"])
def test_an_unknown_token_is_401(token):
    denied = enforced().check(Access.READ, bearer(token))
    assert denied.status == 401 and denied.code == "unauthorized"


@pytest.mark.parametrize("token", [READ_1, READ_2, ADMIN])
def test_every_read_token_and_every_admin_token_grants_read(token):
    assert enforced().check(Access.READ, bearer(token)) is None


def test_the_scheme_is_case_insensitive():
    assert enforced().check(Access.READ, f"bearer {READ_1}") is None
    assert enforced().check(Access.READ, f"BEARER  {READ_2} ") is None


def test_a_read_token_on_an_admin_request_is_403_and_an_admin_token_passes():
    denied = enforced().check(Access.ADMIN, bearer(READ_1))
    assert denied.status == 403 and denied.code == "forbidden" and "WWW-Authenticate" not in denied.headers
    assert enforced().check(Access.ADMIN, bearer(ADMIN)) is None
    assert enforced().check(Access.ADMIN, bearer("garbage")).status == 401


def test_admin_only_configuration():
    policy = Policy.of(Mode.ENFORCED, [], [SecretStr(ADMIN)])
    assert policy.check(Access.READ, bearer(ADMIN)) is None
    assert policy.check(Access.READ, bearer(READ_1)).status == 401


def test_blank_configured_tokens_never_match():
    policy = Policy.of(Mode.ENFORCED, [SecretStr(""), SecretStr("  ")])
    assert policy.read_tokens == () and policy.level_of("") is None
    assert policy.check(Access.READ, "Bearer ").status == 401


def test_tokens_are_compared_in_constant_time_against_every_configured_token(monkeypatch):
    compared = []
    real = auth.hmac.compare_digest

    def spy(a, b):
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert enforced().level_of(ADMIN) is Access.ADMIN
    assert sorted(compared) == sorted(t.encode() for t in (READ_1, READ_2, ADMIN))  # no early exit


def test_local_only_serves_loopback_callers_and_no_one_else():
    policy = Policy.of(Mode.LOCAL_ONLY)
    for peer in ("127.0.0.1", "127.3.4.5", "::1", "::ffff:127.0.0.1"):
        assert policy.check(Access.READ, None, peer=peer) is None
        assert policy.check(Access.ADMIN, None, peer=peer) is None
    for peer in ("10.0.0.7", "192.168.1.2", "::ffff:10.0.0.7", "2001:db8::1", None, "garbage"):
        denied = policy.check(Access.READ, bearer(READ_1), peer=peer)
        assert denied.status == 403 and denied.code == "forbidden"
    assert policy.check(Access.OPEN, None, peer="10.0.0.7") is None


def test_state_changing_methods_need_admin_whatever_the_view_declares():
    assert auth.required_access(Access.READ, "GET") is Access.READ
    assert auth.required_access(Access.OPEN, "head") is Access.OPEN
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert auth.required_access(Access.READ, method) is Access.ADMIN
        assert auth.required_access(Access.OPEN, method) is Access.ADMIN


# --- start-up ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.1.1", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_without_tokens_starts_local_only(host):
    assert auth.mode_for(settings(web_host=host)) is Mode.LOCAL_ONLY
    level, line = auth.startup_message(settings(web_host=host), Mode.LOCAL_ONLY)
    assert level == "info" and line.startswith("web.auth_local_only")


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "gateway-0.gateway", "localhost.example.com"])
def test_a_network_facing_worker_without_tokens_refuses_to_start(host):
    with pytest.raises(StartupRefused, match="GATEWAY_WEB_READ_TOKENS") as refused:
        auth.mode_for(settings(web_host=host))
    assert "GATEWAY_WEB_AUTH=off" in str(refused.value)


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_tokens_configured_are_always_enforced(host):
    assert auth.mode_for(settings(web_host=host, web_read_tokens=[READ_1])) is Mode.ENFORCED
    assert auth.mode_for(settings(web_host=host, web_admin_tokens=[ADMIN])) is Mode.ENFORCED
    assert auth.startup_message(settings(web_host=host), Mode.ENFORCED) is None


def test_blank_tokens_do_not_count_as_configured():
    with pytest.raises(StartupRefused):
        auth.mode_for(settings(web_host="0.0.0.0", web_read_tokens='["", " "]'))


@pytest.mark.parametrize("tokens", [[], [READ_1]])
def test_auth_off_starts_anywhere_with_a_warning(tokens):
    config = settings(web_host="0.0.0.0", web_auth="off", web_read_tokens=tokens)
    assert auth.mode_for(config) is Mode.OFF
    level, line = auth.startup_message(config, Mode.OFF)
    assert level == "warning" and line.startswith("web.auth_off")


def test_tokens_from_the_environment_comma_separated_or_json(monkeypatch):
    monkeypatch.setenv("GATEWAY_WEB_READ_TOKENS", f"{READ_1}, {READ_2}")
    monkeypatch.setenv("GATEWAY_WEB_ADMIN_TOKENS", f'["{ADMIN}"]')
    monkeypatch.setenv("GATEWAY_WEB_HOST", "0.0.0.0")
    policy = auth.policy_for(Settings())
    assert policy.mode is Mode.ENFORCED
    assert [policy.level_of(t) for t in (READ_1, READ_2, ADMIN)] == [Access.READ, Access.READ, Access.ADMIN]


def test_secrets_stay_hidden_in_the_policy_and_settings_reprs():
    config = settings(web_read_tokens=[READ_1], web_admin_tokens=[ADMIN])
    for text in (repr(config), repr(auth.policy_for(config))):
        assert READ_1 not in text and ADMIN not in text


# --- wiring -----------------------------------------------------------------------------------------


def request(method="GET", authorization=None, remote="127.0.0.1"):
    headers = {} if authorization is None else {"Authorization": authorization}
    return SimpleNamespace(method=method, headers=headers, remote=remote, path="/x")


def test_views_check_the_request_header_method_and_peer():
    policy = enforced()
    assert views.check(policy, Access.READ, request(authorization=bearer(READ_2))) is None
    assert views.check(policy, Access.READ, request()).status == 401
    assert views.check(policy, Access.READ, request("POST", bearer(READ_1))).status == 403
    assert views.check(Policy.of(Mode.LOCAL_ONLY), Access.READ, request(remote="10.9.9.9")).status == 403


def registered_views(config: Settings) -> dict[str, type]:
    import faust

    app = faust.App("web-auth-test", autodiscover=False)
    topics = SimpleNamespace(agent_events=SimpleNamespace(get_topic_name=lambda: "events"))
    views.register(app, config, topics, SimpleNamespace(), SimpleNamespace())
    return {view.view_path: view for view in app.web.views.values()}


def test_every_view_needs_read_but_the_probes_and_the_dashboards_files():
    pages = {path: type(view) for path, view in registered_views(settings(web_read_tokens=[READ_1])).items()}
    levels = {path: view.access for path, view in pages.items()}
    assert levels == {"/health": Access.OPEN, "/ready": Access.OPEN, "/providers": Access.READ,
                      "/agents/{agent_id}": Access.READ, "/agents/{agent_id}/usage": Access.READ,
                      "/agents/{agent_id}/conversations/{room_id}": Access.READ,
                      "/agents/{agent_id}/rooms/{room_id}/moderation": Access.READ,
                      "/rooms/{room_id}/stream": Access.READ, "/metrics": Access.READ, "/usage": Access.READ,
                      # The page and its script hold no figure; the figures need read.
                      "/dashboard": Access.OPEN, "/dashboard/static/{name}": Access.OPEN,
                      "/dashboard/data": Access.READ}
    # Anything but GET/HEAD needs admin whatever the view declares (DELETE of a conversation).
    assert auth.required_access(levels["/agents/{agent_id}/conversations/{room_id}"], "DELETE") is Access.ADMIN


def test_register_refuses_a_network_facing_worker_without_tokens():
    with pytest.raises(StartupRefused):
        registered_views(settings(web_host="0.0.0.0"))


def test_forwarded_requests_carry_the_callers_authorization_only():
    headers = {"Authorization": bearer(READ_1), "Cookie": "c=1", "Host": "worker-a"}
    assert routing.forwarded_headers(headers) == {"Authorization": bearer(READ_1)}
    assert routing.forwarded_headers({}) == {}
