import subprocess
import sys

import pytest

from mintpipe.config import redact_url
from renderer.settings import RendererSettings

pytestmark = pytest.mark.unit


def test_service_prefix_wins_over_shared_prefix(monkeypatch):
    monkeypatch.setenv("MINTPIPE_AMQP_URL", "amqp://a:b@shared-host/")
    monkeypatch.setenv("RENDERER_AMQP_URL", "amqp://a:b@own-host/")
    monkeypatch.setenv("MINTPIPE_DATA_DIR", "/tmp/shared-data")
    settings = RendererSettings()
    assert settings.amqp_url == "amqp://a:b@own-host/"
    assert str(settings.data_dir) == "/tmp/shared-data"


def test_defaults_need_no_environment(monkeypatch):
    for name in ("MINTPIPE_AMQP_URL", "RENDERER_AMQP_URL", "MINTPIPE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = RendererSettings()
    assert settings.amqp_url.startswith("amqp://")
    assert settings.prefetch == 1


def test_bad_setting_stops_the_service_naming_the_variable_not_the_secret():
    env = {"RENDERER_HEALTH_PORT": "not-a-port", "MINTPIPE_AMQP_URL": "http://user:hunter2@host/",
           "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "renderer"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "RENDERER_HEALTH_PORT" in proc.stderr
    assert "AMQP_URL" in proc.stderr and "amqp://" in proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout


def test_redacted_url_hides_the_password():
    assert redact_url("amqp://guest:s3cret@rabbit:5672/vh") == "amqp://guest:***@rabbit:5672/vh"
    assert redact_url("amqp://rabbit/") == "amqp://rabbit/"


def test_a_log_level_in_lower_case_is_understood(monkeypatch):
    monkeypatch.setenv("MINTPIPE_LOG_LEVEL", "warning")
    assert RendererSettings().log_level == "WARNING"


def test_the_launcher_refuses_an_unknown_log_level_naming_the_variable():
    env = {"MINTPIPE_LOG_LEVEL": "loud", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "launcher", "up"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "MINTPIPE_LOG_LEVEL" in proc.stderr and "'loud'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_database_url_that_is_not_postgresql_stops_the_service_naming_the_variable_not_the_secret():
    env = {"MINTPIPE_DATABASE_URL": "mysql://user:hunter2@db/mintpipe", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "pinner"], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "DATABASE_URL" in proc.stderr and "postgresql://" in proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout


def test_the_database_is_sqlite_unless_a_postgresql_url_is_given(monkeypatch, tmp_path):
    from mintpipe.bootstrap import store_database
    from mintpipe.db.core import PostgresDatabase, SqliteDatabase

    monkeypatch.setenv("MINTPIPE_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MINTPIPE_DATABASE_URL", raising=False)
    sqlite = store_database(RendererSettings(), "pins.sqlite3")
    assert isinstance(sqlite, SqliteDatabase) and sqlite.path == tmp_path / "pins.sqlite3"
    monkeypatch.setenv("MINTPIPE_DATABASE_URL", "postgresql://mint:s3cret@db.internal:5432/mintpipe")
    settings = RendererSettings()
    postgres = store_database(settings, "pins.sqlite3")
    assert isinstance(postgres, PostgresDatabase)
    # What logs show: the server, never the password.
    assert postgres.description == "postgresql://mint:***@db.internal:5432/mintpipe"
    assert "s3cret" not in settings.database_redacted
