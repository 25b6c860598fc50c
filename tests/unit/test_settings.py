from __future__ import annotations

from pathlib import Path

import pytest

from streams.settings import Secret, Settings


def test_defaults_are_the_embedded_dev_stack() -> None:
    settings = Settings.from_env({})
    assert settings.embedded
    assert settings.kafka_bootstrap is None
    assert settings.data_dir == Path(".data").resolve()
    assert settings.web_port == 6066
    assert (settings.partitions, settings.replication_factor) == (4, 1)
    assert settings.web_host == "127.0.0.1"  # no API token: loopback only


def test_an_external_cluster_gets_production_partitioning() -> None:
    settings = Settings.from_env({"STREAMS_KAFKA_BOOTSTRAP": "k1:9092,k2:9092"})
    assert not settings.embedded
    assert (settings.partitions, settings.replication_factor) == (12, 3)
    overridden = Settings.from_env(
        {"STREAMS_KAFKA_BOOTSTRAP": "k1:9092", "STREAMS_PARTITIONS": "6"}
    )
    assert overridden.partitions == 6


def test_api_token_opens_the_api_beyond_loopback_and_stays_secret() -> None:
    settings = Settings.from_env({"STREAMS_API_TOKEN": "s3cret-token", "ABLY_API_KEY": "a.b:c"})
    assert settings.web_host == "0.0.0.0"
    assert settings.api_token == Secret("s3cret-token")
    assert "s3cret-token" not in repr(settings)
    assert "a.b:c" not in repr(settings)
    assert settings.ably_api_key is not None and settings.ably_api_key.reveal() == "a.b:c"


def test_blank_values_count_as_unset_and_bad_numbers_are_named() -> None:
    assert Settings.from_env({"STREAMS_KAFKA_BOOTSTRAP": "  "}).embedded
    with pytest.raises(ValueError, match="STREAMS_WEB_PORT"):
        Settings.from_env({"STREAMS_WEB_PORT": "http"})


def test_the_reminder_lead_time_is_fifteen_minutes_unless_set() -> None:
    assert Settings.from_env({}).reminder_lead_seconds == 900
    assert Settings.from_env({"STREAMS_REMINDER_LEAD_SECONDS": "5"}).reminder_lead_seconds == 5
    with pytest.raises(ValueError, match="STREAMS_REMINDER_LEAD_SECONDS"):
        Settings.from_env({"STREAMS_REMINDER_LEAD_SECONDS": "-1"})


def test_a_stopped_worker_stays_in_its_group_unless_told_to_leave() -> None:
    assert Settings.from_env({}).leave_group_on_stop is False
    assert Settings.from_env({"STREAMS_LEAVE_GROUP_ON_STOP": "1"}).leave_group_on_stop is True
    with pytest.raises(ValueError, match="STREAMS_LEAVE_GROUP_ON_STOP"):
        Settings.from_env({"STREAMS_LEAVE_GROUP_ON_STOP": "soon"})


def test_a_webhook_key_is_taken_as_pem_text_or_as_the_path_of_a_pem_file(tmp_path: Path) -> None:
    pem = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg=\n-----END PUBLIC KEY-----\n"
    path = tmp_path / "key.pub.pem"
    path.write_text(pem)
    as_text = Settings.from_env({"GHL_WEBHOOK_ED25519_PUBLIC_KEY": pem})
    as_path = Settings.from_env({"GHL_WEBHOOK_ED25519_PUBLIC_KEY": str(path)})
    assert as_text.ghl_ed25519_public_key == as_path.ghl_ed25519_public_key == pem.strip()
    with pytest.raises(ValueError, match="GHL_WEBHOOK_RSA_PUBLIC_KEY is neither PEM text nor"):
        Settings.from_env({"GHL_WEBHOOK_RSA_PUBLIC_KEY": str(tmp_path / "missing.pem")})


def test_the_mongo_sink_is_off_unless_its_uri_is_set() -> None:
    off = Settings.from_env({})
    assert off.mongo_sink_uri is None and off.mongo_sink_database == "streams"
    on = Settings.from_env(
        {
            "STREAMS_MONGO_SINK_URI": "mongodb://user:pw@db:27017",
            "STREAMS_MONGO_SINK_DB": "readmodels",
            "STREAMS_MONGO_SINK_PROJECTIONS": "revenue, unread,",
        }
    )
    assert on.mongo_sink_uri == Secret("mongodb://user:pw@db:27017")
    assert "pw" not in repr(on)
    assert on.mongo_sink_database == "readmodels"
    assert on.mongo_sink_projections == ("revenue", "unread")
