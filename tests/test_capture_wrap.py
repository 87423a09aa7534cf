"""otm.wrap() checks what it is given, once: a clear error for what cannot be used,
a coercion for what is unambiguous, never a client whose records are all lost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import otm
from otm.testing.server import scenario_headers as H

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
genai = pytest.importorskip("google.genai")
from google.genai import types  # noqa: E402

MESSAGES = [{"role": "user", "content": "hi"}]


def _clients(server: Any) -> dict[str, Any]:
    return {
        "openai": openai.OpenAI(base_url=server.openai_base_url, api_key="x", max_retries=0),
        "anthropic": anthropic.Anthropic(
            base_url=server.anthropic_base_url, api_key="x", max_retries=0
        ),
        "google": genai.Client(
            api_key="x", http_options=types.HttpOptions(base_url=server.gemini_base_url)
        ),
    }


def _call(sdk: str, client: Any) -> Any:
    if sdk == "openai":
        return client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_headers=H(output_tokens=3)
        )
    if sdk == "anthropic":
        return client.messages.create(
            model="claude-sonnet-4-5", max_tokens=16, messages=MESSAGES, extra_headers=H()
        )
    return client.models.generate_content(model="gemini-2.5-flash", contents="hi")


@pytest.fixture()
def clients(server: Any) -> Iterator[dict[str, Any]]:
    yield _clients(server)
    otm.uninstrument()


BAD: list[tuple[dict[str, Any], type, str]] = [
    ({"deployment": "H100"}, TypeError, "Deployment(accelerator='H100')"),
    ({"deployment": 4}, TypeError, "otm.Deployment"),
    ({"deployment": {"accelerator": "H100", "count": 0}}, ValueError, "count"),
    ({"deployment": {"gpu": "H100"}}, ValueError, "gpu"),
    ({"provider": 5}, TypeError, "provider"),
    ({"provider": "  "}, TypeError, "provider"),
    ({"region": 250}, TypeError, "region code"),
    ({"region": ""}, TypeError, "region code"),
    ({"region": "FRAA"}, ValueError, "FRA"),
    ({"tags": ["team"]}, TypeError, "dict"),
    ({"tags": {"team": {"a": 1}}}, TypeError, "'team'"),
    ({"tags": {"": "x"}}, TypeError, "non-empty"),
]


@pytest.mark.parametrize("sdk", ["openai", "anthropic", "google"])
@pytest.mark.parametrize(("kwargs", "error", "needle"), BAD)
def test_invalid_arguments_raise_a_clear_error(
    sdk: str,
    kwargs: dict[str, Any],
    error: type,
    needle: str,
    clients: dict[str, Any],
    records: list[Any],
) -> None:
    client = clients[sdk]
    with pytest.raises(error) as info:
        otm.wrap(client, **kwargs)
    assert "otm.wrap" in str(info.value) and needle in str(info.value)
    # Nothing was fixed for the client: its calls are recorded without those settings.
    otm.instrument([sdk])
    r = _call(sdk, client)
    assert r.otm is records[-1] and r.otm.deployment is None and r.otm.tags == {}


@pytest.mark.parametrize("sdk", ["openai", "anthropic", "google"])
def test_unambiguous_inputs_are_coerced_and_every_record_kept(
    sdk: str, clients: dict[str, Any], records: list[Any]
) -> None:
    client = otm.wrap(
        clients[sdk],
        deployment={"accelerator": "H100", "count": 2},
        region=" FRA ",
        tags={"run": 3, "ok": True, "name": "x"},
        provider="local",
    )
    for _ in range(3):
        _call(sdk, client)
    assert len(records) == 3
    for rec in records:
        assert rec.deployment == otm.Deployment(accelerator="H100", count=2)
        assert rec.region == "FRA" and rec.tags == {"run": "3", "ok": "true", "name": "x"}
        assert rec.telemetry.provider == "local"
        assert rec.impact is not None and rec.impact.energy_wh.value > 0
        assert rec.to_dict()["deployment"]["accelerator"] == "H100"


def test_kill_switch_still_checks_types_but_not_the_data(
    monkeypatch: pytest.MonkeyPatch, clients: dict[str, Any], configure: Any
) -> None:
    monkeypatch.setenv("OTM_DISABLED", "1")
    configure()
    with pytest.raises(TypeError):
        otm.wrap(clients["openai"], deployment="H100")
    # A region from a user data file that is not loaded under the kill switch passes.
    assert otm.wrap(clients["openai"], region="my-own-site") is clients["openai"]
