"""
Django settings -> the Stowage config the CLI reads.

The database comes from DATABASES['default'], the media file set from MEDIA_ROOT, email alerts
from EMAIL_*, SERVER_EMAIL and BACKUP_ALERT_EMAILS or ADMINS; everything else (destinations,
encryption, retention, schedules, ...) from the STOWAGE dict, written exactly as in
stowage.config.json, or from the file STOWAGE['config_file'] names.

The CLI resolves relative paths against the config file's folder, and file sets must lie inside
it, so the effective config is written into the base folder (BASE_DIR by default) as
`.stowage-django.json`. Secrets never go into it: the SMTP password travels to the CLI in an
environment variable of the child process only, named in the config by `passwordEnv`.
"""
import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from django.core.exceptions import ImproperlyConfigured

#: Engines whose database is one SQLite file.
SQLITE_ENGINES = frozenset({'django.db.backends.sqlite3', 'django.contrib.gis.db.backends.spatialite'})
#: Keys of the STOWAGE dict that configure this app, not the Stowage config.
APP_KEYS = frozenset({'config_file', 'base_dir', 'hot_backup_before_migrate', 'hot_backup_failure_stops_migrate'})
#: Name of the effective config written into the base folder.
CONFIG_FILE_NAME = '.stowage-django.json'
#: The environment variable (of the CLI process only) that carries EMAIL_HOST_PASSWORD.
PASSWORD_ENV = 'STOWAGE_EMAIL_HOST_PASSWORD'
SMTP_BACKEND = 'django.core.mail.backends.smtp.EmailBackend'


class SettingsError(ImproperlyConfigured):
    """The Django settings cannot be turned into a Stowage config; the message says what to change."""


@dataclass
class EffectiveConfig:
    """What the CLI runs with: the config (JSON-ready), its folder, and extra environment for the CLI process."""

    base_dir: str
    config: Dict[str, Any]
    env: Dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return os.path.join(self.base_dir, CONFIG_FILE_NAME)


def app_options(settings) -> Dict[str, Any]:
    """The STOWAGE dict (empty when unset)."""
    options = getattr(settings, 'STOWAGE', None) or {}
    if not isinstance(options, dict):
        raise SettingsError(f'STOWAGE must be a dict, not {type(options).__name__}')
    return options


def database_path(settings) -> str:
    """The absolute path of DATABASES['default'], refusing anything but an SQLite file."""
    database = settings.DATABASES.get('default') or {}
    engine = database.get('ENGINE') or '(none)'
    if engine not in SQLITE_ENGINES:
        raise SettingsError(
            f"DATABASES['default'] uses the engine {engine}: Stowage backs up SQLite databases only "
            '(django.db.backends.sqlite3); back up other databases with their own tools (pg_dump, mysqldump)'
        )
    name = os.fspath(database.get('NAME') or '')
    if not name or name == ':memory:' or name.startswith('file:'):
        raise SettingsError(
            f"DATABASES['default']['NAME'] is {name or 'empty'!r}: Stowage needs the path of an SQLite file (an in-memory or URI database cannot be backed up)"
        )
    return os.path.abspath(name)


def effective_config(settings) -> EffectiveConfig:
    """Translates the Django settings into the Stowage config; raises SettingsError naming the setting to fix."""
    options = dict(app_options(settings))
    app = {key: options.pop(key) for key in APP_KEYS if key in options}
    database = database_path(settings)
    if 'config_file' in app:
        if options or 'base_dir' in app:
            given = ', '.join(sorted(set(options) | ({'base_dir'} & set(app))))
            raise SettingsError(f"STOWAGE['config_file'] is set, so the Stowage config lives in that file: move {given} there, or drop config_file")
        config_file = os.path.abspath(os.fspath(app['config_file']))
        base_dir = os.path.dirname(config_file)
        options = _read_config_file(config_file)
        options.pop('$schema', None)
    else:
        base_dir = os.path.abspath(os.fspath(app.get('base_dir') or getattr(settings, 'BASE_DIR', None) or os.path.dirname(database)))
    if not os.path.isdir(base_dir):
        raise SettingsError(f"the base folder {base_dir} (STOWAGE['base_dir'], else BASE_DIR) does not exist")
    try:
        options = json.loads(json.dumps(options, default=_json_path))
    except TypeError as error:
        raise SettingsError(str(error)) from error

    source = options.pop('source', None) or {}
    if not isinstance(source, dict):
        raise SettingsError("STOWAGE['source'] must be a dict such as {'busyTimeoutMs': 10000}")
    declared = source.pop('database', None)
    if declared is not None and os.path.abspath(os.path.join(base_dir, declared)) != database:
        raise SettingsError(f"the Stowage config names the database {declared}, but DATABASES['default'] is {database}: remove source.database, Django's setting is used")
    files = source.get('files') or {}
    media = _media_set(settings, base_dir)
    if media is not None and 'media' not in files:
        source['files'] = {**files, 'media': media}

    config: Dict[str, Any] = {'source': {'database': database, **source}, 'destinations': [{'name': 'local', 'url': 'backups'}], **options}
    env: Dict[str, str] = {}
    if 'alerts' not in options:
        channel = _email_channel(settings, env)
        if channel is not None:
            config['alerts'] = {'channels': [channel]}
    elif options['alerts'] is None:
        del config['alerts']
    return EffectiveConfig(base_dir=base_dir, config=config, env=env)


