"""How many JetStream servers hold each stream: a setting of each service that creates them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gouache.bus.jetstream import stream_config
from gouache.bus.subjects import STREAMS
from services.feedback.settings import FeedbackSettings
from services.jobs.settings import JobsSettings
from services.tiling.settings import TilingSettings

SETTINGS: dict[str, type[JobsSettings | TilingSettings | FeedbackSettings]] = {
    "JOBS": JobsSettings,
    "TILING": TilingSettings,
    "FEEDBACK": FeedbackSettings,
}


def test_streams_have_one_replica_unless_told() -> None:
    for spec in STREAMS:
        assert stream_config(spec).num_replicas == 1
        assert stream_config(spec, replicas=3).num_replicas == 3


@pytest.mark.parametrize("prefix", sorted(SETTINGS))
def test_stream_replicas_is_read_from_the_environment(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings_class = SETTINGS[prefix]
    assert settings_class().stream_replicas == 1
    monkeypatch.setenv(f"GOUACHE_{prefix}_STREAM_REPLICAS", "3")
    assert settings_class().stream_replicas == 3
    monkeypatch.setenv(f"GOUACHE_{prefix}_STREAM_REPLICAS", "0")
    with pytest.raises(ValidationError, match="stream_replicas"):
        settings_class()
