"""The pure parts: settings -> Stowage config, the CLI's JSON output, the hot backup's reason."""
import json
import os
import stat
import tempfile
import unittest
import warnings
from pathlib import Path
from types import SimpleNamespace

from django.conf import settings
from django.test import override_settings

from stowage_django.cli import parse_output
from stowage_django.config import PASSWORD_ENV, SettingsError, effective_config, write_config
from stowage_django.migrate import describe_plan


class SettingsCase(unittest.TestCase):
    """A project folder with a media folder, and settings naming its database, mail and admins."""

    def setUp(self):
        warnings.filterwarnings('ignore', 'Overriding setting DATABASES')  # the translation reads DATABASES, nothing connects
        self.dir = tempfile.TemporaryDirectory()
        self.base = Path(self.dir.name)
        (self.base / 'media').mkdir()
        self.database = str(self.base / 'db.sqlite3')
        self.settings = override_settings(
            BASE_DIR=self.base,
            DATABASES={'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': self.base / 'db.sqlite3'}},
            MEDIA_ROOT=str(self.base / 'media'),
            ADMINS=[('Ops', 'ops@example.com')],
            EMAIL_HOST='smtp.example.com',
            EMAIL_PORT=587,
            EMAIL_USE_TLS=True,
            EMAIL_HOST_USER='backup',
            EMAIL_HOST_PASSWORD='hunter2-secret',
            SERVER_EMAIL='wms@example.com',
        )
        self.settings.enable()

    def tearDown(self):
        self.settings.disable()
        self.dir.cleanup()