def write_config(effective: EffectiveConfig) -> str:
    """Writes the config (mode 600, atomically, only when it changed); returns its path."""
    text = json.dumps(effective.config, indent=2, sort_keys=True) + '\n'
    try:
        if _read_text(effective.path) == text:
            return effective.path
        fd, temp = tempfile.mkstemp(prefix=CONFIG_FILE_NAME + '.', dir=effective.base_dir)  # mkstemp creates it 600
        try:
            with os.fdopen(fd, 'w', encoding='utf-8') as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temp, effective.path)
        except BaseException:
            os.unlink(temp)
            raise
    except OSError as error:
        raise SettingsError(f"cannot write the Stowage config {effective.path}: {error.strerror}; the base folder (STOWAGE['base_dir'], else BASE_DIR) must be writable") from error
    return effective.path


def _read_text(path: str) -> Optional[str]:
    try:
        with open(path, encoding='utf-8') as file:
            return file.read()
    except FileNotFoundError:
        return None


def _read_config_file(path: str) -> Dict[str, Any]:
    try:
        with open(path, encoding='utf-8') as file:
            options = json.load(file)
    except OSError as error:
        raise SettingsError(f"STOWAGE['config_file']: cannot read {path}: {error.strerror}") from error
    except ValueError as error:
        raise SettingsError(f"STOWAGE['config_file']: {path} is not valid JSON: {error}") from error
    if not isinstance(options, dict):
        raise SettingsError(f"STOWAGE['config_file']: {path} must hold a JSON object")
    return options


def _json_path(value):
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f'STOWAGE holds a {type(value).__name__}, which has no JSON form')


def _media_set(settings, base_dir: str) -> Optional[Dict[str, str]]:
    """MEDIA_ROOT as the file set `media`, when it is set and exists."""
    root = os.fspath(getattr(settings, 'MEDIA_ROOT', '') or '')
    if not root or not os.path.isdir(root):
        return None
    relative = os.path.relpath(os.path.abspath(root), base_dir)
    if relative == '.' or relative.split(os.sep)[0] == os.pardir:
        raise SettingsError(f"MEDIA_ROOT {root} is not inside the base folder {base_dir}: set STOWAGE['base_dir'] to a folder that holds it")
    return {'path': relative.replace(os.sep, '/')}


def _email_channel(settings, env: Dict[str, str]) -> Optional[Dict[str, Any]]:
    """The email alert channel Django's own SMTP settings describe, or None without SMTP or recipients."""
    if getattr(settings, 'EMAIL_BACKEND', SMTP_BACKEND) != SMTP_BACKEND:
        return None
    admins = getattr(settings, 'ADMINS', None) or []
    recipients = list(getattr(settings, 'BACKUP_ALERT_EMAILS', None) or [admin if isinstance(admin, str) else admin[1] for admin in admins])
    if not recipients:
        return None
    secure = 'tls' if getattr(settings, 'EMAIL_USE_SSL', False) else 'starttls' if getattr(settings, 'EMAIL_USE_TLS', False) else 'none'
    channel: Dict[str, Any] = {
        'type': 'email',
        'host': settings.EMAIL_HOST,
        'port': int(settings.EMAIL_PORT),
        'secure': secure,
        'from': settings.SERVER_EMAIL,
        'to': recipients,
    }
    user, password = getattr(settings, 'EMAIL_HOST_USER', ''), getattr(settings, 'EMAIL_HOST_PASSWORD', '')
    if user and password:  # Django's SMTP backend, too, logs in only with both
        if secure == 'none':
            raise SettingsError(
                "EMAIL_HOST_PASSWORD is set but neither EMAIL_USE_TLS nor EMAIL_USE_SSL: Stowage does not send a password in clear text; "
                "turn one on, or set STOWAGE['alerts'] = None (or your own alerts section)"
            )
        channel.update(user=user, passwordEnv=PASSWORD_ENV)
        env[PASSWORD_ENV] = password
    if getattr(settings, 'EMAIL_TIMEOUT', None):
        channel['timeoutMs'] = max(100, min(300_000, int(settings.EMAIL_TIMEOUT * 1000)))  # the CLI's bounds
    return channel