class TranslationTest(SettingsCase):
    def test_database_media_and_email_from_django_the_rest_from_stowage(self):
        with override_settings(STOWAGE={'destinations': [{'name': 'nas', 'url': self.base / 'nas'}], 'retention': {'hot': '1d'}, 'hot_backup_before_migrate': True}):
            effective = effective_config(settings)
        self.assertEqual(effective.base_dir, str(self.base))
        self.assertEqual(effective.config, {
            'source': {'database': self.database, 'files': {'media': {'path': 'media'}}},
            'destinations': [{'name': 'nas', 'url': str(self.base / 'nas')}],
            'retention': {'hot': '1d'},
            'alerts': {'channels': [{
                'type': 'email', 'host': 'smtp.example.com', 'port': 587, 'secure': 'starttls', 'from': 'wms@example.com',
                'to': ['ops@example.com'], 'user': 'backup', 'passwordEnv': PASSWORD_ENV,
            }]},
        })
        self.assertEqual(effective.env, {PASSWORD_ENV: 'hunter2-secret'})

    def test_the_written_config_holds_no_secret_is_private_and_is_rewritten_only_on_change(self):
        effective = effective_config(settings)
        path = write_config(effective)
        self.assertEqual(path, str(self.base / '.stowage-django.json'))
        self.assertNotIn('hunter2', Path(path).read_text())
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        inode = os.stat(path).st_ino
        write_config(effective)
        self.assertEqual(os.stat(path).st_ino, inode)
        with override_settings(STOWAGE={'retention': {'full': '60d'}}):
            write_config(effective_config(settings))
        self.assertEqual(json.loads(Path(path).read_text())['retention'], {'full': '60d'})
        self.assertEqual(sorted(os.listdir(self.base)), ['.stowage-django.json', 'media'])  # no temporary file left
        os.unlink(path)
        os.mkdir(path)
        with self.assertRaisesRegex(SettingsError, 'cannot write the Stowage config .*: Is a directory'):
            write_config(effective)
        self.assertEqual(sorted(os.listdir(self.base)), ['.stowage-django.json', 'media'])

    def test_defaults_without_a_stowage_dict(self):
        with override_settings(ADMINS=[], MEDIA_ROOT=''):
            config = effective_config(settings).config
        self.assertEqual(config, {'source': {'database': self.database}, 'destinations': [{'name': 'local', 'url': 'backups'}]})

    def test_email_variants(self):
        with override_settings(EMAIL_USE_TLS=False, EMAIL_USE_SSL=True, BACKUP_ALERT_EMAILS=['dba@example.com'], EMAIL_TIMEOUT=5):
            channel = effective_config(settings).config['alerts']['channels'][0]
        self.assertEqual((channel['secure'], channel['to'], channel['timeoutMs']), ('tls', ['dba@example.com'], 5000))
        with override_settings(EMAIL_HOST_USER='', ADMINS=['ops@example.com']):  # Django 6 ADMINS are plain addresses
            effective = effective_config(settings)
        self.assertNotIn('passwordEnv', effective.config['alerts']['channels'][0])
        self.assertEqual(effective.env, {})
        with override_settings(EMAIL_BACKEND='django.core.mail.backends.console.EmailBackend'):
            self.assertNotIn('alerts', effective_config(settings).config)
        with override_settings(STOWAGE={'alerts': None}):
            self.assertNotIn('alerts', effective_config(settings).config)
        with override_settings(EMAIL_USE_TLS=False), self.assertRaisesRegex(SettingsError, 'neither EMAIL_USE_TLS nor EMAIL_USE_SSL.*clear text'):
            effective_config(settings)

    def test_refusals_name_the_setting(self):
        cases = [
            ({'DATABASES': {'default': {'ENGINE': 'django.db.backends.postgresql', 'NAME': 'wms'}}}, 'engine django.db.backends.postgresql: Stowage backs up SQLite'),
            ({'DATABASES': {'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': ':memory:'}}}, 'in-memory'),
            ({'MEDIA_ROOT': '/'}, 'MEDIA_ROOT / is not inside the base folder'),
            ({'STOWAGE': {'base_dir': self.base / 'missing'}}, 'does not exist'),
            ({'STOWAGE': {'source': {'database': 'other.sqlite3'}}}, "names the database other.sqlite3, but DATABASES"),
            ({'STOWAGE': {'config_file': 'x.json', 'retention': {}}}, 'move retention there'),
            ({'STOWAGE': ['not', 'a', 'dict']}, 'STOWAGE must be a dict'),
            ({'STOWAGE': {'source': 'db.sqlite3'}}, r"STOWAGE\['source'\] must be a dict"),
            ({'STOWAGE': {'retention': {'full': object()}}}, 'STOWAGE holds a object, which has no JSON form'),
        ]
        for overrides, message in cases:
            with self.subTest(message), override_settings(**overrides), self.assertRaisesRegex(SettingsError, message):
                effective_config(settings)

    def test_a_config_file_is_the_base_of_its_relative_paths(self):
        folder = self.base / 'ops'
        folder.mkdir()
        (folder / 'stowage.config.json').write_text(json.dumps({'$schema': 'x', 'source': {'database': '../db.sqlite3'}, 'destinations': [{'name': 'd', 'url': 'b'}]}))
        with override_settings(STOWAGE={'config_file': folder / 'stowage.config.json'}, MEDIA_ROOT=''):
            effective = effective_config(settings)
        self.assertEqual(effective.base_dir, str(folder))
        self.assertEqual(effective.config['source'], {'database': self.database})
        self.assertEqual(effective.config['destinations'], [{'name': 'd', 'url': 'b'}])
        (folder / 'stowage.config.json').write_text('{')
        with override_settings(STOWAGE={'config_file': folder / 'stowage.config.json'}), self.assertRaisesRegex(SettingsError, 'not valid JSON'):
            effective_config(settings)


class CliOutputTest(unittest.TestCase):
    def test_reads_the_envelope_and_the_bare_shapes(self):
        self.assertEqual(parse_output('{"ok": true, "command": "backup", "result": {"id": "x"}, "warnings": ["w"], "error": null}'), ({'id': 'x'}, None, ['w']))
        self.assertEqual(parse_output('{"ok": true, "id": "x"}'), ({'ok': True, 'id': 'x'}, None, []))
        error = {'code': 'stowage.core.backup_not_found', 'message': 'gone'}
        self.assertEqual(parse_output(json.dumps({'ok': False, 'error': error})), (None, error, []))
        self.assertEqual(parse_output(json.dumps({'ok': False, 'command': 'restore', 'result': None, 'warnings': [], 'error': error})), (None, error, []))
        for text in ('', '0.0.1\n', '[1]'):
            self.assertIsNone(parse_output(text))


class ReasonTest(unittest.TestCase):
    def test_names_the_plan_and_counts_the_rest(self):
        plan = [(SimpleNamespace(app_label='shop', name=f'{n:04}_m'), n == 2) for n in range(1, 14)]
        self.assertEqual(
            describe_plan(plan),
            'before migrate: shop.0001_m, shop.0002_m (unapply), shop.0003_m, shop.0004_m, shop.0005_m, shop.0006_m, shop.0007_m, shop.0008_m, shop.0009_m, shop.0010_m and 3 more',
        )


if __name__ == '__main__':
    unittest.main()
